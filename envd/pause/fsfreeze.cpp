#include "envd/pause/fsfreeze.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "envd/os_error.h"

namespace envd::pause {

FsFreezeOutcome freeze_path(const std::string& path) {
  FsFreezeOutcome out;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    out.error = errno;
    out.step = "open";
    return out;
  }
  if (::ioctl(fd, FIFREEZE, 0) != 0) {
    out.error = errno;
    out.step = "FIFREEZE";
    ::close(fd);
    return out;
  }
  out.fd = fd;
  return out;
}

int thaw_fd(int fd) {
  int err = ::ioctl(fd, FITHAW, 0) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

int thaw_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  return thaw_fd(fd);
}

std::string fs_error_text(const std::string& step, const std::string& path, int error) {
  return path_error(step, path, error);
}

}  // namespace envd::pause
