#pragma once
// The filesystem.Filesystem operations as plain synchronous functions (contract §3.3, §5.2–5.6,
// §5.9): each takes resolved paths (§3.2 done by the caller), makes its syscalls on the calling
// thread — the service runs them on the blocking pool — and returns the contract's code and
// message, worded as envd's Go errors ("lstat /x: no such file or directory").
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "envd/rpc/status.h"
#include "fs/entry_info.h"

namespace filesystem {
class ListDirResponse;
}

namespace envd::fs {

// Same type as envd::CancelToken (envd/blocking.h): set on the loop, polled here between files.
using CancelToken = std::shared_ptr<const std::atomic<bool>>;
inline bool cancelled(const CancelToken& t) { return t && t->load(std::memory_order_relaxed); }

// An OS-level failure: errno and envd's Go-worded text.
struct OsResult {
  int err = 0;
  std::string error;
  bool ok() const { return err == 0; }
};

// envd's EnsureDirs (§3.3): walks `dir` from "/" down; a missing component is mkdir 0755 and
// chown uid:gid (also when mkdir lost an EEXIST race); existing directories are left alone; an
// existing non-directory → ENOTDIR "path is a file: <p>". Other texts: "failed to stat
// directory: …", "failed to create directory: …", "failed to chown directory: …".
OsResult ensure_dirs(std::string_view dir, uid_t uid, gid_t gid);

// Go's filepath.Dir: everything before the last slash, cleaned ("." when there is none).
std::string go_dir(std::string_view path);

// Go's os.RemoveAll: recursive, without following symlinks; a missing path is success. The text
// is Go's ("unlinkat /a/b: directory not empty", "RemoveAll /x/.: invalid argument").
OsResult remove_all(const std::string& path, const CancelToken& cancel = {});

// RemoveAll of `name` inside the open directory `parent_fd` (never following symlinks). 0 or errno.
int remove_all_at(int parent_fd, const std::string& name);

// The RPCs. `out` is filled only on success.
rpc::Status stat_entry(const std::string& path, IdNames& names, ::filesystem::EntryInfo& out);
// `depth` 0 means 1. Children are shown under `path` (joined and cleaned, as Go's filepath.Join).
rpc::Status list_dir(const std::string& path, std::uint32_t depth, IdNames& names, ::filesystem::ListDirResponse& out,
                     const CancelToken& cancel = {});
rpc::Status make_dir(const std::string& path, uid_t uid, gid_t gid, IdNames& names, ::filesystem::EntryInfo& out);
// rename(2) after EnsureDirs(parent(dst)); across devices (EXDEV) a copy into a temporary sibling
// of `dst` that keeps mode, owner, times, user.* xattrs and hard links, renamed into place, then
// the source removed. On failure or cancellation the copy is removed and the source untouched.
rpc::Status move(const std::string& src, const std::string& dst, uid_t uid, gid_t gid, IdNames& names,
                 ::filesystem::EntryInfo& out, const CancelToken& cancel = {});
rpc::Status remove(const std::string& path, const CancelToken& cancel = {});

// The cross-device part of move on its own (exposed for tests): copies `src` to a temporary
// sibling of `dst`, renames it onto `dst`, removes `src`.
OsResult move_across_devices(const std::string& src, const std::string& dst, const CancelToken& cancel = {});

}  // namespace envd::fs
