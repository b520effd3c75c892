#pragma once
// Streaming gzip both ways (zlib), with output bounded by the caller's buffer on every call: a
// gzip bomb never makes us allocate more than the chunk we hand in. The inflater accepts
// multi-member streams as Go's gzip.Reader does (members back to back; anything after a member
// that is not another member is an error) and words its errors as Go does ("unexpected EOF",
// "gzip: invalid header", "gzip: invalid checksum", "flate: corrupt input before offset N").
// The RPC codec's one-shot helpers (envd/rpc/codec.h) are built on these classes.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace envd::rest {

struct GzipStep {
  std::size_t consumed = 0;  // input bytes used
  std::size_t produced = 0;  // output bytes written
};

class GzipInflater {
 public:
  GzipInflater();
  ~GzipInflater();
  GzipInflater(const GzipInflater&) = delete;
  GzipInflater& operator=(const GzipInflater&) = delete;

  // Inflates from `in` into `out`. Call again with the unconsumed rest of `in` (or more input)
  // while it makes progress; `produced == out.size()` means more output may be pending even with
  // no new input. After an error (failed()) nothing more is done.
  GzipStep inflate(std::span<const char> in, std::span<char> out);
  // At the end of the input: true when the stream ended on a member boundary after at least one
  // member; otherwise failed() becomes true with Go's text ("EOF" for no data at all, "unexpected
  // EOF" for a truncated member).
  bool finish();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Whether the error happened before the first member's header was complete (Go reports those
  // when creating the reader: envd answers 400 "failed to create gzip reader: …", else 500).
  bool error_in_first_header() const { return failed() && !first_header_done_; }
  // Whether the inflater is between members (a member just ended, no byte of the next one seen).
  bool at_member_boundary() const { return between_members_; }

 private:
  struct State;
  std::unique_ptr<State> s_;
  std::string error_;
  bool between_members_ = false;
  bool first_header_done_ = false;
  bool any_input_ = false;
  std::size_t total_in_ = 0;
};

class GzipDeflater {
 public:
  enum class Flush { none, sync, finish };
  explicit GzipDeflater(int level = -1);  // -1: zlib's default level (Go's DefaultCompression)
  ~GzipDeflater();
  GzipDeflater(const GzipDeflater&) = delete;
  GzipDeflater& operator=(const GzipDeflater&) = delete;

  // Compresses `in` into `out`. With Flush::sync/finish, call again (with the rest of `in`, or
  // empty) until `done_flushing()`: the flush or the trailer may need more output room.
  GzipStep deflate(std::span<const char> in, std::span<char> out, Flush flush);
  // After a finish: the whole stream (trailer included) was written. After a sync: everything
  // given so far is out.
  bool done_flushing() const { return flushed_; }

 private:
  struct State;
  std::unique_ptr<State> s_;
  bool flushed_ = false;
};

// One-shot helpers over the classes.
std::string gzip_compress(std::string_view data, int level = -1);
// Inflates a whole (multi-member) body into `out`; "" on success, else the error text (Go's), or
// "too large" when the output would exceed `limit` (nothing beyond limit + one chunk is kept).
std::string gzip_decompress(std::string_view data, std::size_t limit, std::string& out);

}  // namespace envd::rest
