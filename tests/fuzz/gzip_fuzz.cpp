// Streaming gzip inflation of request bodies: input in fuzzer-chosen pieces, output into a small
// fixed buffer, so a gzip bomb never makes the inflater allocate more than the caller's chunk.
// Round trip: what deflates must inflate back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envd/rest/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t piece = 1 + data[0] % 97;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  envd::rest::GzipInflater inf;
  char out[512];
  std::size_t total = 0;
  for (std::string_view rest = in; !rest.empty() && !inf.failed();) {
    auto chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    for (;;) {
      auto step = inf.inflate({chunk.data(), chunk.size()}, {out, sizeof out});
      chunk.remove_prefix(step.consumed);
      total += step.produced;
      if (total > (64u << 20)) return 0;  // a bomb: the caller's own limit stops it here
      if (inf.failed()) break;
      if (step.produced == sizeof out) continue;  // more output may be pending
      if (chunk.empty() || (step.consumed == 0 && step.produced == 0)) break;
    }
  }
  if (!inf.failed()) (void)inf.finish();

  std::string packed = envd::rest::gzip_compress(in);
  std::string back;
  if (!envd::rest::gzip_decompress(packed, in.size() + 1, back).empty() || back != in) std::abort();
  return 0;
}
