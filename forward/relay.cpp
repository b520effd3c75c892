#include "forward/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/post.hpp>

namespace envd::forward {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;
// Asked of each splice; the kernel moves at most what the pipe holds (64 KiB by default).
constexpr std::size_t kSpliceBytes = 1 << 20;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::shared_ptr<Relay> Relay::create(tcp::socket client, Done done) {
  return std::shared_ptr<Relay>(new Relay(std::move(client), std::move(done)));
}

Relay::Relay(tcp::socket client, Done done)
    : client_(std::move(client)), service_(client_.get_executor()), done_(std::move(done)) {}

Relay::~Relay() {
  // A relay dropped before it ended (never started) still closes what it holds.
  for (auto& d : dirs_) {
    close_fd(d.pipe_r);
    close_fd(d.pipe_w);
  }
}

void Relay::start(const tcp::endpoint& service) {
  for (auto& d : dirs_) {
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return finish(errno);
    d.pipe_r = p[0];
    d.pipe_w = p[1];
  }
  boost::system::error_code ec;
  service_.open(service.protocol(), ec);
  if (ec) return finish(ec.value());
  service_.async_connect(service, [self = shared_from_this()](const boost::system::error_code& e) {
    if (self->ended_) return;
    if (e) return self->finish(e.value() ? e.value() : ECONNREFUSED);
    boost::system::error_code ignored;
    // splice(2) on a socket honours the socket's own O_NONBLOCK, not SPLICE_F_NONBLOCK.
    self->client_.native_non_blocking(true, ignored);
    self->service_.native_non_blocking(true, ignored);
    // A relay must not add Nagle delays to a request/response exchange.
    self->client_.set_option(tcp::no_delay(true), ignored);
    self->service_.set_option(tcp::no_delay(true), ignored);
    self->pump(0);
    self->pump(1);
  });
}

void Relay::close() {
  if (!ended_) finish(ECANCELED);
}

void Relay::pump(int dir) {
  Direction& d = dirs_[dir];
  std::size_t turn = 0;
  for (;;) {
    if (ended_) return;
    if (d.in_pipe > 0) {
      ssize_t n = ::splice(d.pipe_r, nullptr, destination(dir).native_handle(), nullptr, d.in_pipe, kSpliceFlags);
      if (n > 0) {
        d.in_pipe -= static_cast<std::size_t>(n);
        d.moved += static_cast<std::uint64_t>(n);
        turn += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        destination(dir).async_wait(tcp::socket::wait_write,
                                    [self = shared_from_this(), dir](const boost::system::error_code&) {
                                      self->pump(dir);  // an error shows in the next splice
                                    });
        return;
      }
      return finish(n < 0 ? errno : EPIPE);
    }
    if (d.eof) {
      if (!d.done) {
        d.done = true;
        ::shutdown(destination(dir).native_handle(), SHUT_WR);
      }
      if (dirs_[1 - dir].done) finish(0);
      return;
    }
    if (turn >= kTurnBytes) {
      // Yield: other relays and the rest of the executor's work get their turn.
      asio::post(client_.get_executor(), [self = shared_from_this(), dir] { self->pump(dir); });
      return;
    }
    ssize_t n = ::splice(source(dir).native_handle(), nullptr, d.pipe_w, nullptr, kSpliceBytes, kSpliceFlags);
    if (n > 0) {
      d.in_pipe = static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      d.eof = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      source(dir).async_wait(tcp::socket::wait_read,
                             [self = shared_from_this(), dir](const boost::system::error_code&) { self->pump(dir); });
      return;
    }
    return finish(errno);
  }
}

void Relay::finish(int error) {
  if (ended_) return;
  ended_ = true;
  boost::system::error_code ignored;
  client_.close(ignored);  // cancels the waits: their handlers see ended_
  service_.close(ignored);
  for (auto& d : dirs_) {
    close_fd(d.pipe_r);
    close_fd(d.pipe_w);
  }
  RelayStats stats{dirs_[0].moved, dirs_[1].moved, error};
  if (auto done = std::move(done_)) done(stats);
}

}  // namespace envd::forward
