#pragma once
// POST /collapse (contract §6.8, envd 0.6.5): before a snapshot, envd's own heap is gathered
// into transparent huge pages with madvise(MADV_COLLAPSE), so the snapshot holds fewer, larger
// pages of envd. Only envd's anonymous private writable mappings ([heap], malloc arenas, large
// allocations) are touched, 2 MiB-aligned chunk by chunk; a chunk is collapsed only when at least
// `min_resident_pct` of its pages are resident (collapsing an almost empty chunk would fault in
// a whole 2 MiB of zeros and grow the RSS for nothing).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace envd::pause {

inline constexpr std::size_t kHugePageBytes = 2u << 20;
// Anonymous mappings larger than this are reservations, not heap (ASan's shadow and allocator
// spaces are terabytes; walking them chunk by chunk took 23 s): /collapse leaves them out.
inline constexpr std::uintptr_t kMaxHeapRegionBytes = std::uintptr_t{1} << 30;

struct CollapseResult {
  std::size_t already_huge = 0;  // chunks already backed by a huge page
  std::size_t chunks = 0;        // 2 MiB-aligned chunks inside the regions
  std::size_t collapsed = 0;     // chunks MADV_COLLAPSE turned into a huge page
  std::int64_t elapsed_ms = 0;
  std::size_t regions = 0;  // anonymous private writable mappings examined
  std::size_t skipped = 0;  // chunks too sparsely resident, or that the kernel refused
  int last_error = 0;       // errno of the last refusal (EINVAL: no THP support), for the log
  // {"alreadyHuge":..,"chunks":..,"collapsed":..,"elapsedMs":..,"regions":..,"skipped":..} (envd's)
  std::string json() const;
};

struct MemRegion {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
};

// The heap regions of a /proc/<pid>/maps text: private, readable and writable, anonymous (no
// inode) mappings that are `[heap]` or nameless. Stacks, vdso/vvar and file mappings are left out.
std::vector<MemRegion> heap_regions(std::string_view maps);
// The starts of the 2 MiB-aligned chunks wholly inside `r`.
std::vector<std::uintptr_t> aligned_chunks(const MemRegion& r);

// Does the work on the calling thread (a pool thread: MADV_COLLAPSE is synchronous).
CollapseResult collapse_heap(unsigned min_resident_pct);

}  // namespace envd::pause
