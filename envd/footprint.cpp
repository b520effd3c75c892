#include "envd/footprint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iterator>
#include <string>

#include "envd/log.h"

namespace envd {

namespace {

struct Mapping {
  ImageMapping range;
  bool writable = true;
  bool ours = false;
  bool anonymous_known = false;
  std::size_t anonymous_kib = 0;
};

bool parse_hex(std::string_view s, std::uintptr_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// "Name:   1234 kB" → 1234 when the line is the field `name`.
bool field_kib(std::string_view line, std::string_view name, std::size_t& out) {
  if (line.substr(0, name.size()) != name) return false;
  std::string_view rest = line.substr(name.size());
  std::size_t i = rest.find_first_not_of(' ');
  if (i == std::string_view::npos) return false;
  rest.remove_prefix(i);
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out);
  return ec == std::errc();
}

// A mapping header: "start-end perms offset dev inode   path". Field lines start with a capital.
bool parse_header(std::string_view line, std::string_view exe, Mapping& m) {
  if (line.empty() || std::string_view("0123456789abcdef").find(line[0]) == std::string_view::npos) return false;
  std::size_t dash = line.find('-');
  std::size_t sp = line.find(' ');
  if (dash == std::string_view::npos || sp == std::string_view::npos || dash > sp) return false;
  std::uintptr_t start = 0, end = 0;
  if (!parse_hex(line.substr(0, dash), start) || !parse_hex(line.substr(dash + 1, sp - dash - 1), end) || end <= start)
    return false;
  std::string_view perms = line.substr(sp + 1, 4);
  if (perms.size() != 4) return false;
  m = Mapping{};
  m.range.start = start;
  m.range.length = end - start;
  m.writable = perms[1] == 'w';
  std::size_t slash = line.find('/');
  m.ours = !exe.empty() && slash != std::string_view::npos && line.substr(slash) == exe;
  return true;
}

}  // namespace

std::vector<ImageMapping> clean_image_mappings(std::string_view smaps, std::string_view exe) {
  std::vector<ImageMapping> out;
  Mapping cur;
  bool have = false;
  auto finish = [&] {
    if (have && cur.ours && !cur.writable && cur.anonymous_known && cur.anonymous_kib == 0 &&
        cur.range.resident_bytes > 0)
      out.push_back(cur.range);
  };
  while (!smaps.empty()) {
    std::size_t nl = smaps.find('\n');
    std::string_view line = smaps.substr(0, nl);
    smaps = nl == std::string_view::npos ? std::string_view{} : smaps.substr(nl + 1);
    Mapping next;
    if (parse_header(line, exe, next)) {
      finish();
      cur = next;
      have = true;
      continue;
    }
    std::size_t kib = 0;
    if (!have) continue;
    if (field_kib(line, "Rss:", kib)) {
      cur.range.resident_bytes = kib * 1024;
    } else if (field_kib(line, "Anonymous:", kib)) {
      cur.anonymous_kib = kib;
      cur.anonymous_known = true;
    }
  }
  finish();
  return out;
}

std::size_t release_clean_image_pages() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return 0;
  std::ifstream in("/proc/self/smaps");
  std::string smaps((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t released = 0;
  for (const auto& m : clean_image_mappings(smaps, std::string_view(exe, static_cast<std::size_t>(n)))) {
    // For a private file mapping with no written page, MADV_DONTNEED only drops page-table entries:
    // the next access maps the same page-cache page again.
    if (::madvise(reinterpret_cast<void*>(m.start), m.length, MADV_DONTNEED) == 0) released += m.resident_bytes;
  }
  return released;
}

}  // namespace envd
