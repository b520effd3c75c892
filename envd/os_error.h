#pragma once
// OS error text worded as Go's (envd is written in Go, and clients see its messages): the
// syscall.Errno text is the C library's strerror with a lowercase first letter ("no such file or
// directory"); os.PathError is "op path: text"; os.SyscallError is "op: text".
#include <string>
#include <string_view>

namespace envd {

// syscall.Errno(err).Error(): "no such file or directory", "errno 41" for numbers without a name.
std::string errno_text(int err);
// os.PathError: path_error("lstat", "/x", ENOENT) → "lstat /x: no such file or directory".
std::string path_error(std::string_view op, std::string_view path, int err);
// os.SyscallError / a plain "op: text": syscall_error("pipe", EMFILE) → "pipe: too many open files".
std::string syscall_error(std::string_view op, int err);

}  // namespace envd
