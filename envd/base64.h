#pragma once
// Base64 for the places it appears: Basic credentials (standard alphabet, padding required as
// Go's StdEncoding), HTTP2-Settings (URL-safe alphabet, no padding) and gRPC-Web text bodies
// (standard alphabet, a body may be several padded segments one after another).
#include <optional>
#include <string>
#include <string_view>

namespace envd {

enum class Base64 { standard, url_unpadded };

// nullopt on characters outside the alphabet, data after padding, or (standard) a bad length.
std::optional<std::string> base64_decode(std::string_view in, Base64 kind);

// Standard alphabet, padded (Go's StdEncoding) or, with pad=false, unpadded (RawStdEncoding).
std::string base64_encode(std::string_view in, bool pad = true);

// Appends `in` to `out` in the standard alphabet, padded, written straight into `out` (SSSE3 where
// the CPU has it, else two characters per table look-up): the hot path of process output streamed
// as JSON, where every byte goes through it. base64_encode is built on it.
void base64_append(std::string& out, std::string_view in);

// Decodes a body that arrives in pieces of any size: a sequence of standard, padded base64
// segments ("QQ==QkM=" is "A" then "BC"), as gRPC-Web text clients may send.
class Base64Stream {
 public:
  // Appends the decoded bytes of every complete 4-character group; false on bad input.
  bool feed(std::string_view in, std::string& out);
  // True when no partial group is left over (call at the end of the body).
  bool complete() const { return pending_.empty(); }

 private:
  std::string pending_;
};

}  // namespace envd
