#include "envd/procfs.h"

#include "envd/text_file.h"

namespace envd {

std::optional<MemInfo> parse_meminfo(std::string_view text) {
  std::optional<std::uint64_t> total;
  std::uint64_t free = 0, buffers = 0, cached = 0, sreclaimable = 0;
  for_each_line(text, [&](std::string_view line) {
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    std::uint64_t kb = 0;
    if (!to_u64(next_word(rest), kb)) return;
    std::uint64_t bytes = kb * 1024;
    if (key == "MemTotal") total = bytes;
    if (key == "MemFree") free = bytes;
    if (key == "Buffers") buffers = bytes;
    if (key == "Cached") cached = bytes;
    if (key == "SReclaimable") sreclaimable = bytes;
  });
  if (!total) return std::nullopt;
  MemInfo m;
  m.total = *total;
  m.cache = cached + sreclaimable;
  std::uint64_t unused = free + buffers + m.cache;
  m.used = m.total > unused ? m.total - unused : 0;
  return m;
}

}  // namespace envd
