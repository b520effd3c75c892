#include "envd/footprint.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

namespace {

constexpr std::string_view kSmaps =
    "00400000-00401000 r--p 00000000 fe:00 5308475                            /opt/envd\n"
    "Size:                  4 kB\n"
    "Rss:                   4 kB\n"
    "Anonymous:             0 kB\n"
    "VmFlags: rd mr mw me sd \n"
    "00401000-007c1000 r-xp 00001000 fe:00 5308475                            /opt/envd\n"
    "Size:               3840 kB\n"
    "Rss:                3196 kB\n"
    "Anonymous:             0 kB\n"
    "008c6000-008de000 r--p 004c5000 fe:00 5308475                            /opt/envd\n"
    "Rss:                  96 kB\n"
    "Anonymous:            12 kB\n"
    "008de000-008e3000 rw-p 004dd000 fe:00 5308475                            /opt/envd\n"
    "Rss:                  20 kB\n"
    "Anonymous:             0 kB\n"
    "00900000-00901000 r--p 00000000 fe:00 5308475                            /opt/envd\n"
    "Rss:                   0 kB\n"
    "Anonymous:             0 kB\n"
    "7fb0de81b000-7fb0de81d000 r-xp 00000000 fe:00 1234                       /opt/envd-other\n"
    "Rss:                   8 kB\n"
    "Anonymous:             0 kB\n"
    "7fb0de900000-7fb0de901000 r-xp 00000000 fe:00 5308475                    /opt/envd\n"
    "Rss:                   4 kB\n";

}  // namespace

TEST_CASE("footprint: only clean, read-only, resident mappings of our own file are dropped") {
  auto ms = envd::clean_image_mappings(kSmaps, "/opt/envd");
  REQUIRE(ms.size() == 2);
  CHECK(ms[0].start == 0x400000);
  CHECK(ms[0].length == 0x1000);
  CHECK(ms[0].resident_bytes == 4096);
  CHECK(ms[1].start == 0x401000);
  CHECK(ms[1].length == 0x3c0000);
  CHECK(ms[1].resident_bytes == 3196 * 1024);
  // Written RELRO (Anonymous 12 kB), the writable data, a mapping with nothing resident, another
  // file, and a mapping whose Anonymous count is unknown are all kept.
  CHECK(envd::clean_image_mappings(kSmaps, "").empty());
  CHECK(envd::clean_image_mappings("garbage\n-\n\n", "/opt/envd").empty());
}

TEST_CASE("footprint: releasing our own clean pages keeps the program working") {
  std::size_t released = envd::release_clean_image_pages();
  // The test binary's code is resident (it is running), so something was released.
  CHECK(released > 0);
  // Code and read-only data fault back in from the page cache.
  std::string s = "still " + std::to_string(42);
  CHECK(s == "still 42");
  std::ifstream in("/proc/self/status");
  CHECK(in.good());
}
