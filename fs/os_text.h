#pragma once
// Go-worded OS error text for the fs service (until envd/os_error.h lands on this branch; same
// API): errno text is strerror with a lowercase first letter, os.PathError is "op path: text".
#include <cstring>
#include <string>
#include <string_view>

namespace envd::fs {

inline std::string errno_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

inline std::string path_error(std::string_view op, std::string_view path, int err) {
  std::string s(op);
  s += ' ';
  s += path;
  s += ": ";
  s += errno_text(err);
  return s;
}

}  // namespace envd::fs
