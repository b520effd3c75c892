#include "envd/pause/collapse.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>

#include "envd/text_file.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1
#endif

namespace envd::pause {

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kPagemapPresent = 1ull << 63;
constexpr std::uint64_t kPagemapPfnMask = (1ull << 55) - 1;
constexpr std::uint64_t kKpfThp = 1ull << 22;

bool parse_hex(std::string_view s, std::uintptr_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits off the next whitespace-separated field.
std::string_view next_field(std::string_view& line) {
  std::size_t b = line.find_first_not_of(' ');
  if (b == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(b);
  std::size_t e = line.find(' ');
  std::string_view f = line.substr(0, e);
  line.remove_prefix(e == std::string_view::npos ? line.size() : e);
  return f;
}

// Whether the chunk at `addr` is already mapped by a transparent huge page: its first page's
// frame (/proc/self/pagemap, root only) carries KPF_THP in /proc/kpageflags.
bool is_huge(int pagemap, int kpageflags, std::uintptr_t addr) {
  if (pagemap < 0 || kpageflags < 0) return false;
  std::uint64_t entry = 0;
  if (::pread(pagemap, &entry, sizeof entry, static_cast<off_t>(addr / kPage * sizeof entry)) != sizeof entry)
    return false;
  if (!(entry & kPagemapPresent)) return false;
  std::uint64_t pfn = entry & kPagemapPfnMask;
  if (pfn == 0) return false;  // not root: frames are hidden
  std::uint64_t flags = 0;
  if (::pread(kpageflags, &flags, sizeof flags, static_cast<off_t>(pfn * sizeof flags)) != sizeof flags) return false;
  return (flags & kKpfThp) != 0;
}

std::size_t resident_pages(std::uintptr_t addr) {
  unsigned char vec[kHugePageBytes / kPage];
  if (::mincore(reinterpret_cast<void*>(addr), kHugePageBytes, vec) != 0) return 0;
  std::size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

}  // namespace

std::string CollapseResult::json() const {
  return "{\"alreadyHuge\":" + std::to_string(already_huge) + ",\"chunks\":" + std::to_string(chunks) +
         ",\"collapsed\":" + std::to_string(collapsed) + ",\"elapsedMs\":" + std::to_string(elapsed_ms) +
         ",\"regions\":" + std::to_string(regions) + ",\"skipped\":" + std::to_string(skipped) + "}";
}

std::vector<MemRegion> heap_regions(std::string_view maps) {
  std::vector<MemRegion> out;
  while (!maps.empty()) {
    auto nl = maps.find('\n');
    std::string_view line = maps.substr(0, nl);
    maps.remove_prefix(nl == std::string_view::npos ? maps.size() : nl + 1);
    // "start-end perms offset dev inode [path]"
    std::string_view range = next_field(line), perms = next_field(line);
    next_field(line);  // offset
    next_field(line);  // dev
    std::string_view inode = next_field(line), path = next_field(line);
    if (perms.size() < 4 || perms.substr(0, 2) != "rw" || perms[3] != 'p' || inode != "0") continue;
    if (!path.empty() && path != "[heap]") continue;  // [stack], [vvar], named anonymous mappings
    auto dash = range.find('-');
    MemRegion r;
    if (dash == std::string_view::npos || !parse_hex(range.substr(0, dash), r.start) ||
        !parse_hex(range.substr(dash + 1), r.end) || r.end <= r.start || r.end - r.start > kMaxHeapRegionBytes)
      continue;
    out.push_back(r);
  }
  return out;
}

std::vector<std::uintptr_t> aligned_chunks(const MemRegion& r) {
  std::vector<std::uintptr_t> out;
  std::uintptr_t a = (r.start + kHugePageBytes - 1) & ~(std::uintptr_t{kHugePageBytes} - 1);
  for (; a + kHugePageBytes <= r.end && a >= r.start; a += kHugePageBytes) out.push_back(a);
  return out;
}

CollapseResult collapse_heap(unsigned min_resident_pct) {
  const auto start = std::chrono::steady_clock::now();
  CollapseResult res;
  auto regions = heap_regions(read_file("/proc/self/maps").value_or(""));
  res.regions = regions.size();
  int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int kpageflags = ::open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  const std::size_t min_resident = (kHugePageBytes / kPage) * min_resident_pct / 100;
  for (const auto& r : regions) {
    for (std::uintptr_t a : aligned_chunks(r)) {
      ++res.chunks;
      if (is_huge(pagemap, kpageflags, a)) {
        ++res.already_huge;
        continue;
      }
      std::size_t resident = resident_pages(a);
      if (resident == 0 || resident < min_resident) {
        ++res.skipped;
        continue;
      }
      if (::madvise(reinterpret_cast<void*>(a), kHugePageBytes, MADV_COLLAPSE) == 0) {
        ++res.collapsed;
      } else {
        res.last_error = errno;
        ++res.skipped;
      }
    }
  }
  if (pagemap >= 0) ::close(pagemap);
  if (kpageflags >= 0) ::close(kpageflags);
  res.elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace envd::pause
