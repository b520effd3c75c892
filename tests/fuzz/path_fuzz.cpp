// Path resolution (contract §3.2, envd/paths.h): every filesystem RPC, /files and the process cwd
// go through it with client strings. Pure: no filesystem call. Input: path, home and default
// workdir separated by NUL bytes. Checks Go's filepath.Clean invariants and that only a ".."
// component can take a relative or "~/" path out of the user's home.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "envd/paths.h"

namespace {

std::vector<std::string_view> components(std::string_view p) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    auto j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool has_dotdot(std::string_view p) {
  for (auto c : components(p))
    if (c == "..") return true;
  return false;
}

// Go's filepath.Clean output: never empty, no empty or "." component (except "." alone), no
// trailing slash (except "/"), ".." only leading and only when not rooted.
void check_clean(std::string_view in, const std::string& out) {
  if (out.empty()) std::abort();
  if (envd::clean_path(out) != out) std::abort();  // idempotent
  bool rooted = !in.empty() && in.front() == '/';
  if (rooted != (out.front() == '/')) std::abort();
  if (out == "." || out == "/") return;
  std::string_view body = rooted ? std::string_view(out).substr(1) : std::string_view(out);
  bool leading = true;
  for (auto c : components(body)) {
    if (c.empty() || c == ".") std::abort();
    if (c == "..") {
      if (rooted || !leading) std::abort();
    } else {
      leading = false;
    }
  }
}

bool within(const std::string& path, const std::string& home) {
  if (home == "/") return !path.empty() && path.front() == '/';
  return path == home ||
         (path.size() > home.size() && path.compare(0, home.size(), home) == 0 && path[home.size()] == '/');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (int k = 0; k < 3; ++k) {
    auto nul = in.find('\0');
    parts[k] = in.substr(0, nul);
    in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  }
  const std::string_view path = parts[0];
  envd::User user;
  user.name = "fuzz";
  user.home = std::string(parts[1]);
  const std::string_view workdir = parts[2];

  check_clean(path, envd::clean_path(path));

  auto r = envd::expand_and_resolve(path, user, workdir);
  if (path.empty()) {
    if (!r.ok() || r.path != workdir) std::abort();  // "" → the default workdir, as given
    return 0;
  }
  if (path.front() == '~' && path.size() > 1 && path[1] != '/') {
    if (r.ok() || r.error.find("cannot expand user-specific home dir") == std::string::npos) std::abort();
    return 0;
  }
  if (!r.ok()) std::abort();  // nothing else is refused
  if (path.front() == '/') {
    if (r.path != path) std::abort();  // absolute: unchanged, not cleaned
    return 0;
  }
  // Relative or "~", "~/…": cleaned, and inside a clean absolute home unless a ".." climbs out.
  if (envd::clean_path(r.path) != r.path) std::abort();
  const std::string home = envd::clean_path(user.home);
  if (!user.home.empty() && user.home.front() == '/' && home == user.home) {
    std::string_view rest = path.front() == '~' ? path.substr(1) : path;
    if (!has_dotdot(rest) && !within(r.path, home)) std::abort();
  }
  return 0;
}
