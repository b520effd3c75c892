// The Connect/gRPC envelope reader fed in pieces of fuzzer-chosen sizes: every byte is consumed,
// no envelope over the limit is ever buffered, and pending() stays consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envd/rpc/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t piece = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  envd::rpc::EnvelopeReader reader(4096);
  envd::rpc::Envelope env;
  std::size_t delivered = 0;
  while (!in.empty()) {
    auto chunk = in.substr(0, piece);
    in.remove_prefix(chunk.size());
    reader.feed(chunk);
    for (;;) {
      auto r = reader.next(env);
      if (r == envd::rpc::EnvelopeReader::Result::envelope) {
        if (env.payload.size() > 4096) std::abort();
        delivered += 5 + env.payload.size();
        continue;
      }
      if (r == envd::rpc::EnvelopeReader::Result::too_large) {
        if (reader.announced_length() <= 4096) std::abort();
        return 0;  // the caller refuses the stream here
      }
      break;
    }
  }
  if (delivered + reader.pending() != size - 1) std::abort();
  return 0;
}
