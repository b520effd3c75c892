#pragma once
// FIFREEZE / FITHAW (contract §6.8, envd 0.6.6) on the filesystem of one path (--fsfreeze-path,
// `/` in a VM). After FIFREEZE every write to that filesystem blocks until FITHAW, so:
//  - freeze_path() (open + FIFREEZE, which first syncs the filesystem) runs on the blocking pool
//    and keeps the descriptor, so that the thaw needs no path lookup;
//  - thaw_fd()/thaw_path() never block (FITHAW does not wait for writers) and run on the loop,
//    so a thaw never waits behind pool threads stuck writing to the frozen filesystem.
// tmpfs and overlayfs implement no freeze: FIFREEZE fails with EOPNOTSUPP, and /fsfreeze answers
// that error instead of a 204 the orchestrator would take for a consistent snapshot.
#include <string>

namespace envd::pause {

struct FsFreezeOutcome {
  int fd = -1;       // the frozen filesystem's descriptor (held until the thaw), or -1
  int error = 0;     // errno of the failed step
  std::string step;  // "open" or "FIFREEZE" when it failed
};

// open(path, O_RDONLY|O_DIRECTORY) and ioctl(FIFREEZE). Blocks (sync); call it on the pool.
FsFreezeOutcome freeze_path(const std::string& path);
// ioctl(FITHAW) on a descriptor freeze_path() returned, then closes it. 0, or errno (EINVAL: the
// filesystem was not frozen any more, e.g. thawed by `fsfreeze -u`: not an error for callers).
int thaw_fd(int fd);
// The same for a filesystem this process did not freeze (a previous envd did): opens the path
// (a lookup and an open for reading do not write, so they do not wait on a frozen filesystem).
int thaw_path(const std::string& path);

// envd's error texts: "FIFREEZE /: operation not supported", "open /x: no such file or directory".
std::string fs_error_text(const std::string& step, const std::string& path, int error);

}  // namespace envd::pause
