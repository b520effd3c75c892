#include "pty/pty.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace envd::pty {

namespace {
std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }
}  // namespace

Pair open_pair(std::uint16_t cols, std::uint16_t rows) {
  Pair p;
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) {
    p.error = errno_text("open /dev/ptmx", errno);
    return p;
  }
  if (grantpt(master) != 0 || unlockpt(master) != 0) {
    p.error = errno_text("unlockpt", errno);
    ::close(master);
    return p;
  }
  // TIOCGPTPEER opens the slave through the master (no path lookup, works in any mount namespace).
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    char name[128];
    if (ptsname_r(master, name, sizeof name) != 0) {
      p.error = errno_text("ptsname", errno);
      ::close(master);
      return p;
    }
    slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
      p.error = errno_text((std::string("open ") + name).c_str(), errno);
      ::close(master);
      return p;
    }
  }
  if (int e = resize(master, cols, rows); e != 0) {
    p.error = errno_text("TIOCSWINSZ", e);
    ::close(master);
    ::close(slave);
    return p;
  }
  int fl = ::fcntl(master, F_GETFL);
  if (fl < 0 || ::fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0) {
    p.error = errno_text("fcntl", errno);
    ::close(master);
    ::close(slave);
    return p;
  }
  p.master = master;
  p.slave = slave;
  return p;
}

int resize(int master_fd, std::uint16_t cols, std::uint16_t rows) {
  struct winsize ws {};
  ws.ws_col = cols;
  ws.ws_row = rows;
  return ::ioctl(master_fd, TIOCSWINSZ, &ws) == 0 ? 0 : errno;
}

int window_size(int fd, std::uint16_t& cols, std::uint16_t& rows) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return errno;
  cols = ws.ws_col;
  rows = ws.ws_row;
  return 0;
}

int make_controlling_tty_in_child(int slave) {
  if (::setsid() < 0) return errno;
  if (::ioctl(slave, TIOCSCTTY, 0) != 0) return errno;
  return 0;
}

}  // namespace envd::pty
