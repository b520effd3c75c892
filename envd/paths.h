#pragma once
// Path resolution shared by every service (contract §3.2, envd's ExpandAndResolve):
//  ""           → the default workdir if set, else "" (callers then use the user's home)
//  "~", "~/x"   → home, home/x;  "~name" → error
//  absolute     → unchanged (not cleaned, symlinks not resolved)
//  relative     → clean(home/path) — against HOME, never against the default workdir
#include <optional>
#include <string>
#include <string_view>

#include "envd/users.h"

namespace envd {

struct ResolvedPath {
  std::string path;
  std::string error;  // non-empty: invalid_argument with this message
  bool ok() const { return error.empty(); }
};

ResolvedPath expand_and_resolve(std::string_view path, const User& user, std::string_view default_workdir);

// Lexical clean as Go's filepath.Clean.
std::string clean_path(std::string_view path);

}  // namespace envd
