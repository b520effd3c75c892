#include "envd/rest/sha256.h"

#include <doctest/doctest.h>

#include <string>

namespace {
std::string hex(const envd::rest::Sha256::Digest& d) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (auto b : d) s += {x[b >> 4], x[b & 15]};
  return s;
}
}  // namespace

TEST_CASE("sha256: NIST FIPS 180-4 examples") {
  using envd::rest::sha256;
  CHECK(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Two blocks (56 bytes: the padding spills into a second block).
  CHECK(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmn"
                   "opqrstnopqrstu")) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST_CASE("sha256: one million 'a', fed whole and in odd pieces") {
  std::string a(1000000, 'a');
  CHECK(hex(envd::rest::sha256(a)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  envd::rest::Sha256 h;
  std::size_t i = 0, step = 1;
  while (i < a.size()) {
    std::size_t n = std::min(step, a.size() - i);
    h.update(std::string_view(a).substr(i, n));
    i += n;
    step = step * 3 % 127 + 1;
  }
  CHECK(hex(h.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256: lengths around the block boundaries (sha256sum)") {
  auto x = [](std::size_t n) { return hex(envd::rest::sha256(std::string(n, 'x'))); };
  CHECK(x(55) == "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  CHECK(x(56) == "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  CHECK(x(63) == "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2");
  CHECK(x(64) == "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
  CHECK(x(65) == "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9");
}
