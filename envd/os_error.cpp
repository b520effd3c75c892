#include "envd/os_error.h"

#include <cstring>

namespace envd {

std::string errno_text(int err) {
  // Checked against the reference binary: for every errno glibc names, Go's table has the same
  // text with a lowercase first letter, except EDOTDOT (Go keeps "RFS" capitalised).
  if (err == 73) return "RFS specific error";
  char buf[128];
  // GNU strerror_r: returns a pointer to the text (maybe a static string, maybe buf).
  const char* s = ::strerror_r(err, buf, sizeof buf);
  std::string out = s ? s : "";
  if (out.empty() || out.starts_with("Unknown error")) return "errno " + std::to_string(err);
  if (out[0] >= 'A' && out[0] <= 'Z') out[0] = static_cast<char>(out[0] - 'A' + 'a');
  return out;
}

std::string path_error(std::string_view op, std::string_view path, int err) {
  std::string out;
  out.reserve(op.size() + path.size() + 40);
  out.append(op).append(" ").append(path).append(": ").append(errno_text(err));
  return out;
}

std::string syscall_error(std::string_view op, int err) {
  std::string out(op);
  out.append(": ").append(errno_text(err));
  return out;
}

}  // namespace envd
