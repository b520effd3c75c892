#include "envd/rest/gzip.h"

#include <doctest/doctest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <vector>

using envd::rest::GzipDeflater;
using envd::rest::GzipInflater;

namespace {

std::string random_text(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 8);  // compressible but not trivially
  return s;
}

// Feeds `gz` in pieces of `piece` bytes and drains into chunks of `room` bytes.
struct Inflated {
  std::string out;
  std::string error;
  bool first_header = false;
  std::size_t max_produced = 0;
};
Inflated inflate_pieces(std::string_view gz, std::size_t piece, std::size_t room) {
  GzipInflater inf;
  Inflated r;
  std::vector<char> buf(room);
  std::size_t pos = 0;
  while (!inf.failed()) {
    std::size_t n = std::min(piece, gz.size() - pos);
    std::span<const char> in(gz.data() + pos, n);
    std::size_t used = 0;
    while (true) {
      auto st = inf.inflate(in.subspan(used), buf);
      used += st.consumed;
      r.out.append(buf.data(), st.produced);
      r.max_produced = std::max(r.max_produced, st.produced);
      if (inf.failed() || (st.consumed == 0 && st.produced == 0)) break;
    }
    REQUIRE((inf.failed() || used == n));
    pos += n;
    if (pos == gz.size()) break;
  }
  if (!inf.failed()) inf.finish();
  r.error = inf.error();
  r.first_header = inf.error_in_first_header();
  return r;
}

}  // namespace

TEST_CASE("gzip: round trip, any input and output piece sizes") {
  std::string text = random_text(200000, 1);
  std::string gz = envd::rest::gzip_compress(text);
  CHECK(gz.size() < text.size());
  for (std::size_t piece : {1u, 7u, 4096u, 1u << 20}) {
    for (std::size_t room : {1u, 13u, 65536u}) {
      if (piece == 1 && room == 1) continue;  // slow and adds nothing
      CAPTURE(piece);
      CAPTURE(room);
      auto r = inflate_pieces(gz, piece, room);
      CHECK(r.error == "");
      CHECK(r.out == text);
    }
  }
  std::string out;
  CHECK(envd::rest::gzip_decompress(gz, text.size(), out) == "");
  CHECK(out == text);
}

TEST_CASE("gzip: streaming deflate with sync flushes and a small output buffer") {
  std::string text = random_text(100000, 2);
  GzipDeflater d;
  std::string gz;
  char room[100];
  for (std::size_t pos = 0; pos < text.size(); pos += 9999) {
    std::string_view piece = std::string_view(text).substr(pos, 9999);
    std::size_t used = 0;
    bool last = pos + 9999 >= text.size();
    auto flush = last ? GzipDeflater::Flush::finish : GzipDeflater::Flush::sync;
    do {
      auto st = d.deflate(std::span<const char>(piece.data() + used, piece.size() - used), room, flush);
      used += st.consumed;
      gz.append(room, st.produced);
    } while (!d.done_flushing());
    CHECK(used == piece.size());
    if (!last) {
      // After a sync flush, everything so far inflates.
      std::string partial;
      auto r = inflate_pieces(gz, gz.size(), 4096);
      CHECK(r.out == text.substr(0, pos + piece.size()));
      CHECK(r.error == "unexpected EOF");
    }
  }
  std::string out;
  CHECK(envd::rest::gzip_decompress(gz, text.size(), out) == "");
  CHECK(out == text);
}

TEST_CASE("gzip: a bomb never yields more than the caller's chunk per call") {
  std::string zeros(64 << 20, '\0');
  std::string gz = envd::rest::gzip_compress(zeros);
  CHECK(gz.size() < (128 << 10));
  zeros.clear();
  zeros.shrink_to_fit();
  GzipInflater inf;
  char chunk[4096];
  auto st = inf.inflate(gz, chunk);
  CHECK(st.produced == sizeof chunk);
  CHECK(st.consumed < gz.size());
  std::string out;
  CHECK(envd::rest::gzip_decompress(gz, 1 << 20, out) == "too large");
  CHECK(out.size() <= (1 << 20) + 65536);
}

TEST_CASE("gzip: multi-member streams inflate as one (Go's gzip.Reader)") {
  std::string gz =
      envd::rest::gzip_compress("hello ") + envd::rest::gzip_compress("") + envd::rest::gzip_compress("world");
  for (std::size_t piece : {1u, 3u, 1000u}) {
    auto r = inflate_pieces(gz, piece, 5);
    CHECK(r.error == "");
    CHECK(r.out == "hello world");
  }
}

TEST_CASE("gzip: bad input → Go's error texts (as the reference envd reports them on upload)") {
  std::string good = envd::rest::gzip_compress(random_text(3000, 3));
  SUBCASE("empty body: EOF, at reader creation") {
    auto r = inflate_pieces("", 1, 100);
    CHECK(r.error == "EOF");
    CHECK(r.first_header);
  }
  SUBCASE("not gzip") {
    auto r = inflate_pieces("notgzip-notgzip", 100, 100);
    CHECK(r.error == "gzip: invalid header");
    CHECK(r.first_header);
  }
  SUBCASE("unknown compression method") {
    std::string bad = good;
    bad[2] = 7;
    auto r = inflate_pieces(bad, 100, 100);
    CHECK(r.error == "gzip: invalid header");
    CHECK(r.first_header);
  }
  SUBCASE("truncated: unexpected EOF, after the header") {
    for (std::size_t cut : {std::size_t{5}, std::size_t{20}, good.size() - 1}) {
      auto r = inflate_pieces(std::string_view(good).substr(0, cut), 7, 100);
      CHECK(r.error == "unexpected EOF");
      CHECK(r.first_header == (cut < 10));
    }
  }
  SUBCASE("bad CRC or length: invalid checksum") {
    std::string crc = good, len = good;
    crc[crc.size() - 8] ^= 1;
    len[len.size() - 1] ^= 1;
    CHECK(inflate_pieces(crc, 64, 100).error == "gzip: invalid checksum");
    CHECK(inflate_pieces(len, 64, 100).error == "gzip: invalid checksum");
  }
  SUBCASE("corrupt deflate data") {
    std::string bad = good;
    bad[10] = static_cast<char>(0xff);
    bad[11] = static_cast<char>(0xff);
    auto r = inflate_pieces(bad, 64, 100);
    CHECK(r.error.rfind("flate: corrupt input before offset ", 0) == 0);
    CHECK_FALSE(r.first_header);
  }
  SUBCASE("garbage after a member") {
    CHECK(inflate_pieces(good + "garbage-garbage", 64, 100).error == "gzip: invalid header");
    CHECK(inflate_pieces(good + std::string("\x1f", 1), 64, 100).error == "unexpected EOF");
    CHECK_FALSE(inflate_pieces(good + std::string(4, '\0'), 64, 100).error.empty());
  }
}
