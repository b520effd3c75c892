// Media types as Go's mime package reads and writes them (envd/rest/media_type.h): the
// Content-Type of uploads and the Content-Disposition of multipart parts (parse), and the
// Content-Disposition of downloads, built from a client's path (format). A formatted header never
// carries CR, LF or NUL (no header injection through a file name) and parses back to the same
// file name; a parsed media type formats and parses back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envd/rest/content.h"
#include "envd/rest/media_type.h"

namespace {
bool header_safe(std::string_view v) {
  for (char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  // A download's Content-Disposition from any base name.
  std::string cd = envd::rest::inline_content_disposition(in);
  if (!header_safe(cd)) std::abort();
  auto back = envd::rest::parse_media_type(cd);
  if (!back || back->type != "inline" || back->params.size() != 1 || back->params["filename"] != in) std::abort();

  // Any header value: parse; what parses formats to a header-safe value that parses the same.
  if (auto mt = envd::rest::parse_media_type(in)) {
    std::string f = envd::rest::format_media_type(mt->type, mt->params);
    if (!header_safe(f)) std::abort();
    if (!f.empty()) {
      auto again = envd::rest::parse_media_type(f);
      if (!again || again->type != mt->type || again->params != mt->params) std::abort();
    }
  }
  return 0;
}
