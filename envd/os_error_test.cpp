#include "envd/os_error.h"

#include <doctest/doctest.h>

#include <cerrno>

using namespace envd;

TEST_CASE("os_error: Go's errno wording") {
  // Texts as they appear in the reference envd binary (Go's syscall error table).
  CHECK(errno_text(ENOENT) == "no such file or directory");
  CHECK(errno_text(EIO) == "input/output error");
  CHECK(errno_text(EAGAIN) == "resource temporarily unavailable");
  CHECK(errno_text(ELOOP) == "too many levels of symbolic links");
  CHECK(errno_text(EXDEV) == "invalid cross-device link");
  CHECK(errno_text(ENOSPC) == "no space left on device");
  CHECK(errno_text(EDQUOT) == "disk quota exceeded");
  CHECK(errno_text(ESTALE) == "stale file handle");
  CHECK(errno_text(ECANCELED) == "operation canceled");
  CHECK(errno_text(EOPNOTSUPP) == "operation not supported");
  CHECK(errno_text(EPIPE) == "broken pipe");
  CHECK(errno_text(73) == "RFS specific error");
  CHECK(errno_text(41) == "errno 41");
  CHECK(errno_text(100000) == "errno 100000");
}

TEST_CASE("os_error: PathError and SyscallError shapes") {
  CHECK(path_error("lstat", "/x", ENOENT) == "lstat /x: no such file or directory");
  CHECK(path_error("open", "/a b/c", EISDIR) == "open /a b/c: is a directory");
  CHECK(syscall_error("pipe", EMFILE) == "pipe: too many open files");
}
