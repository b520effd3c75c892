#include "envd/paths.h"

#include <vector>

namespace envd {

std::string clean_path(std::string_view path) {
  if (path.empty()) return ".";
  bool rooted = path.front() == '/';
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    i = j + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out += '/';
    out += parts[k];
  }
  if (out.empty()) return ".";
  return out;
}

ResolvedPath expand_and_resolve(std::string_view path, const User& user, std::string_view default_workdir) {
  if (path.empty()) {
    return {std::string(default_workdir), {}};
  }
  if (path.front() == '~') {
    if (path.size() > 1 && path[1] != '/') {
      return {{},
              "failed to expand path '" + std::string(path) + "' for user '" + user.name +
                  "': cannot expand user-specific home dir"};
    }
    std::string rest(path.substr(1));
    return {clean_path(user.home + rest), {}};
  }
  if (path.front() == '/') return {std::string(path), {}};
  return {clean_path(user.home + "/" + std::string(path)), {}};
}

}  // namespace envd
