#pragma once
// REST routes for end-to-end tests of the transport (only with --test-services), beside the
// envdtest.Echo RPC service:
//   GET /__test/wait-cancel  a pool job that waits for the request's cancellation (token), then
//                            ends; its handler never answers unless cancelled
//   GET /__test/scope-stats  {"started":N,"cancelled":N,"client_gone":N,"shutdown":N} for it
//   GET /__test/file?path=P[&offset=O][&length=L]
//                            sends that region of file P with Exchange::write_file (404 if it
//                            cannot be opened, 416 if the region is outside the file)
//   POST /__test/upload?path=P
//                            writes the body to P (created/truncated) from the receive buffer
//                            (read_body_some, writes on the pool); answers {"bytes":N,"pieces":N}
#include "envd/router.h"

namespace envd {
void register_test_routes(Router& router);
}  // namespace envd
