#pragma once
// The table of everything a running envd serves, from the same registration code the daemon
// runs (`envd --print-routes` prints it and exits): every REST route (method, path, whether the
// access-token gate exempts it) and every RPC method (path, service, name, streaming kind, message
// types). The access-matrix test (tests/e2e/access.test.mjs) walks it, so a route or method added
// later is covered without editing the test.
#include <string>

#include "envd/router.h"
#include "envd/rpc/service.h"

namespace envd {

// {"routes":[{"method","path","token_exempt","run_to_completion"}...],
//  "rpc":[{"path","service","method","kind","request","response"}...]} (one line, sorted).
std::string route_table_json(const Router& router, const rpc::Registry& registry);

}  // namespace envd
