#include "envd/http/exchange.h"

#include <algorithm>
#include <cctype>

namespace envd::http {

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::optional<std::string_view> find_header(const Headers& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return std::string_view(value);
  }
  return std::nullopt;
}

asio::awaitable<void> Exchange::respond(int status, Headers headers, std::string body) {
  ResponseHead head{status, std::move(headers), body.size()};
  if (!co_await write_head(std::move(head))) co_return;
  if (!body.empty() && !co_await write_body(std::move(body))) co_return;
  co_await finish();
}

asio::awaitable<BodyRead> read_whole_body(Exchange& ex, std::string& out, std::size_t limit) {
  for (;;) {
    std::size_t room = limit >= out.size() ? limit - out.size() : 0;
    // Ask for one byte more than the room left so that an oversize body is detected.
    auto r = co_await ex.read_body(out, std::min<std::size_t>(room + 1, 256 * 1024));
    if (r == BodyRead::end) co_return BodyRead::end;
    if (r != BodyRead::data) co_return r;
    if (out.size() > limit) co_return BodyRead::too_large;
  }
}

}  // namespace envd::http
