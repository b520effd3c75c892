#include "envd/footprint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "envd/text_file.h"

namespace envd {

namespace {

struct Mapping {
  ImageMapping range;
  bool writable = true;
  bool ours = false;
  bool anonymous_known = false;
  std::uint64_t anonymous_kib = 0;
};

// A mapping header: "start-end perms offset dev inode   path". Field lines ("Rss:   12 kB")
// start with a capital letter, so they never parse as one.
bool parse_header(std::string_view line, std::string_view exe, Mapping& m) {
  std::string_view rest = line;
  std::string_view range = next_word(rest);
  std::string_view perms = next_word(rest);
  std::size_t dash = range.find('-');
  std::uint64_t start = 0, end = 0;
  if (dash == std::string_view::npos || perms.size() != 4 || !to_u64(range.substr(0, dash), start, 16) ||
      !to_u64(range.substr(dash + 1), end, 16) || end <= start)
    return false;
  m = Mapping{};
  m.range.start = static_cast<std::uintptr_t>(start);
  m.range.length = static_cast<std::size_t>(end - start);
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
  for_each_line(smaps, [&](std::string_view line) {
    Mapping next;
    if (parse_header(line, exe, next)) {
      finish();
      cur = next;
      have = true;
      return;
    }
    std::string_view rest = line;
    std::string_view key = next_word(rest);
    std::uint64_t kib = 0;
    if (!have || !to_u64(next_word(rest), kib)) return;
    if (key == "Rss:") {
      cur.range.resident_bytes = static_cast<std::size_t>(kib * 1024);
    } else if (key == "Anonymous:") {
      cur.anonymous_kib = kib;
      cur.anonymous_known = true;
    }
  });
  finish();
  return out;
}

std::size_t release_clean_image_pages() {
  // Our own path does not change while we run: read it once.
  static const std::string exe = [] {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }();
  auto smaps = read_file("/proc/self/smaps");
  if (exe.empty() || !smaps) return 0;
  std::size_t released = 0;
  for (const auto& m : clean_image_mappings(*smaps, exe)) {
    // For a private file mapping with no written page, MADV_DONTNEED only drops page-table entries:
    // the next access maps the same page-cache page again.
    if (::madvise(reinterpret_cast<void*>(m.start), m.length, MADV_DONTNEED) == 0) released += m.resident_bytes;
  }
  return released;
}

}  // namespace envd
