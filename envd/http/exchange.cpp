#include "envd/http/exchange.h"

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "envd/ascii.h"
#include "envd/blocking.h"

namespace envd::http {

std::string to_lower(std::string_view s) { return ascii::lower(s); }

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

asio::awaitable<BodyRead> Exchange::read_body_some(std::string_view& piece, std::size_t max_bytes) {
  piece_buf_.clear();  // keeps its capacity: no allocation per piece
  auto r = co_await read_body(piece_buf_, max_bytes);
  piece = piece_buf_;
  co_return r;
}

asio::awaitable<BodyRead> Exchange::read_body_into(char* dst, std::size_t cap, std::size_t& got) {
  got = 0;
  if (cap == 0) co_return BodyRead::error;  // no room: a caller's bug, never a spin
  std::string_view piece;
  auto r = co_await read_body_some(piece, cap);
  got = std::min(piece.size(), cap);
  if (got > 0) std::memcpy(dst, piece.data(), got);
  co_return r;
}

// Default file region sender: chunks read on the blocking pool (a read from a file on a
// client-supplied path can block forever on NFS, FUSE or a frozen filesystem: never on the loop),
// each queued with write_body (whose back-pressure bounds memory to a chunk or two per stream).
// HTTP/2 uses this: reading inside nghttp2's data callback would run on the loop thread.
asio::awaitable<bool> Exchange::write_file(int fd, std::uint64_t offset, std::uint64_t length) {
  constexpr std::size_t kChunk = 128 * 1024;
  while (length > 0 && !closed()) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, kChunk));
    auto job = [fd, offset, want]() -> std::pair<std::string, int> {
      std::string buf(want, '\0');
      std::size_t got = 0;
      while (got < want) {
        ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return {std::string(), errno};
        if (n == 0) break;  // end of file: shorter than promised
        got += static_cast<std::size_t>(n);
      }
      buf.resize(got);
      return {std::move(buf), 0};
    };
    auto [chunk, err] = co_await run_blocking(WorkClass::data, job);
    if (err != 0 || chunk.empty()) {
      abort_response();
      co_return false;
    }
    offset += chunk.size();
    length -= chunk.size();
    if (!co_await write_body(std::move(chunk))) co_return false;
  }
  co_return !closed();
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
