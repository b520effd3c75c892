// gRPC-Web text request bodies: a run of padded base64 segments split anywhere. Decoding in pieces
// must give the same bytes and the same verdict as decoding the whole body at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envd/base64.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t piece = 1 + data[0] % 16;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  envd::Base64Stream whole;
  std::string whole_out;
  bool whole_ok = whole.feed(in, whole_out) && whole.complete();

  envd::Base64Stream split;
  std::string split_out;
  bool split_ok = true;
  for (std::string_view rest = in; !rest.empty() && split_ok;) {
    auto chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    split_ok = split.feed(chunk, split_out);
  }
  split_ok = split_ok && split.complete();
  if (whole_ok != split_ok) std::abort();
  if (whole_ok && whole_out != split_out) std::abort();
  if (whole_ok && whole_out.size() > in.size()) std::abort();
  return 0;
}
