#pragma once
// SHA-256 (FIPS 180-4), our own: used for the /files URL signatures (contract §2.2).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace envd::rest {

class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;
  Sha256();
  void update(std::string_view data);
  // Ends the computation; the object must not be updated afterwards.
  Digest finish();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
};

Sha256::Digest sha256(std::string_view data);

}  // namespace envd::rest
