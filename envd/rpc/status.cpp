#include "envd/rpc/status.h"

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "envd/base64.h"

namespace envd::rpc {

namespace {
constexpr std::array<std::string_view, 17> kNames = {
    "ok",        "canceled",        "unknown",           "invalid_argument",   "deadline_exceeded",
    "not_found", "already_exists",  "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted",   "out_of_range",    "unimplemented",     "internal",           "unavailable",
    "data_loss", "unauthenticated",
};
}  // namespace

std::string_view code_name(Code code) {
  auto i = static_cast<std::size_t>(code);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::optional<Code> code_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<Code>(i);
  }
  return std::nullopt;
}

int http_status_for(Code code) {
  switch (code) {
    case Code::ok: return 200;
    case Code::canceled: return 499;
    case Code::unknown: return 500;
    case Code::invalid_argument: return 400;
    case Code::deadline_exceeded: return 504;
    case Code::not_found: return 404;
    case Code::already_exists: return 409;
    case Code::permission_denied: return 403;
    case Code::resource_exhausted: return 429;
    case Code::failed_precondition: return 400;
    case Code::aborted: return 409;
    case Code::out_of_range: return 400;
    case Code::unimplemented: return 501;
    case Code::internal: return 500;
    case Code::unavailable: return 503;
    case Code::data_loss: return 500;
    case Code::unauthenticated: return 401;
  }
  return 500;
}

Code code_from_http_status(int status) {
  switch (status) {
    case 400: return Code::internal;
    case 401: return Code::unauthenticated;
    case 403: return Code::permission_denied;
    case 404: return Code::unimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return Code::unavailable;
    default: return Code::unknown;
  }
}

std::string connect_error_json(const Status& status) {
  nlohmann::json j;
  j["code"] = std::string(code_name(status.code));
  if (!status.message.empty()) j["message"] = status.message;
  if (!status.details.empty()) {
    auto details = nlohmann::json::array();
    for (const auto& d : status.details) {
      details.push_back({{"type", d.type}, {"value", base64_encode(d.value, false)}});
    }
    j["details"] = std::move(details);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {
// Protobuf wire format, just what google.rpc.Status needs (its .proto is not among the system's).
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}
}  // namespace

std::string grpc_status_details(const Status& status) {
  std::string out;
  if (status.code != Code::ok) {
    put_varint(out, 1 << 3);  // code: varint
    put_varint(out, static_cast<std::uint64_t>(status.code));
  }
  if (!status.message.empty()) put_bytes(out, 2, status.message);
  for (const auto& d : status.details) {
    std::string any;  // google.protobuf.Any: type_url = 1, value = 2
    put_bytes(any, 1, "type.googleapis.com/" + d.type);
    if (!d.value.empty()) put_bytes(any, 2, d.value);
    put_bytes(out, 3, any);
  }
  return out;
}

std::string grpc_percent_encode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c < 0x20 || c > 0x7E || c == '%') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace envd::rpc
