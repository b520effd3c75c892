#pragma once
// Parsers of /proc files shared by the metrics sampler and the process service (a leaf: no
// transport, no loop).
#include <cstdint>
#include <optional>
#include <string_view>

namespace envd {

struct MemInfo {
  std::uint64_t total = 0;  // bytes
  std::uint64_t used = 0;   // total − free − buffers − cache
  std::uint64_t cache = 0;  // Cached + SReclaimable
};

// Parses /proc/meminfo (kB values). nullopt if MemTotal is missing.
std::optional<MemInfo> parse_meminfo(std::string_view text);

}  // namespace envd
