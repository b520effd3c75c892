#pragma once
// Directories as archives (README "Directories as archives"): the blocking halves of
// GET /files?path=<dir> with `Accept: application/x-tar` (DirArchiver) and of POST /files with
// `Content-Type: application/x-tar` (ArchiveExtractor). Everything here makes syscalls on the
// calling thread: the handlers run it on the blocking pool, a bounded piece at a time.
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "envd/rest/gzip.h"
#include "envd/rest/tar.h"
#include "fs/file_writer.h"

namespace envd::fs {

struct ArchiveOptions {
  std::uint64_t max_entries = 100'000;       // --archive-max-entries (upload; more → 413)
  std::uint64_t max_bytes = 16ull << 30;     // --archive-max-bytes: file data of one upload (→ 413)
  std::size_t max_name_bytes = 4096;         // --archive-max-name-bytes (→ 400)
  std::size_t max_header_bytes = 64 * 1024;  // --archive-max-header-bytes: one pax record (→ 413)
  std::size_t max_depth = 256;               // --archive-max-depth: directory levels walked / created
  std::size_t chunk_bytes = 256 * 1024;      // archive bytes produced per pool job (download)
};

// ---- Accept negotiation ----

enum class ArchiveFormat { none, tar, tar_gzip };

// The archive an Accept header asks for: an explicit `application/x-tar` or `application/gzip`
// media range with q > 0 (the higher q wins, the earlier on a tie). `*/*` and `application/*`
// never select an archive.
ArchiveFormat archive_from_accept(std::string_view accept);

// ---- download ----

// Walks a directory tree and produces its tar archive in pieces. Entries: regular files,
// directories, symlinks (as links), FIFOs and devices (headers only, never opened), with modes,
// owners, mtimes and user.e2b.* xattrs (pax SCHILY.xattr records); sockets are left out (tar has
// no type for them). Every entry is opened relative to its directory's fd with O_NOFOLLOW; a
// directory on another filesystem (a mount point) is written but not descended into. A file
// that changes size while read is padded with zeros or cut to the size in its header (logged).
class DirArchiver {
 public:
  DirArchiver(const ArchiveOptions& opts, std::string log_path) : opts_(opts), root_path_(std::move(log_path)) {}
  ~DirArchiver();
  DirArchiver(const DirArchiver&) = delete;
  DirArchiver& operator=(const DirArchiver&) = delete;

  // Opens the root (following a symlinked root, as downloads do). 0 or errno.
  int open_root(const std::string& path);
  // Appends up to about `budget` bytes of archive to `out`. Returns false once the archive is
  // complete (the end marker included).
  bool fill(std::string& out, std::size_t budget);
  std::uint64_t entries() const { return entries_; }
  std::uint64_t changed_files() const { return changed_; }

 private:
  struct Dir {
    int fd = -1;
    void* dir = nullptr;  // DIR*
    std::string prefix;   // "a/b/" ("" for the root)
  };
  void add_entry(Dir& parent, const char* name);
  void warn(const std::string& what);

  // Files with more than one link already archived: (dev, inode) → the name they went out under,
  // so later names go out as hard-link entries. Bounded by kMaxLinkNameBytes of names; past it,
  // further names of a linked file are written as separate files (logged once).
  static constexpr std::size_t kMaxLinkNameBytes = 4 << 20;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::size_t link_name_bytes_ = 0;
  bool links_full_warned_ = false;

  ArchiveOptions opts_;
  std::string root_path_;
  dev_t root_dev_ = 0;
  std::vector<Dir> stack_;
  std::string pending_;  // headers not yet handed out
  int file_fd_ = -1;
  std::string file_name_;
  std::uint64_t file_left_ = 0, file_size_ = 0;
  bool file_short_ = false;
  bool ended_ = false;
  std::uint64_t entries_ = 0, changed_ = 0;
};

// ---- upload ----

// One entry the response lists (contract §6.6's REST shape).
struct ExtractedEntry {
  std::string path;  // absolute, under the target
  bool dir = false;
};

// Extracts a tar stream (gzip-compressed or not: sniffed) into a new directory `target`, which
// must not exist or be an empty directory (else 409). Everything goes into
// `<target>.e2b-extract.<random>` (created 0700, owned by root until the end), every path opened
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) from that directory's fd;
// only regular files, directories, symlinks (targets stored verbatim, never followed) and hard
// links to regular files already extracted; setuid/setgid/sticky dropped; owners set to uid:gid;
// only user.e2b.* xattrs restored (security.*, trusted.*, system.* and ACL records refused);
// then one rename onto the target. Any failure removes the staging directory.
class ArchiveExtractor {
 public:
  ArchiveExtractor(const ArchiveOptions& opts, uid_t uid, gid_t gid);
  ~ArchiveExtractor();  // abort() unless committed
  ArchiveExtractor(const ArchiveExtractor&) = delete;
  ArchiveExtractor& operator=(const ArchiveExtractor&) = delete;

  // Checks the target and creates the staging directory (EnsureDirs of the parent first).
  std::optional<WriteFailure> begin(const std::string& target);
  // Body bytes, in order.
  std::optional<WriteFailure> feed(std::string_view data);
  // The body ended: checks the archive ended, sets directory times, renames into place.
  std::optional<WriteFailure> finish();
  // Removes the staging directory (idempotent).
  void abort();
  const std::vector<ExtractedEntry>& written() const { return written_; }
  const std::string& target() const { return target_; }

 private:
  std::optional<WriteFailure> feed_tar(std::string_view data);
  std::optional<WriteFailure> start_entry(const rest::TarEntry& e);
  std::optional<WriteFailure> end_file();
  std::optional<WriteFailure> entry_error(const std::string& name, int err, const char* op);
  // Opens the parent directory of relative path `rel` beneath the staging dir (O_PATH).
  int open_parent(const std::string& rel, int& err);

  ArchiveOptions opts_;
  uid_t uid_;
  gid_t gid_;
  std::string target_, parent_, base_, staging_name_;
  int parent_fd_ = -1, staging_fd_ = -1;
  bool committed_ = false;
  // gzip sniffing: decided on the first two bytes.
  enum class Coding { unknown, plain, gzip } coding_ = Coding::unknown;
  std::string sniff_;
  std::unique_ptr<rest::GzipInflater> inflater_;
  std::string inflated_;
  bool tar_ended_ = false;
  rest::TarReader reader_;
  // The regular file being written.
  int file_fd_ = -1;
  std::string file_name_;
  struct timespec pending_mtime_ {};
  std::uint64_t total_bytes_ = 0;
  std::vector<ExtractedEntry> written_;
  struct DirTime {
    std::string rel;
    struct timespec mtime;
  };
  std::vector<DirTime> dir_times_;
  bool root_mode_set_ = false;
  mode_t root_mode_ = 0755;
};

// Normalises an archive entry name: strips leading "./", collapses "//" and "/."; refuses an
// absolute name, a ".." component or an empty result. nullopt with `why` set when refused.
std::optional<std::string> clean_entry_name(std::string_view name, std::string& why);

}  // namespace envd::fs
