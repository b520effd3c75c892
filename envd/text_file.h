#pragma once
// Reading small text files (/proc, /etc) and picking them apart without iostreams: the one set of
// helpers metrics, users, cgroups and the footprint code share.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace envd {

// The whole file; nullopt if it cannot be opened or read.
std::optional<std::string> read_file(const std::string& path);

// Splits off the next word separated by spaces or tabs ("" when none is left).
std::string_view next_word(std::string_view& s);

// A whole word as an unsigned decimal (base 16 on request); false on anything else.
bool to_u64(std::string_view w, std::uint64_t& out, int base = 10);

// Calls f(line) for each line, without the newline.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    f(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
}

}  // namespace envd
