// Keeping envd's resident set small between requests (DESIGN §6: idle RSS is paid once per sandbox).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace envd {

// Unmaps the resident pages of envd's own executable that are clean copies of the file (code and
// read-only data never written since exec), so that code used once at start-up (static
// initialisers, descriptor registration, flag parsing) stops counting against envd's RSS. The
// pages stay in the page cache; code that runs again faults back in as a minor fault. Mappings
// that hold any written (copy-on-write) page, such as RELRO with its resolved GOT entries, and all
// writable mappings are left alone: dropping those would lose data. Returns the bytes released.
std::size_t release_clean_image_pages();

struct ImageMapping {
  std::uintptr_t start = 0;
  std::size_t length = 0;
  std::size_t resident_bytes = 0;
};

// The parser behind it, for tests: the mappings of `exe` in /proc/<pid>/smaps text that are safe to
// drop (read-only, resident, and with an `Anonymous:` count of zero).
std::vector<ImageMapping> clean_image_mappings(std::string_view smaps, std::string_view exe);

}  // namespace envd
