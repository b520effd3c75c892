#include "fs/compose.h"

#include "envd/os_error.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace envd::fs {

namespace {

constexpr std::size_t kCopyChunk = 16u << 20;  // cancellation is checked between chunks

// copy_file_range, or read/write where the kernel cannot (another filesystem type, EXDEV on
// old kernels). Returns 0 or an errno.
int copy_all(int in, int out, const std::atomic<bool>* cancel) {
  bool plain = false;
  std::string buf;
  for (;;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return ECANCELED;
    if (!plain) {
      ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, kCopyChunk, 0);
      if (n == 0) return 0;
      if (n > 0) continue;
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return errno;
      plain = true;
      buf.resize(1u << 20);
    }
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<std::size_t>(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      off += w;
    }
  }
}

}  // namespace

std::string random_uuid() {
  unsigned char b[16];
  std::size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::optional<ComposeRequest> parse_compose_request(std::string_view body, WriteFailure& failure) {
  ComposeRequest req;
  try {
    auto j = nlohmann::json::parse(body);
    if (!j.is_null() && !j.is_object()) throw std::runtime_error("the body is not a JSON object");
    if (j.is_object()) {
      // Field names match case-insensitively, as Go's encoding/json does.
      for (auto& [key, value] : j.items()) {
        std::string k = key;
        for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (k == "source_paths") {
          if (value.is_null()) continue;
          if (!value.is_array()) throw std::runtime_error("source_paths must be an array of strings");
          req.source_paths.clear();
          for (auto& s : value) {
            if (!s.is_string()) throw std::runtime_error("source_paths must be an array of strings");
            req.source_paths.push_back(s.get<std::string>());
          }
        } else if (k == "destination" || k == "username") {
          if (value.is_null()) continue;
          if (!value.is_string()) throw std::runtime_error(k + " must be a string");
          if (k == "destination")
            req.destination = value.get<std::string>();
          else
            req.username = value.get<std::string>();
        }
      }
    }
  } catch (const std::exception& e) {
    failure = {400, std::string("invalid request body: ") + e.what()};
    return std::nullopt;
  }
  if (req.source_paths.empty()) {
    failure = {400, "source_paths must not be empty"};
    return std::nullopt;
  }
  if (req.destination.empty()) {
    failure = {400, "destination is required"};
    return std::nullopt;
  }
  return req;
}

std::optional<WriteFailure> check_compose_paths(const std::vector<ComposeSource>& sources,
                                                const std::string& destination) {
  for (const auto& s : sources)
    if (s.resolved == destination)
      return WriteFailure{400, "source path \"" + s.raw + "\" cannot be the same as destination"};
  return std::nullopt;
}

std::optional<WriteFailure> check_compose_sources(const std::vector<ComposeSource>& sources) {
  for (const auto& s : sources) {
    struct stat st {};
    if (::stat(s.resolved.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return WriteFailure{404, "source file not found: " + s.raw};
      return WriteFailure{500, "error checking source file " + s.raw + ": " + errno_text(errno)};
    }
    if (!S_ISREG(st.st_mode)) return WriteFailure{400, "source path is not a regular file: " + s.raw};
  }
  return std::nullopt;
}

std::optional<WriteFailure> compose_files(const std::vector<ComposeSource>& sources, const std::string& destination,
                                          uid_t uid, gid_t gid, const std::atomic<bool>* cancel,
                                          struct stat* final_stat) {
  if (auto f = check_compose_paths(sources, destination)) return f;
  if (auto f = check_compose_sources(sources)) return f;

  std::string name(base_name(destination));
  int dir = open_parent_dir(destination);
  if (dir < 0) return WriteFailure{500, "error opening destination directory: " + errno_text(errno)};
  struct stat cur {};
  if (name.empty() || name == "." || name == ".." ||
      (::fstatat(dir, name.c_str(), &cur, 0) == 0 && S_ISDIR(cur.st_mode))) {
    ::close(dir);
    return WriteFailure{400, "path is a directory: " + destination};
  }
  // Named like envd's, beside the destination; never follows a symlink planted under that name.
  std::string tmp = name + ".e2b-compose." + random_uuid() + ".tmp";
  int out = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (out < 0) {
    int err = errno;
    ::close(dir);
    if (is_no_space(err)) return WriteFailure{507, "not enough disk space available"};
    return WriteFailure{500, "error creating temp file: open " + destination + ".e2b-compose.tmp: " + errno_text(err)};
  }
  auto fail = [&](WriteFailure f) {
    ::close(out);
    ::unlinkat(dir, tmp.c_str(), 0);
    ::close(dir);
    return f;
  };
  if (::fchown(out, uid, gid) != 0) return fail({500, "error creating temp file: fchown: " + errno_text(errno)});
  for (const auto& s : sources) {
    int in = ::open(s.resolved.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (in < 0) {
      int err = errno;
      if (err == ENOENT) return fail({404, "source file not found: " + s.raw});
      return fail({500, "error opening source file " + s.raw + ": " + errno_text(err)});
    }
    int err = copy_all(in, out, cancel);
    ::close(in);
    if (err == ECANCELED) return fail({499, "request cancelled"});
    if (is_no_space(err)) return fail({507, "not enough disk space available"});
    if (err != 0) return fail({500, "error composing files: copy " + s.raw + ": " + errno_text(err)});
  }
  if (cancel && cancel->load(std::memory_order_relaxed)) return fail({499, "request cancelled"});
  {
    PathLock lock(destination);
    if (::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) {
      int err = errno;
      return fail(
          {is_no_space(err) ? 507 : 500, "error finalizing compose: rename " + destination + ": " + errno_text(err)});
    }
  }
  if (final_stat) ::fstat(out, final_stat);
  ::close(out);
  ::close(dir);
  for (const auto& s : sources) ::unlink(s.resolved.c_str());  // errors ignored, as envd does
  return std::nullopt;
}

}  // namespace envd::fs
