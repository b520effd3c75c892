#include "envd/rpc/envelope.h"

namespace envd::rpc {

std::string encode_envelope(std::uint8_t flags, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  auto n = static_cast<std::uint32_t>(payload.size());
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(payload);
  return out;
}

void set_envelope_header(std::string& frame, std::uint8_t flags) {
  auto n = static_cast<std::uint32_t>(frame.size() - 5);
  frame[0] = static_cast<char>(flags);
  frame[1] = static_cast<char>(n >> 24);
  frame[2] = static_cast<char>(n >> 16);
  frame[3] = static_cast<char>(n >> 8);
  frame[4] = static_cast<char>(n);
}

EnvelopeReader::Result EnvelopeReader::next(Envelope& out) {
  if (buf_.size() - off_ < 5) return Result::need_more;
  auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + off_);
  std::uint32_t n = (std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 8) | p[4];
  announced_ = n;
  if (n > max_payload_) return Result::too_large;
  if (buf_.size() - off_ - 5 < n) return Result::need_more;
  out.flags = p[0];
  out.payload.assign(buf_, off_ + 5, n);
  off_ += 5 + n;
  // Compact once the consumed prefix dominates, so the buffer stays bounded by one frame.
  if (off_ > 64 * 1024 && off_ * 2 > buf_.size()) {
    buf_.erase(0, off_);
    off_ = 0;
  }
  return Result::envelope;
}

}  // namespace envd::rpc
