#pragma once
// One forwarded connection: bytes move both ways between the accepted client socket and a socket
// connected to the loopback service with splice(2) through a pipe per direction, so they never
// enter user space. Everything is non-blocking and driven by readiness waits on the executor the
// sockets belong to; a direction moves at most kTurnBytes per turn and then yields, so a bulk
// transfer shares its executor fairly with other work.
//
// - Half-close: a direction that reads EOF empties its pipe into the other side and then shuts that
//   side down for writing (SHUT_WR); the other direction goes on until it ends too.
// - Back-pressure: a direction reads from its source only when its pipe is empty, so a receiver
//   that does not read stops the sender (the kernel's socket buffers and one pipe hold the bytes).
// - Errors: any error (reset, refused connect, failed pipe) closes both sides at once.
// - Every fd (two sockets, four pipe ends) is closed when the relay ends, whatever the path.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

namespace envd::forward {

struct RelayStats {
  std::uint64_t to_service = 0;  // bytes client → service
  std::uint64_t to_client = 0;   // bytes service → client
  int error = 0;                 // the errno that ended the relay; 0 after a clean end both ways
};

class Relay : public std::enable_shared_from_this<Relay> {
 public:
  using Done = std::function<void(const RelayStats&)>;

  // `client` is an accepted socket; `done` runs once, on the sockets' executor, right after the
  // relay closed every fd it holds.
  static std::shared_ptr<Relay> create(boost::asio::ip::tcp::socket client, Done done);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Makes the pipes, connects to `service` and starts moving bytes.
  void start(const boost::asio::ip::tcp::endpoint& service);
  // Ends the relay now: both sockets closed (the peers see EOF or a reset).
  void close();
  bool ended() const { return ended_; }

  // Bytes one direction moves in a turn before it yields to other work on the executor.
  static constexpr std::size_t kTurnBytes = 256 * 1024;

 private:
  struct Direction {
    int pipe_r = -1;
    int pipe_w = -1;
    std::size_t in_pipe = 0;  // bytes read from the source and not yet written to the destination
    bool eof = false;         // the source ended
    bool done = false;        // EOF passed on (SHUT_WR sent)
    std::uint64_t moved = 0;
  };

  Relay(boost::asio::ip::tcp::socket client, Done done);
  void pump(int dir);
  void finish(int error);
  boost::asio::ip::tcp::socket& source(int dir) { return dir == 0 ? client_ : service_; }
  boost::asio::ip::tcp::socket& destination(int dir) { return dir == 0 ? service_ : client_; }

  boost::asio::ip::tcp::socket client_;
  boost::asio::ip::tcp::socket service_;
  Done done_;
  std::array<Direction, 2> dirs_;  // 0: client → service, 1: service → client
  bool ended_ = false;
};

}  // namespace envd::forward
