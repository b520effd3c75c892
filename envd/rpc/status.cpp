#include "envd/rpc/status.h"

#include <array>
#include <nlohmann/json.hpp>

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
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
