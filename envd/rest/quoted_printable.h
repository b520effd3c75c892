#pragma once
// A streaming quoted-printable decoder (RFC 2045 §6.7) for multipart parts that declare
// `Content-Transfer-Encoding: quoted-printable`, decoded as Go's multipart reader (and so envd)
// decodes them: trailing spaces and tabs of each line are dropped; a line ending in `=` joins the
// next (soft break); `=XY` is a byte (hex digits in either case); an `=` not followed by two hex
// digits stays a literal `=` unless a CR or LF follows it; tabs, CR, LF and bytes ≥ 0x80 pass;
// other control bytes are an error. Lines are bounded (kMaxQpLine, as envd's 4 KiB line buffer),
// so a hostile part cannot make the decoder buffer without limit.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace envd::rest {

inline constexpr std::size_t kMaxQpLine = 4096;  // bytes, including the line's LF

class QuotedPrintableDecoder {
 public:
  // Decodes what `in` completes, appending to `out`. Returns an error message (Go's wording) once
  // the input is invalid; every later call returns it again.
  std::optional<std::string> feed(std::string_view in, std::string& out);
  // The end of the part: decodes a last line without LF.
  std::optional<std::string> finish(std::string& out);

 private:
  std::optional<std::string> decode_line(std::string_view line, bool at_eof, std::string& out);
  std::string line_;
  std::optional<std::string> error_;
};

}  // namespace envd::rest
