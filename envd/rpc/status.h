#pragma once
// RPC status codes shared by Connect, gRPC and gRPC-Web (same numbering as gRPC), their Connect
// names, and the HTTP status a Connect unary error carries (contract §1.3).
#include <optional>
#include <string>
#include <string_view>

namespace envd::rpc {

enum class Code : int {
  ok = 0,
  canceled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

std::string_view code_name(Code code);
std::optional<Code> code_from_name(std::string_view name);
int http_status_for(Code code);
// Maps an HTTP status of a non-RPC answer to a code (gRPC's HTTP-to-status table).
Code code_from_http_status(int status);

struct Status {
  Code code = Code::ok;
  std::string message;

  bool ok() const { return code == Code::ok; }
  static Status Ok() { return {}; }
};

inline Status error(Code code, std::string message) { return Status{code, std::move(message)}; }

// `{"code":"not_found","message":"..."}`: the Connect error object.
std::string connect_error_json(const Status& status);
// Percent-encodes a grpc-message value (bytes outside 0x20..0x7E and '%').
std::string grpc_percent_encode(std::string_view message);

}  // namespace envd::rpc
