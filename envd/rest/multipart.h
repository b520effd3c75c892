#pragma once
// A streaming multipart/form-data reader (POST /files, contract §6.6) with Go's multipart.Reader
// rules: the preamble is skipped line by line until `--B` (+ optional spaces/tabs) and CRLF — or
// LF, which switches the whole body to LF delimiters; a delimiter is `CRLF--B` followed by
// space, tab, CR, LF or `--` (`--Bx` and `--B-x` are part data); `--B--` ends the body and the
// epilogue is ignored. Bodies are never buffered: data events point into the caller's input.
// Part headers are buffered, up to a bound.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "envd/rest/media_type.h"

namespace envd::rest {

// Default bound of one part's header block (--multipart-max-header-bytes can change it).
inline constexpr std::size_t kDefaultMaxPartHeaderBytes = 16 * 1024;

struct MultipartBoundary {
  std::string boundary;  // empty on error
  std::string error;     // Go/envd's wording
};
// The boundary of a `multipart/*` Content-Type (media type parsed as Go's mime.ParseMediaType).
// Errors: "mime: invalid media parameter" style parse failures, a non-multipart type, or
// "no multipart boundary param in Content-Type".
MultipartBoundary multipart_boundary(std::string_view content_type);

class PartHeaders {
 public:
  // Case-insensitive; the first value of the field.
  std::optional<std::string_view> get(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }
  // Content-Disposition parsed as Go's multipart.Part does (nullopt when absent or malformed).
  const std::optional<MediaType>& disposition() const { return disposition_; }
  // The `name` parameter when the disposition is form-data (Go's FormName), else "".
  std::string form_name() const;
  // The `filename` parameter verbatim (no basename, `%22` stays `%22`); nullopt when absent.
  std::optional<std::string> filename() const;

 private:
  friend class MultipartReader;
  std::vector<std::pair<std::string, std::string>> fields_;
  std::optional<MediaType> disposition_;
};

enum class MultipartEvent {
  need_more,   // all input used: feed the next chunk (or call finish() at the end of the body)
  part_begin,  // headers() holds the new part's headers
  data,        // data() holds a piece of the current part's body
  part_end,    // the current part is complete
  done,        // the closing delimiter was seen; further input is ignored
  error,       // error() says why; further calls return error
};

class MultipartReader {
 public:
  explicit MultipartReader(std::string boundary, std::size_t max_header_bytes = kDefaultMaxPartHeaderBytes);

  // Consumes from the front of `in` and reports the next event. data() stays valid until the next
  // call (it points into `in` or into a small internal buffer). The fuzzer's entry point.
  MultipartEvent next(std::string_view& in);
  // The end of the body: `done` when the closing delimiter was seen, `part_end`/`error` otherwise
  // (a truncated part is an error: "unexpected EOF"; no delimiter at all: "multipart: NextPart: EOF").
  MultipartEvent finish();

  std::string_view data() const { return data_; }
  const PartHeaders& headers() const { return headers_; }
  const std::string& error() const { return error_; }

 private:
  enum class State { preamble, headers, body, after_delimiter, epilogue, failed };
  MultipartEvent fail(std::string why);
  // Moves bytes of `in` up to and including '\n' into line_; true when the line is complete.
  bool take_line(std::string_view& in, std::size_t limit);
  MultipartEvent on_preamble_line();
  MultipartEvent on_delimiter_line();
  MultipartEvent on_header_line();
  MultipartEvent body(std::string_view& in);
  MultipartEvent body_hold(std::string_view& in);

  std::string boundary_;
  std::string dash_boundary_;  // "--B"
  std::string delim_;          // "\r\n--B" (or "\n--B" in LF mode)
  std::string nl_ = "\r\n";
  std::size_t max_header_bytes_;
  State state_ = State::preamble;
  std::string line_;
  bool line_too_long_ = false;
  std::size_t header_bytes_ = 0;
  std::string hold_;  // a possible delimiter at the end of the input seen so far
  std::string out_;   // bytes of hold_ given out as data
  std::string_view data_;
  PartHeaders headers_;
  bool in_part_ = false;
  std::string error_;
};

}  // namespace envd::rest
