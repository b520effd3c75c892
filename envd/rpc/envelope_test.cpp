#include "envd/rpc/envelope.h"

#include <doctest/doctest.h>

using namespace envd::rpc;

TEST_CASE("envelope: encode writes flags and big-endian length") {
  auto e = encode_envelope(0x02, "abc");
  REQUIRE(e.size() == 8);
  CHECK(static_cast<unsigned char>(e[0]) == 0x02);
  CHECK(e.substr(1, 4) == std::string("\0\0\0\3", 4));
  CHECK(e.substr(5) == "abc");
}

TEST_CASE("envelope: a header set over 5 reserved bytes matches encode_envelope") {
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{300}, std::size_t{70000}, std::size_t{1} << 24}) {
    std::string payload(n, 'x');
    std::string frame = std::string(5, '\0') + payload;
    set_envelope_header(frame, 0x01);
    CHECK(frame == encode_envelope(0x01, payload));
  }
}

TEST_CASE("envelope: split reads assemble one frame") {
  EnvelopeReader r(1024);
  auto wire = encode_envelope(0, "hello world");
  Envelope env;
  for (std::size_t i = 0; i + 1 < wire.size(); ++i) {
    r.feed(wire.substr(i, 1));
    CHECK(r.next(env) == EnvelopeReader::Result::need_more);
  }
  r.feed(wire.substr(wire.size() - 1));
  REQUIRE(r.next(env) == EnvelopeReader::Result::envelope);
  CHECK(env.payload == "hello world");
  CHECK(r.pending() == 0);
}

TEST_CASE("envelope: merged reads yield every frame in order") {
  EnvelopeReader r(1024);
  r.feed(encode_envelope(0, "a") + encode_envelope(1, "") + encode_envelope(2, "ccc"));
  Envelope env;
  REQUIRE(r.next(env) == EnvelopeReader::Result::envelope);
  CHECK(env.payload == "a");
  REQUIRE(r.next(env) == EnvelopeReader::Result::envelope);
  CHECK(env.flags == 1);
  CHECK(env.payload.empty());
  REQUIRE(r.next(env) == EnvelopeReader::Result::envelope);
  CHECK(env.flags == 2);
  CHECK(env.payload == "ccc");
  CHECK(r.next(env) == EnvelopeReader::Result::need_more);
}

TEST_CASE("envelope: a length over the limit is refused before buffering the payload") {
  EnvelopeReader r(10);
  r.feed(std::string("\0\0\0\0\x0b", 5));
  Envelope env;
  CHECK(r.next(env) == EnvelopeReader::Result::too_large);
  CHECK(r.announced_length() == 11);
}

TEST_CASE("envelope: a huge announced length is refused, not allocated") {
  EnvelopeReader r(32u << 20);
  r.feed(std::string("\0\xff\xff\xff\xff", 5));
  Envelope env;
  CHECK(r.next(env) == EnvelopeReader::Result::too_large);
}

TEST_CASE("envelope: a truncated frame stays pending") {
  EnvelopeReader r(1024);
  auto wire = encode_envelope(0, "0123456789");
  r.feed(wire.substr(0, 8));
  Envelope env;
  CHECK(r.next(env) == EnvelopeReader::Result::need_more);
  CHECK(r.pending() == 8);
  CHECK(r.announced_length() == 10);
}

TEST_CASE("envelope: many frames keep the buffer compacted") {
  EnvelopeReader r(1 << 20);
  std::string payload(4096, 'x');
  Envelope env;
  for (int i = 0; i < 1000; ++i) {
    r.feed(encode_envelope(0, payload));
    REQUIRE(r.next(env) == EnvelopeReader::Result::envelope);
  }
  CHECK(r.pending() == 0);
}
