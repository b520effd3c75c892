// The tar reader of archive uploads (envd/rest/tar.h): any bytes, fed in fuzzer-chosen pieces,
// with small bounds so the 413 paths are reached. Invariants: every data event lies inside the
// piece given, an entry's data never exceeds its size, nothing follows an error, and what the
// writer makes of an entry reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envd/rest/tar.h"

using envd::rest::TarReader;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 600;
  std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  TarReader r(envd::rest::TarLimits{4096, 512});
  std::uint64_t left = 0;
  bool failed = false, ended = false;
  for (std::string_view rest = all; !rest.empty() && !failed && !ended;) {
    std::string chunk(rest.substr(0, piece));  // a fresh buffer per piece (ASan sees overreads)
    rest.remove_prefix(chunk.size());
    std::string_view in = chunk;
    for (;;) {
      const char* before = in.data();
      auto ev = r.next(in);
      if (ev == TarReader::Event::need_more) {
        if (!in.empty()) std::abort();
        break;
      }
      if (ev == TarReader::Event::entry) {
        left = r.entry().size;
        // Round trip through the writer: the same name, type and size come back.
        std::string again = envd::rest::tar_headers(r.entry());
        TarReader back(envd::rest::TarLimits{1 << 20, 1 << 20});
        std::string_view bin = again;
        auto bev = back.next(bin);
        if (bev != TarReader::Event::entry) std::abort();
        auto want = r.entry().name;
        if (r.entry().type == envd::rest::TarType::directory && (want.empty() || want.back() != '/')) want += '/';
        if (back.entry().name != want) std::abort();
        if (r.entry().type == envd::rest::TarType::regular && back.entry().size != r.entry().size) std::abort();
      } else if (ev == TarReader::Event::data) {
        auto d = r.data();
        if (d.data() < before || d.size() > left || d.empty()) std::abort();
        left -= d.size();
      } else if (ev == TarReader::Event::end) {
        ended = true;
        break;
      } else {
        failed = true;
        if (r.error().empty() || (r.error_status() != 400 && r.error_status() != 413)) std::abort();
        if (r.next(in) != TarReader::Event::error) std::abort();
        break;
      }
    }
  }
  if (!failed && !ended) (void)r.finish();
  return 0;
}
