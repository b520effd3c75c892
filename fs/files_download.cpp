#include "fs/files_download.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "envd/blocking.h"
#include "envd/error_reply.h"
#include "envd/http_date.h"
#include "envd/log.h"
#include "envd/os_error.h"
#include "envd/rest/accept_encoding.h"
#include "envd/rest/content.h"
#include "envd/rest/gzip.h"
#include "envd/rest/range.h"
#include "fs/archive.h"
#include "fs/etag.h"
#include "fs/files_common.h"

namespace envd::fs {

namespace asio = boost::asio;

namespace {

// An fd closed when the handler's frame goes, whichever way it ends (client gone included).
struct FileHandle {
  int fd = -1;
  FileHandle() = default;
  explicit FileHandle(int f) : fd(f) {}
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() {
    if (fd >= 0) ::close(fd);
  }
};

struct StatResult {
  int err = 0;
  struct stat st {};
};

struct OpenResult {
  int fd = -1;
  int err = 0;
  struct stat st {};
  std::string ext_type;  // Content-Type from the raw path's extension ("" when unknown)
};

std::int64_t mtime_unix(const struct stat& st) { return static_cast<std::int64_t>(st.st_mtim.tv_sec); }

// Go's isZeroTime: the zero time or the Unix epoch means "no modification time".
bool zero_mtime(const struct stat& st) { return st.st_mtim.tv_sec == 0 && st.st_mtim.tv_nsec == 0; }

std::string_view display_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool non_empty(const http::RequestHead& req, std::string_view name) {
  auto v = req.header(name);
  return v && !v->empty();
}

// The headers ServeContent answers, which force identity (contract §6.5 rule 8).
bool has_conditional_or_range(const http::RequestHead& req) {
  return non_empty(req, "range") || non_empty(req, "if-modified-since") || non_empty(req, "if-none-match") ||
         non_empty(req, "if-range");
}

}  // namespace

PreconditionOutcome check_preconditions(const http::RequestHead& req, std::string_view etag, std::int64_t mtime) {
  // mtime 0 stands for Go's zero time: date-based checks are skipped.
  PreconditionOutcome out;
  auto im = req.header("if-match");
  Cond c = eval_if_match(im.value_or(""), etag);
  if (c == Cond::none) {
    if (auto ius = req.header("if-unmodified-since"); ius && mtime != 0) {
      if (auto t = parse_http_date(*ius)) c = mtime <= *t ? Cond::match : Cond::no_match;
    }
  }
  if (c == Cond::no_match) {
    out.result = Precondition::failed;
    return out;
  }
  Cond inm = eval_if_none_match(req.header("if-none-match").value_or(""), etag);
  if (inm == Cond::match) {
    out.result = Precondition::not_modified;
    return out;
  }
  if (inm == Cond::none) {
    if (auto ims = req.header("if-modified-since"); ims && mtime != 0) {
      if (auto t = parse_http_date(*ims); t && mtime <= *t) {
        out.result = Precondition::not_modified;
        return out;
      }
    }
  }
  if (!non_empty(req, "range")) return out;
  out.use_range = rest::if_range_allows(req.header("if-range").value_or(""), etag, mtime);
  return out;
}

namespace {

// The headers every answer about an existing file carries (Go sets them before ServeContent).
http::Headers file_headers(std::string_view resolved) {
  return {{"content-disposition", rest::inline_content_disposition(display_name(resolved))},
          {"vary", "Accept-Encoding"}};
}

// Cuts a gzip response short after its head went out (a read error): the client must see a
// broken transfer, never a complete-looking short body.
void abort_response(http::Exchange& ex, const std::string& path, int err) {
  log::write(log::Level::warn, "files", "download cut short: " + path_error("read", path, err),
             {{"request_id", ex.request_id()}});
  ex.abort_response();
}

struct ReadChunk {
  std::string data;
  int err = 0;
};

// Compresses `in` into what zlib gives back now (everything, trailer included, when `last`).
std::string deflate_chunk(rest::GzipDeflater& gz, std::string_view in, bool last) {
  using Flush = rest::GzipDeflater::Flush;
  const Flush flush = last ? Flush::finish : Flush::none;
  std::string out;
  const std::size_t room = in.size() / 2 + 16 * 1024;
  for (;;) {
    std::size_t old = out.size();
    out.resize(old + room);
    auto step = gz.deflate(std::span<const char>(in.data(), in.size()), std::span<char>(out.data() + old, room), flush);
    out.resize(old + step.produced);
    in.remove_prefix(step.consumed);
    if (!in.empty() || step.produced == room) continue;
    if (!last || gz.done_flushing()) break;
  }
  return out;
}

// gzip: read and compress a chunk on the pool, send it on the loop.
asio::awaitable<void> send_gzip(http::Exchange& ex, int fd, const std::string& path, http::Headers headers,
                                std::size_t chunk) {
  headers.emplace_back("content-encoding", "gzip");
  http::ResponseHead head{200, std::move(headers), std::nullopt};
  if (!co_await ex.write_head(std::move(head))) co_return;
  auto gz = std::make_shared<rest::GzipDeflater>();
  auto cancel = ex.scope().token();
  for (;;) {
    auto job = [fd, gz, chunk, cancel] {
      ReadChunk r;
      if (is_cancelled(cancel)) return r;
      std::string buf(chunk, '\0');
      ssize_t n;
      do {
        n = ::read(fd, buf.data(), buf.size());
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        r.err = errno;
        return r;
      }
      buf.resize(static_cast<std::size_t>(n));
      r.data = deflate_chunk(*gz, buf, n == 0);
      if (n == 0) r.err = -1;  // end of file: the trailer is in data
      return r;
    };
    ReadChunk step = co_await run_blocking(WorkClass::data, job);
    if (ex.closed() || is_cancelled(cancel)) co_return;
    if (step.err > 0) {
      abort_response(ex, path, step.err);
      co_return;
    }
    if (!step.data.empty() && !co_await ex.write_body(std::move(step.data))) co_return;
    if (step.err == -1) break;
  }
  co_await ex.finish();
}

// What the identity answer is, decided before any byte of the body (no co_await in here).
struct IdentityPlan {
  std::optional<Reply> reply;  // 304, 412 or 416: a whole answer
  http::ResponseHead head;
  rest::RangeDecision ranges;
  std::optional<rest::Byteranges> multipart;
};

// Go's serveContent after the file is open: validators, preconditions, ranges.
IdentityPlan plan_identity(const http::RequestHead& req, http::Headers headers, const struct stat& st,
                           const std::string& etag, std::string ctype) {
  IdentityPlan plan;
  const auto size = static_cast<std::int64_t>(st.st_size);
  const std::int64_t mtime = zero_mtime(st) ? 0 : mtime_unix(st);
  if (mtime != 0) headers.emplace_back("last-modified", format_http_date(mtime));
  headers.emplace_back("etag", etag);
  auto cond = check_preconditions(req, etag, mtime);
  if (cond.result == Precondition::failed) {
    plan.reply = Reply{412, std::move(headers), {}};
    return plan;
  }
  if (cond.result == Precondition::not_modified) {
    // Go's writeNotModified: no Content-Type/Length; Last-Modified dropped when an ETag is sent.
    std::erase_if(headers, [](const auto& h) { return h.first == "last-modified"; });
    plan.reply = Reply{304, std::move(headers), {}};
    return plan;
  }
  if (cond.use_range) plan.ranges = rest::decide_range(req.header("range").value_or(""), size);
  if (plan.ranges.outcome == rest::RangeOutcome::no_overlap || plan.ranges.outcome == rest::RangeOutcome::invalid) {
    // Go's serveError: a text/plain 416 without the validators.
    std::erase_if(headers, [](const auto& h) { return h.first == "last-modified" || h.first == "etag"; });
    const bool no_overlap = plan.ranges.outcome == rest::RangeOutcome::no_overlap;
    if (no_overlap) headers.emplace_back("content-range", rest::unsatisfied_content_range(size));
    Reply reply = text_error_reply(416, no_overlap ? rest::kRangeNoOverlap : rest::kRangeInvalid);
    headers.insert(headers.end(), reply.headers.begin(), reply.headers.end());
    reply.headers = std::move(headers);
    plan.reply = std::move(reply);
    return plan;
  }
  headers.emplace_back("accept-ranges", "bytes");
  if (plan.ranges.outcome != rest::RangeOutcome::partial) {
    headers.emplace_back("content-type", std::move(ctype));
    plan.head = http::ResponseHead{200, std::move(headers), static_cast<std::uint64_t>(size)};
    plan.ranges.ranges = {rest::ByteRange{0, size}};
    return plan;
  }
  if (plan.ranges.ranges.size() == 1) {
    const auto& r = plan.ranges.ranges.front();
    headers.emplace_back("content-range", rest::content_range(r, size));
    headers.emplace_back("content-type", std::move(ctype));
    plan.head =
        http::ResponseHead{206, std::move(headers), static_cast<std::uint64_t>(std::max<std::int64_t>(r.length, 0))};
    return plan;
  }
  plan.multipart.emplace(rest::random_boundary(), std::move(ctype), size, plan.ranges.ranges);
  headers.emplace_back("content-type", plan.multipart->content_type());
  plan.head = http::ResponseHead{206, std::move(headers), static_cast<std::uint64_t>(plan.multipart->content_length())};
  return plan;
}

struct Opened {
  std::optional<Reply> reply;  // an error answer
  FileHandle file;
  struct stat st {};
  std::string path;                             // resolved
  std::string raw_path;                         // the `path` query value as sent (its extension picks the Content-Type)
  bool gzip = false;                            // the negotiated coding
  std::string ext_type;                         // Content-Type by the raw path's extension, "" when unknown
  ArchiveFormat archive = ArchiveFormat::none;  // a directory asked for as an archive
};

// Directories as archives (README): only an explicit application/x-tar or application/gzip in
// Accept selects one, and, when a token is set, only a request carrying X-Access-Token (the
// prelude checked its value): a signed URL never does.
ArchiveFormat requested_archive(const SandboxState& state, const http::RequestHead& req) {
  if (state.access_token && !req.header("x-access-token")) return ArchiveFormat::none;
  return archive_from_accept(req.header("accept").value_or(""));
}

// §6.5 error steps 1–6 and 9 (7–8, Accept-Encoding, sit between stat and open): the prelude, path
// resolution, stat (following symlinks), directory, then open. Every syscall on the pool.
asio::awaitable<void> open_for_download(http::Exchange& ex, const SandboxState& state, Opened& out) {
  const auto& req = ex.request();
  auto pre = files_prelude(state, req, FileOp::read, unix_seconds_now());
  if (auto* reply = std::get_if<Reply>(&pre)) {
    out.reply = std::move(*reply);
    co_return;
  }
  auto& freq = std::get<FilesRequest>(pre);
  out.raw_path = freq.path.value_or("");
  const std::string& raw_path = out.raw_path;
  auto resolved = resolve_files_path(state, freq.user, raw_path);
  if (!resolved.error.empty()) {
    out.reply = json_error(400, "error expanding and resolving path '" + raw_path + "': " + resolved.error);
    co_return;
  }
  out.path = std::move(resolved.path);
  const std::string& path = out.path;

  auto stat_job = [path] {
    StatResult r;
    if (::stat(path.c_str(), &r.st) != 0) r.err = errno;
    return r;
  };
  StatResult sr = co_await run_blocking(WorkClass::meta, stat_job);
  if (sr.err == ENOENT) {
    out.reply = json_error(404, "path '" + path + "' does not exist");
  } else if (sr.err != 0) {
    out.reply = json_error(500, "error checking if path exists '" + path + "': " + path_error("stat", path, sr.err));
  } else if (S_ISDIR(sr.st.st_mode)) {
    out.archive = requested_archive(state, req);
    if (out.archive == ArchiveFormat::none) out.reply = json_error(400, "path '" + path + "' is a directory");
  }
  if (out.reply) co_return;
  if (out.archive != ArchiveFormat::none) {
    // A tar may go out gzip-encoded; ranges and conditionals do not apply to a generated body.
    auto enc = rest::negotiate_download_encoding(req.header("accept-encoding").value_or(""), false);
    if (enc.status != 200) {
      out.reply = json_error(enc.status, enc.error);
      co_return;
    }
    out.gzip = out.archive == ArchiveFormat::tar && enc.coding == rest::ContentCoding::gzip;
    co_return;
  }

  // Accept-Encoding (§6.5 rules 7 and 8): a Range or conditional header forces identity.
  auto enc =
      rest::negotiate_download_encoding(req.header("accept-encoding").value_or(""), has_conditional_or_range(req));
  if (enc.status != 200) {
    out.reply = json_error(enc.status, enc.error);
    co_return;
  }
  out.gzip = enc.coding == rest::ContentCoding::gzip;

  auto open_job = [path, raw_path] {
    OpenResult r;
    // O_NONBLOCK: opening a FIFO must not wait for a writer (a pool thread would hang with it);
    // it changes nothing for regular files.
    r.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (r.fd < 0) {
      r.err = errno;
    } else if (::fstat(r.fd, &r.st) != 0) {
      r.err = errno;
      ::close(r.fd);
      r.fd = -1;
    }
    if (r.fd >= 0) r.ext_type = rest::type_by_extension(raw_path);  // reads the system's mime database
    return r;
  };
  OpenResult opened = co_await run_blocking(WorkClass::meta, open_job);
  if (opened.fd < 0) {
    out.reply = json_error(500, "error opening file '" + path + "': " + path_error("open", path, opened.err));
    co_return;
  }
  out.file.fd = opened.fd;
  out.st = opened.st;
  out.ext_type = std::move(opened.ext_type);
  // The open file is the truth from here on (the path may have changed since the stat).
  if (S_ISDIR(out.st.st_mode)) out.reply = json_error(400, "path '" + path + "' is a directory");
}

struct ArchivePiece {
  std::string data;
  bool more = true;
};

// GET of a directory as a tar (or tar.gz): the walk produces a bounded piece per pool job, which
// is compressed there too when gzip applies, and the next job starts only after the transport
// took the previous piece (write_body suspends while the client is slow).
asio::awaitable<void> serve_archive(http::Exchange& ex, const Opened& opened, const FilesOptions& options) {
  auto archiver = std::make_shared<DirArchiver>(options.archive, opened.path);
  const std::string path = opened.path;
  auto open_job = [archiver, path] { return archiver->open_root(path); };
  if (int err = co_await run_blocking(WorkClass::meta, open_job); err != 0) {
    co_await send_reply(ex,
                        json_error(500, "error opening directory '" + path + "': " + path_error("open", path, err)));
    co_return;
  }
  const bool tgz = opened.archive == ArchiveFormat::tar_gzip;
  std::string base(display_name(path));
  if (base.empty() || base == "/") base = "root";
  http::Headers headers{{"content-disposition", rest::inline_content_disposition(base + (tgz ? ".tar.gz" : ".tar"))},
                        {"vary", "Accept, Accept-Encoding"},
                        {"content-type", tgz ? "application/gzip" : "application/x-tar"}};
  if (opened.gzip) headers.emplace_back("content-encoding", "gzip");
  http::ResponseHead head{200, std::move(headers), std::nullopt};
  if (!co_await ex.write_head(std::move(head))) co_return;
  std::shared_ptr<rest::GzipDeflater> gz;
  if (tgz || opened.gzip) gz = std::make_shared<rest::GzipDeflater>();
  const std::size_t chunk = std::max<std::size_t>(options.archive.chunk_bytes, 4096);
  auto cancel = ex.scope().token();
  for (;;) {
    auto job = [archiver, gz, chunk, cancel] {
      ArchivePiece p;
      if (is_cancelled(cancel)) return p;
      p.data.reserve(chunk + 2 * rest::kTarBlock);
      p.more = archiver->fill(p.data, chunk);
      if (gz) p.data = deflate_chunk(*gz, p.data, !p.more);
      return p;
    };
    ArchivePiece piece = co_await run_blocking(WorkClass::walk, job);
    if (ex.closed() || is_cancelled(cancel)) co_return;
    if (!piece.data.empty() && !co_await ex.write_body(std::move(piece.data))) co_return;
    if (!piece.more) break;
  }
  co_await ex.finish();
  log::write(log::Level::debug, "files", "archive of " + path + ": " + std::to_string(archiver->entries()) + " entries",
             {{"request_id", ex.request_id()}});
}

}  // namespace

asio::awaitable<void> serve_download(http::Exchange& ex, const SandboxState& state, const FilesOptions& options) {
  const auto& req = ex.request();
  Opened opened;
  co_await open_for_download(ex, state, opened);
  if (opened.reply) {
    co_await send_reply(ex, std::move(*opened.reply));
    co_return;
  }
  if (opened.archive != ArchiveFormat::none) {
    co_await serve_archive(ex, opened, options);
    co_return;
  }
  const int fd = opened.file.fd;
  const std::string& path = opened.path;
  const std::size_t chunk = std::max<std::size_t>(options.gzip_chunk_bytes, 4096);
  const std::string etag = strong_etag(opened.st, etag_generations().get(opened.st.st_dev, opened.st.st_ino));
  http::Headers headers = file_headers(path);

  if (opened.gzip) {
    // No sniffing on the gzip path: the extension, else application/octet-stream (§6.5).
    std::string ct = opened.ext_type.empty() ? std::string("application/octet-stream") : opened.ext_type;
    headers.emplace_back("content-type", std::move(ct));
    headers.emplace_back("etag", weak_gzip_etag(etag));
    co_await send_gzip(ex, fd, path, std::move(headers), chunk);
    co_return;
  }

  // identity, as http.ServeContent: Content-Type from the raw path's extension, else sniffed from
  // the first 512 bytes (pread: the body starts at 0 regardless).
  std::string ctype = opened.ext_type;
  if (ctype.empty()) {
    auto sniff_job = [fd] {
      std::string b(512, '\0');
      ssize_t n;
      do {
        n = ::pread(fd, b.data(), b.size(), 0);
      } while (n < 0 && errno == EINTR);
      b.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      return b;
    };
    std::string head = co_await run_blocking(WorkClass::data, sniff_job);
    ctype = std::string(rest::detect_content_type(head));
  }
  IdentityPlan plan = plan_identity(req, std::move(headers), opened.st, etag, std::move(ctype));
  if (plan.reply) {
    co_await send_reply(ex, std::move(*plan.reply));
    co_return;
  }
  if (!co_await ex.write_head(std::move(plan.head))) co_return;
  for (std::size_t i = 0; i < plan.ranges.ranges.size(); ++i) {
    if (plan.multipart) {
      std::string part = plan.multipart->part_header(i);
      if (!co_await ex.write_body(std::move(part))) co_return;
    }
    const auto& r = plan.ranges.ranges[i];
    // sendfile on HTTP/1.1, chunks read on the pool on h2c; a file that turns out shorter than
    // promised aborts the response (connection closed / stream reset).
    if (r.length > 0 &&
        !co_await ex.write_file(fd, static_cast<std::uint64_t>(r.start), static_cast<std::uint64_t>(r.length)))
      co_return;
  }
  if (plan.multipart) {
    std::string closing = plan.multipart->closing();
    if (!co_await ex.write_body(std::move(closing))) co_return;
  }
  co_await ex.finish();
}

}  // namespace envd::fs
