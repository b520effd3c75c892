#include "envd/pause/collapse.h"

#include <doctest/doctest.h>
#include <sys/mman.h>

#include <cstring>

using envd::pause::aligned_chunks;
using envd::pause::heap_regions;
using envd::pause::kHugePageBytes;
using envd::pause::MemRegion;

TEST_CASE("heap_regions keeps [heap] and nameless private rw anonymous mappings up to 1 GiB only") {
  constexpr std::string_view maps =
      "00400000-00401000 r--p 00000000 fe:00 5308475                            /opt/envd\n"
      "00c00000-01000000 rw-p 00000000 00:00 0                                  [heap]\n"
      "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \n"
      "7f0004000000-7f0008000000 ---p 00000000 00:00 0 \n"
      "600000000000-640000000000 rw-p 00000000 00:00 0 \n"  // 64 TiB: a reservation, not heap
      "7f0010000000-7f0010200000 rw-s 00000000 00:05 1234                       /dev/zero (deleted)\n"
      "7f0020000000-7f0020021000 rw-p 00000000 00:00 0                          [anon:glibc]\n"
      "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
      "7ffc10000000-7ffc10002000 r-xp 00000000 00:00 0                          [vdso]\n"
      "00d00000-00e00000 rw-p 00001000 fe:00 5308475                            /opt/envd\n"
      "garbage line\n";
  auto r = heap_regions(maps);
  REQUIRE(r.size() == 2);
  CHECK(r[0].start == 0x00c00000);
  CHECK(r[0].end == 0x01000000);
  CHECK(r[1].start == 0x7f0000000000);
  CHECK(r[1].end == 0x7f0004000000);
}

TEST_CASE("aligned_chunks: only whole 2 MiB-aligned chunks inside the region") {
  CHECK(aligned_chunks(MemRegion{0x00c00000, 0x01000000}).size() == 2);  // 12-16 MiB
  CHECK(aligned_chunks(MemRegion{0x00c01000, 0x01000000}).size() == 1);  // 14-16 MiB only
  CHECK(aligned_chunks(MemRegion{0x00c01000, 0x00dff000}).empty());      // no whole chunk
  CHECK(aligned_chunks(MemRegion{0x00e00000, 0x01000000}).front() == 0x00e00000);
}

TEST_CASE("collapse_heap: a resident 4 MiB heap block becomes huge pages; an empty one is skipped") {
  // An aligned, fully written anonymous block (as a big malloc would be).
  const std::size_t len = 3 * kHugePageBytes;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  auto base = (reinterpret_cast<std::uintptr_t>(p) + kHugePageBytes - 1) & ~(std::uintptr_t{kHugePageBytes} - 1);
  ::madvise(p, len, MADV_NOHUGEPAGE);  // start from small pages...
  ::madvise(p, len, MADV_HUGEPAGE);    // ...but let MADV_COLLAPSE act
  std::memset(reinterpret_cast<void*>(base), 1, kHugePageBytes);
  auto first = envd::pause::collapse_heap(50);
  CHECK(first.regions >= 1);
  CHECK(first.chunks >= 1);
  CHECK(first.chunks == first.collapsed + first.already_huge + first.skipped);
  CHECK(first.json().find("\"alreadyHuge\":") == 1);
  if (first.last_error == 0) {  // a kernel with THP: the block is huge now, a second run finds it so
    auto second = envd::pause::collapse_heap(50);
    CHECK(second.already_huge >= 1);
  }
  // The contents survive.
  CHECK(reinterpret_cast<unsigned char*>(base)[kHugePageBytes - 1] == 1);
  ::munmap(p, len);
}
