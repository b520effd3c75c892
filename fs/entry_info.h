#pragma once
// filesystem.EntryInfo exactly as envd builds it (contract §5.1), and the pieces of Go's os and
// path/filepath behaviour it depends on (FileMode.String, basename, EvalSymlinks). Everything
// here makes syscalls on client-supplied paths: call it on the blocking pool.
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "envd/users.h"

namespace filesystem {
class EntryInfo;
}

namespace envd::fs {

// Owner and group names for one call: each id is looked up once, not once per entry of a
// 100,000-entry listing. The files are parsed by system_user_db() (shared, re-read only when they
// change) unless the test constructor names others. Not shared between threads.
class IdNames {
 public:
  IdNames() : db_(&system_user_db()) {}
  IdNames(std::string passwd_path, std::string group_path)
      : own_(std::make_unique<UserDb>(std::move(passwd_path), std::move(group_path))), db_(own_.get()) {}
  const std::string& user(std::uint32_t uid);
  const std::string& group(std::uint32_t gid);

 private:
  std::unique_ptr<UserDb> own_;
  const UserDb* db_;
  std::unordered_map<std::uint32_t, std::string> users_, groups_;
};

// Go's os.FileMode(...).String() of a stat(2) st_mode: "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx",
// "dtrwxrwxrwx", "urwxr-xr-x", "Dcrw-rw-rw-", "prw-r--r--", "Srwxr-xr-x".
std::string go_file_mode_string(mode_t st_mode);

// The name os.Lstat gives: trailing slashes dropped, then what follows the last slash ("/" → "/").
std::string go_basename(std::string_view path);

// Strict UTF-8 as Go's utf8.ValidString (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// filepath.EvalSymlinks: component by component, lexical "..", at most 255 links, the result
// cleaned. Errors are worded as Go's: "lstat /a/b: no such file or directory", "not a
// directory" (a file with components after it), "EvalSymlinks: too many links".
struct EvalResult {
  std::string path;
  int err = 0;  // errno of the failure (ELOOP for too many links); 0 on success
  bool too_many_links = false;
  std::string error;  // Go's error text
  bool ok() const { return err == 0; }
};
EvalResult eval_symlinks(std::string_view path);

// Fills `out` from an lstat result of `fs_path`. `shown_path` goes into `path` (a ListDir child
// is shown under the requested root while `fs_path` is under the resolved one).
void fill_entry_info(const std::string& fs_path, std::string shown_path, const struct stat& lst, IdNames& names,
                     ::filesystem::EntryInfo& out);

// lstat(path) + fill_entry_info. Returns 0, or the errno of the lstat.
int entry_info_at(const std::string& path, IdNames& names, ::filesystem::EntryInfo& out);

// `user.e2b.*` extended attributes of `path` (following symlinks), prefix stripped; entries with
// non-UTF-8 keys or values are skipped, errors ignored (best effort, as envd).
void read_e2b_metadata(const std::string& path, ::filesystem::EntryInfo& out);

}  // namespace envd::fs
