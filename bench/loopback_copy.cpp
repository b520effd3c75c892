// The floor for /files transfers (DESIGN §6): the same bytes over a loopback TCP socket with no
// HTTP. A sender thread sendfile()s <src> into the socket; the receiver read()s it into a 1 MiB
// buffer and write()s it to <dst> (/dev/null for downloads, a tmpfs file for uploads).
//
//   loopback_copy <src> <dst> [runs]   → prints "best_seconds bytes" (best of `runs`, default 5)
//
// Built by bench/files_download.py with the system compiler; not part of envd.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

double one_run(const char* src, const char* dst) {
  int lst = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lst < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(lst, 1) != 0) die("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");

  int in = ::open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) die(src);
  struct stat st {};
  if (::fstat(in, &st) != 0) die("fstat");
  int out = ::open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) die(dst);

  auto t0 = std::chrono::steady_clock::now();
  std::thread sender([&] {
    int c = ::accept4(lst, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) die("accept");
    off_t off = 0;
    while (off < st.st_size) {
      ssize_t n = ::sendfile(c, in, &off, static_cast<std::size_t>(st.st_size - off));
      if (n <= 0) die("sendfile");
    }
    ::close(c);
  });
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(s, buf.data(), buf.size());
    if (n < 0) die("read");
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buf.data() + done, static_cast<std::size_t>(n - done));
      if (w <= 0) die("write");
      done += w;
    }
  }
  sender.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(s);
  ::close(in);
  ::close(out);
  ::close(lst);
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <src> <dst> [runs]\n", argv[0]);
    return 2;
  }
  int runs = argc > 3 ? std::atoi(argv[3]) : 5;
  struct stat st {};
  if (::stat(argv[1], &st) != 0) die(argv[1]);
  double best = 1e18;
  for (int i = 0; i < runs; ++i) {
    double t = one_run(argv[1], argv[2]);
    if (t < best) best = t;
  }
  std::printf("%.6f %lld\n", best, static_cast<long long>(st.st_size));
  return 0;
}
