#pragma once
// Small security helpers with no dependencies (a leaf: services and REST code include it freely).
#include <string_view>

namespace envd {

// Compares without an early exit on the first differing byte (a token or signature must not leak
// through response timing). Only the lengths' maximum shows in the time taken.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace envd
