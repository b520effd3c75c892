#pragma once
// Writing one uploaded file (contract §3.3, §6.6), in place or atomically. Everything here is
// blocking and runs on the pool (envd/blocking.h); the upload handler feeds it body pieces.
//
// - In place (the default, what envd does): the target is opened once, relative to its parent
//   directory's fd, following a final symlink; the opened fd is chowned, never a path (envd runs as
//   root in directories the sandbox user controls). When the decoded length is known, that many
//   bytes are reserved with fallocate(FALLOC_FL_KEEP_SIZE) *before* the file is truncated: no room
//   → 507 and the old content is untouched. After truncation a failure leaves a prefix of the new
//   content, never a mix of old and new.
// - Atomic (`?atomic=true`, or implied by a conditional header): the body goes to an O_TMPFILE
//   (fallback: a random hidden name, O_CREAT|O_EXCL|O_NOFOLLOW, 0600) in the parent directory's
//   fd, which is chowned to the user, given the old permission bits (setuid/setgid dropped when
//   the owner changes), fsynced, then linked/renamed over the target through the same directory fd
//   under a per-path lock. A failure or an abandoned upload leaves the old file and no temporary
//   file. Where a rename would change what the path is (not a regular file, several hard links,
//   another device), the write is refused instead.
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace envd::fs {

// A failed step: the HTTP status and the jsonError message (contract §6.6 wording).
struct WriteFailure {
  int status = 500;
  std::string message;
};

// ---- metadata (user.e2b.* xattrs, contract §6.6) ----

inline constexpr std::string_view kMetadataXattrPrefix = "user.e2b.";
inline constexpr std::size_t kMaxMetadataKeyBytes = 246;
inline constexpr std::size_t kMaxMetadataTotalBytes = 4096;

// Keys (lowercase) and values, in the order the headers came; unique keys.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// `X-Metadata-<key>` headers (names already lowercase): the first value of each key; an empty key
// is skipped.
Metadata metadata_from_headers(const std::vector<std::pair<std::string, std::string>>& headers);
// nullopt when valid, else the reason (the response says "invalid metadata: <reason>").
std::optional<std::string> validate_metadata(const Metadata& md);
// Makes the fd's user.e2b.* set exactly `md`: keys not in it are removed. A filesystem without
// xattrs is not an error (`*unsupported` set). ENOSPC/EDQUOT → 507, others → 500.
std::optional<WriteFailure> replace_metadata(int fd, const Metadata& md, bool* unsupported = nullptr);
// The fd's user.e2b.* xattrs, sorted by key (what the response and EntryInfo show).
Metadata read_metadata(int fd);

// ---- helpers shared with compose ----

bool is_no_space(int err);  // ENOSPC or EDQUOT
// 16 random hex digits.
std::string random_hex();
// The parent directory of `path` opened O_DIRECTORY|O_NOFOLLOW (a symlinked parent is followed
// once: that fd is then the only reference used). Returns -1 with errno set.
int open_parent_dir(const std::string& path);
std::string_view base_name(std::string_view path);
// The process umask, read once (from /proc/self/status; 022 if unreadable).
mode_t process_umask();

// Per-path exclusion for check-then-rename inside envd (conditional writes, atomic commits). Held
// on pool threads only.
class PathLock {
 public:
  explicit PathLock(std::string path);
  ~PathLock();
  PathLock(const PathLock&) = delete;
  PathLock& operator=(const PathLock&) = delete;

 private:
  std::string path_;
};

// ---- the writer ----

struct WriterOptions {
  bool atomic = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // The decoded body length, when known before writing (raw body with Content-Length and no
  // Content-Encoding).
  std::optional<std::uint64_t> known_length;
  // The request's Content-Length, when it has one: envd words a full disk as "attempted to write
  // <Content-Length> bytes: not enough disk space available" (the whole body's length, even for
  // multipart or gzip bodies).
  std::optional<std::uint64_t> content_length;
  // If-None-Match: * : the commit fails with 412 if the target exists (atomic only).
  bool create_only = false;
  // Called under the path lock right before the rename with the current target (nullptr if none):
  // a failure (412) stops the commit. Atomic only.
  std::function<std::optional<WriteFailure>(const struct stat* current)> precondition;
};

class FileWriter {
 public:
  FileWriter() = default;
  ~FileWriter();  // abort() if not committed
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // `path` is absolute and resolved; its parent directory exists (EnsureDirs ran).
  std::optional<WriteFailure> open(const std::string& path, WriterOptions opts);
  // Appends body bytes.
  std::optional<WriteFailure> write(std::string_view data);
  // Writes metadata and makes the file visible (atomic) — the last step of a successful upload.
  std::optional<WriteFailure> commit(const Metadata& md);
  // Drops an uncommitted upload: atomic → the temporary file goes, the target is untouched.
  void abort();

  // After commit: the written file's stat (for ETag generations and EntryInfo).
  const struct stat& final_stat() const { return final_stat_; }
  // After commit: the metadata read back from the file (what the response shows).
  const Metadata& final_metadata() const { return final_metadata_; }
  // Whether the target may have changed (in place: opened; atomic: committed), for ETag generations.
  bool touched() const { return touched_; }
  bool metadata_unsupported() const { return metadata_unsupported_; }
  std::uint64_t written() const { return written_; }

 private:
  std::optional<WriteFailure> open_in_place();
  std::optional<WriteFailure> open_atomic();
  std::optional<WriteFailure> commit_atomic();
  std::optional<WriteFailure> refuse_replace(const struct stat& st) const;
  WriteFailure write_error(int err) const;

  std::string path_;
  std::string name_;
  WriterOptions opts_;
  int dir_fd_ = -1;
  int fd_ = -1;
  std::string temp_name_;  // atomic fallback (no O_TMPFILE): the hidden name to unlink on abort
  bool committed_ = false;
  bool metadata_unsupported_ = false;
  bool regular_ = true;  // in place into a FIFO or device: no truncation, chown or metadata
  std::uint64_t written_ = 0;
  struct stat dir_stat_ {};
  struct stat final_stat_ {};
  Metadata final_metadata_;
  bool touched_ = false;
};

}  // namespace envd::fs
