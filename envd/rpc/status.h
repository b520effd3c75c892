#pragma once
// RPC status codes shared by Connect, gRPC and gRPC-Web (same numbering as gRPC), their Connect
// names, and the HTTP status a Connect unary error carries (contract §1.3).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// One error detail: a protobuf message carried with an error (Connect `details`, gRPC
// `grpc-status-details-bin`), as its full message name and its binary encoding.
struct ErrorDetail {
  std::string type;   // "connectrpc.conformance.v1.RequestInfo"
  std::string value;  // serialized message
};

struct Status {
  Code code = Code::ok;
  std::string message;
  std::vector<ErrorDetail> details;

  bool ok() const { return code == Code::ok; }
  static Status Ok() { return {}; }
};

inline Status error(Code code, std::string message) {
  Status st;
  st.code = code;
  st.message = std::move(message);
  return st;
}

// `{"code":"not_found","message":"...","details":[{"type":"...","value":"<base64>"}]}`: the
// Connect error object (detail values in unpadded standard base64, as connect-go writes them).
std::string connect_error_json(const Status& status);
// The binary google.rpc.Status (code, message, details as google.protobuf.Any) that gRPC and
// gRPC-Web carry base64-encoded in `grpc-status-details-bin`.
std::string grpc_status_details(const Status& status);
// Percent-encodes a grpc-message value (bytes outside 0x20..0x7E and '%').
std::string grpc_percent_encode(std::string_view message);

}  // namespace envd::rpc
