#pragma once
#include <boost/asio/any_io_executor.hpp>

#include "envd/rpc/service.h"

namespace envd {
// Registers envdtest.Echo (only with --test-services): a transport test service.
void register_echo_service(rpc::Registry& registry);
// Starts the loop-lag probe Stats reports (only with --test-services): a timer due every 10 ms
// records how late it ran.
void start_loop_lag_probe(const boost::asio::any_io_executor& ex);
}  // namespace envd
