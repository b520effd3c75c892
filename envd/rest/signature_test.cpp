#include "envd/rest/signature.h"

#include <doctest/doctest.h>

#include "envd/rest/query.h"

using envd::rest::files_signature;
using envd::rest::Signing;

// Expected values computed with the JS SDK's algorithm (e2b dist `getSignature`: WebCrypto SHA-256,
// btoa, trailing '=' stripped); the reference envd accepted the third one over
// `?path=%2Ftmp%2Fmy+file%2B1%2520%26x%3Dy.txt&username=user` (URLSearchParams encoding).
TEST_CASE("files_signature matches the JS SDK") {
  CHECK(files_signature("/home/user/a.txt", "read", "", "tok", std::nullopt) ==
        "v1_Zkbb3914oLJLvMBzCAHQhm2ydBLxbSx2eQUR/kLdvIY");
  CHECK(files_signature("/home/user/a.txt", "write", "user", "tok", 1700000000) ==
        "v1_x09R0+VxB2mRzkxWcRyFCpiJmFv0okUrtgQ6q12G0jM");
  CHECK(files_signature("/tmp/my file+1%20&x=y.txt", "read", "user", "secret-token", std::nullopt) ==
        "v1_gOhPyH/foNc9WzdSbsDAeW1fhUVTU8fBJNCjLZiyx5E");
  CHECK(files_signature("/tmp/na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC.txt", "write", "", "secret-token", 4102444800) ==
        "v1_OavQ+TERx3rNXiUx2jhdz5DS+Tb6hdXTfD9xSijTWNI");
  CHECK(files_signature("", "read", "", "t", 0) == "v1_ziZBO9tEaV+6teQY5VtaCIUz1SzLcCvUVFe8YaQXits");
}

TEST_CASE("validate_signing over decoded query values") {
  std::optional<std::string> token = "secret-token";
  auto q = envd::rest::Query::parse(
      "path=%2Ftmp%2Fmy+file%2B1%2520%26x%3Dy.txt&username=user&signature=v1_gOhPyH%"
      "2FfoNc9WzdSbsDAeW1fhUVTU8fBJNCjLZiyx5E");
  envd::rest::SigningRequest r{.operation = "read",
                               .header = std::nullopt,
                               .signature = q.values("signature").front(),
                               .path = q.values("path").front(),
                               .username = q.values("username").front(),
                               .expiration = std::nullopt};
  CHECK(validate_signing(token, r, 0) == Signing::ok);
  CHECK(validate_signing(std::nullopt, r, 0) == Signing::ok);  // open mode
  auto w = r;
  w.operation = "write";
  CHECK(validate_signing(token, w, 0) == Signing::invalid_signature);
  auto u = r;
  u.username = "";
  CHECK(validate_signing(token, u, 0) == Signing::invalid_signature);
}

TEST_CASE("validate_signing: order of the checks and expiry") {
  std::optional<std::string> token = "secret-token";
  std::string sig = files_signature("/a", "read", "", "secret-token", 100);
  envd::rest::SigningRequest r{
      .operation = "read", .header = std::nullopt, .signature = sig, .path = "/a", .username = "", .expiration = 100};
  CHECK(validate_signing(token, r, 99) == Signing::ok);
  CHECK(validate_signing(token, r, 100) == Signing::ok);  // exp == now is valid
  CHECK(validate_signing(token, r, 101) == Signing::expired);
  auto wrong = r;
  wrong.expiration = 101;  // the signature covers the expiration
  CHECK(validate_signing(token, wrong, 0) == Signing::invalid_signature);
  auto none = r;
  none.signature = std::nullopt;
  CHECK(validate_signing(token, none, 0) == Signing::missing_signature);
  none.signature = "";  // present but empty: the reference says "invalid signature"
  CHECK(validate_signing(token, none, 0) == Signing::invalid_signature);
  auto h = r;
  h.header = "secret-token";
  h.signature = std::nullopt;
  CHECK(validate_signing(token, h, 1000) == Signing::ok);  // the header wins, no expiry check
  h.header = "bad";
  h.signature = sig;
  CHECK(validate_signing(token, h, 0) == Signing::header_mismatch);
  h.header = "";  // an empty header is no header
  CHECK(validate_signing(token, h, 0) == Signing::ok);
  CHECK(envd::rest::signing_message(Signing::header_mismatch) == "access token present in header but does not match");
  CHECK(envd::rest::signing_message(Signing::missing_signature) == "missing signature query parameter");
  CHECK(envd::rest::signing_message(Signing::invalid_signature) == "invalid signature");
  CHECK(envd::rest::signing_message(Signing::expired) == "signature is already expired");
}
