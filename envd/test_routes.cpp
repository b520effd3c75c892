#include "envd/test_routes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

#include <memory>
#include <string>

#include "envd/blocking.h"
#include "envd/os_error.h"

namespace envd {

namespace asio = boost::asio;

namespace {

struct ScopeStats {
  int started = 0;
  int cancelled = 0;  // the pool job saw the token
  int client_gone = 0;
  int shutdown = 0;
};

asio::awaitable<void> wait_cancel(http::Exchange& ex, std::shared_ptr<ScopeStats> stats) {
  auto& scope = ex.scope();
  ++stats->started;
  // Polls the token like a long walk or copy would between chunks of work.
  auto job = [token = scope.token()] {
    while (!is_cancelled(token)) ::usleep(1000);
    return true;
  };
  // Counted before any further co_await: a cancelled coroutine throws at its next suspension.
  auto stop_counting = [stats, &scope] {
    ++stats->cancelled;
    if (scope.reason() == CancelReason::client_gone) ++stats->client_gone;
    if (scope.reason() == CancelReason::shutdown) ++stats->shutdown;
  };
  co_await run_blocking(WorkClass::walk, job);
  stop_counting();
}

// Minimal query parsing for the test route: name=value pairs, %XX decoded.
std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = item.find('=');
    if (item.substr(0, eq) != name || eq == std::string_view::npos) continue;
    std::string out;
    std::string_view v = item.substr(eq + 1);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size() + 0 && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += v[i];
      }
    }
    return out;
  }
  return {};
}

struct OpenedFile {
  int fd = -1;
  int err = 0;
  std::uint64_t size = 0;
};

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

asio::awaitable<void> send_file(http::Exchange& ex) {
  const auto& q = ex.request().query;
  std::string path = query_param(q, "path");
  auto open_job = [path] {
    OpenedFile f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (f.fd < 0 || ::fstat(f.fd, &st) != 0) {
      f.err = errno;
      return f;
    }
    f.size = static_cast<std::uint64_t>(st.st_size);
    return f;
  };
  OpenedFile f = co_await run_blocking(WorkClass::meta, open_job);
  FdCloser closer{f.fd};
  std::uint64_t offset = 0, length = f.size;
  std::string o = query_param(q, "offset"), l = query_param(q, "length");
  if (!o.empty()) offset = std::stoull(o);
  length = offset <= f.size ? f.size - offset : 0;
  if (!l.empty()) length = std::stoull(l);
  Reply r = f.fd < 0                          ? Reply{404, {}, path_error("open", path, f.err) + "\n"}
            : offset + length > f.size + 1024 ? Reply{416, {}, "region outside the file\n"}
                                              : Reply{200, {{"content-type", "application/octet-stream"}}, {}};
  if (r.status != 200) {
    co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
    co_return;
  }
  // A region up to 1 KiB past the end is allowed on purpose: it tests a file shorter than promised.
  http::ResponseHead head{200, std::move(r.headers), length};
  if (!co_await ex.write_head(std::move(head))) co_return;
  if (!co_await ex.write_file(f.fd, offset, length)) co_return;
  co_await ex.finish();
}

asio::awaitable<void> receive_file(http::Exchange& ex) {
  std::string path = query_param(ex.request().query, "path");
  auto open_job = [path] {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
  };
  int fd = co_await run_blocking(WorkClass::meta, open_job);
  if (fd < 0) {
    Reply r{404, {}, path_error("open", path, -fd) + "\n"};
    co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
    co_return;
  }
  FdCloser closer{fd};
  std::uint64_t bytes = 0, pieces = 0;
  int err = 0;
  for (;;) {
    std::string_view piece;
    auto r = co_await ex.read_body_some(piece, 1u << 20);
    if (r == http::BodyRead::end) break;
    if (r != http::BodyRead::data) co_return;  // client gone: nothing to answer
    // Written from the view of the receive buffer: no copy on the way to the file.
    auto write_job = [fd, piece] {
      std::size_t done = 0;
      while (done < piece.size()) {
        ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        done += static_cast<std::size_t>(n);
      }
      return 0;
    };
    if (err == 0) err = co_await run_blocking(WorkClass::data, write_job);
    bytes += piece.size();
    ++pieces;
  }
  Reply r = err != 0 ? Reply{507, {}, path_error("write", path, err) + "\n"}
                     : Reply{200,
                             {{"content-type", "application/json"}},
                             "{\"bytes\":" + std::to_string(bytes) + ",\"pieces\":" + std::to_string(pieces) + "}"};
  co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
}

Reply stats_reply(const ScopeStats& s) {
  return Reply{200,
               {{"content-type", "application/json"}},
               "{\"started\":" + std::to_string(s.started) + ",\"cancelled\":" + std::to_string(s.cancelled) +
                   ",\"client_gone\":" + std::to_string(s.client_gone) + ",\"shutdown\":" + std::to_string(s.shutdown) +
                   "}"};
}

asio::awaitable<void> scope_stats(http::Exchange& ex, std::shared_ptr<ScopeStats> stats) {
  Reply r = stats_reply(*stats);
  co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
}

}  // namespace

void register_test_routes(Router& router) {
  auto stats = std::make_shared<ScopeStats>();
  router.add("GET", "/__test/wait-cancel", [stats](http::Exchange& ex) { return wait_cancel(ex, stats); });
  router.add("GET", "/__test/file", [](http::Exchange& ex) { return send_file(ex); });
  router.add("POST", "/__test/upload", [](http::Exchange& ex) { return receive_file(ex); });
  router.add("GET", "/__test/scope-stats", [stats](http::Exchange& ex) { return scope_stats(ex, stats); });
}

}  // namespace envd
