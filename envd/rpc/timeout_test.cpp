#include "envd/rpc/timeout.h"

#include <doctest/doctest.h>

using namespace envd::rpc;
using namespace std::chrono;

TEST_CASE("timeout: Connect-Timeout-Ms") {
  CHECK(parse_connect_timeout("60000") == milliseconds(60000));
  CHECK(parse_connect_timeout("0") == milliseconds(0));
  CHECK(parse_connect_timeout("9999999999") == milliseconds(9999999999));
  CHECK_FALSE(parse_connect_timeout("10000000000"));  // 11 digits
  CHECK_FALSE(parse_connect_timeout(""));
  CHECK_FALSE(parse_connect_timeout("-1"));
  CHECK_FALSE(parse_connect_timeout("1.5"));
  CHECK_FALSE(parse_connect_timeout("abc"));
}

TEST_CASE("timeout: grpc-timeout units") {
  CHECK(parse_grpc_timeout("1H") == hours(1));
  CHECK(parse_grpc_timeout("2M") == minutes(2));
  CHECK(parse_grpc_timeout("3S") == seconds(3));
  CHECK(parse_grpc_timeout("4m") == milliseconds(4));
  CHECK(parse_grpc_timeout("5u") == microseconds(5));
  CHECK(parse_grpc_timeout("6n") == nanoseconds(6));
  CHECK_FALSE(parse_grpc_timeout("100000000S"));  // 9 digits
  CHECK_FALSE(parse_grpc_timeout("5"));
  CHECK_FALSE(parse_grpc_timeout("5x"));
  // Found by fuzzing: 99999999H overflowed the conversion to nanoseconds; it saturates.
  CHECK(parse_grpc_timeout("99999999H") == kMaxGrpcTimeout);
  CHECK(parse_grpc_timeout("99999999M") == kMaxGrpcTimeout);
  CHECK(parse_grpc_timeout("800000H") == hours(800000));
  CHECK_FALSE(parse_grpc_timeout("S"));
}
