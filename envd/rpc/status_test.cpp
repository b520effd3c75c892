#include "envd/rpc/status.h"

#include <doctest/doctest.h>

using namespace envd::rpc;

TEST_CASE("status: names round trip and map to the contract's HTTP statuses") {
  for (int i = 0; i <= 16; ++i) {
    auto c = static_cast<Code>(i);
    CHECK(code_from_name(code_name(c)) == c);
  }
  CHECK(http_status_for(Code::canceled) == 499);
  CHECK(http_status_for(Code::invalid_argument) == 400);
  CHECK(http_status_for(Code::deadline_exceeded) == 504);
  CHECK(http_status_for(Code::not_found) == 404);
  CHECK(http_status_for(Code::already_exists) == 409);
  CHECK(http_status_for(Code::permission_denied) == 403);
  CHECK(http_status_for(Code::resource_exhausted) == 429);
  CHECK(http_status_for(Code::failed_precondition) == 400);
  CHECK(http_status_for(Code::aborted) == 409);
  CHECK(http_status_for(Code::out_of_range) == 400);
  CHECK(http_status_for(Code::unimplemented) == 501);
  CHECK(http_status_for(Code::internal) == 500);
  CHECK(http_status_for(Code::unavailable) == 503);
  CHECK(http_status_for(Code::data_loss) == 500);
  CHECK(http_status_for(Code::unauthenticated) == 401);
  CHECK(http_status_for(Code::unknown) == 500);
  CHECK_FALSE(code_from_name("bogus").has_value());
}

TEST_CASE("status: Connect error JSON and gRPC message encoding") {
  CHECK(connect_error_json(error(Code::not_found, "no \"x\"")) == R"({"code":"not_found","message":"no \"x\""})");
  CHECK(connect_error_json(error(Code::internal, "")) == R"({"code":"internal"})");
  CHECK(grpc_percent_encode("a b%c\n\xc3\xa9") == "a b%25c%0A%C3%A9");
}

TEST_CASE("status: error details in the Connect error object and in google.rpc.Status") {
  Status st = error(Code::not_found, "m");
  st.details.push_back({"a.B", std::string("\x08\x01", 2)});
  CHECK(connect_error_json(st) == R"({"code":"not_found","details":[{"type":"a.B","value":"CAE"}],"message":"m"})");
  // code 5, message "m", one Any{type_url, value}: protobuf wire bytes.
  static constexpr char kWire[] = "\x08\x05\x12\x01m\x1a\x1d\x0a\x17type.googleapis.com/a.B\x12\x02\x08\x01";
  CHECK(grpc_status_details(st) == std::string(kWire, sizeof kWire - 1));
}
