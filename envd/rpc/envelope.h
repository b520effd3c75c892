#pragma once
// The 5-byte length-prefixed envelope used by Connect streaming, gRPC and gRPC-Web:
// flags (uint8) + length (uint32 big-endian) + payload.
#include <cstdint>
#include <string>
#include <string_view>

namespace envd::rpc {

inline constexpr std::uint8_t kFlagCompressed = 0x01;
inline constexpr std::uint8_t kFlagConnectEndStream = 0x02;
inline constexpr std::uint8_t kFlagGrpcWebTrailers = 0x80;

std::string encode_envelope(std::uint8_t flags, std::string_view payload);
// Fills the first 5 bytes of `frame` (reserved by the caller, the payload after them) with the
// header for `flags` and the payload's length.
void set_envelope_header(std::string& frame, std::uint8_t flags);

struct Envelope {
  std::uint8_t flags = 0;
  std::string payload;
};

// Incremental decoder: feed() bytes as they arrive, then take complete envelopes with next().
// A frame is refused before its payload is buffered if its length exceeds the limit.
class EnvelopeReader {
 public:
  enum class Result { envelope, need_more, too_large };

  explicit EnvelopeReader(std::size_t max_payload) : max_payload_(max_payload) {}

  void feed(std::string_view bytes) { buf_.append(bytes); }
  Result next(Envelope& out);
  // Bytes of a started but unfinished frame (non-zero at end of body means a truncated stream).
  std::size_t pending() const { return buf_.size() - off_; }
  // Length announced by the frame that was refused, or of the pending frame.
  std::uint64_t announced_length() const { return announced_; }

 private:
  std::string buf_;
  std::size_t off_ = 0;
  std::size_t max_payload_;
  std::uint64_t announced_ = 0;
};

}  // namespace envd::rpc
