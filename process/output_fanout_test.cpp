#include "process/output_fanout.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstring>

using namespace envd::process;
namespace asio = boost::asio;

namespace {
ChunkRef make_chunk(std::size_t n, char fill) {
  ChunkRef c = Chunk::acquire();
  std::memset(c->data(), fill, n);
  c->size = n;
  return c;
}

// Publishes n chunks the way a pipe reader does: on until offer() says wait, then from resume.
struct Publisher {
  Publisher(OutputFanout& fanout, asio::io_context& io, int count, std::size_t bytes, int* counter)
      : f(fanout), waiter(io), n(count), size(bytes), published(counter) {}
  void run() {
    while (*published < n) {
      bool go_on = f.offer(make_chunk(size, static_cast<char>('a' + *published % 26)), waiter, [this] {
        ++*published;
        run();
      });
      if (!go_on) return;
      ++*published;
    }
  }
  OutputFanout& f;
  asio::steady_timer waiter;
  int n;
  std::size_t size;
  int* published;
};
}  // namespace

TEST_CASE("fanout: no subscriber discards without blocking") {
  asio::io_context io;
  OutputFanout f(io.get_executor(), FanoutLimits{1024, std::chrono::milliseconds(50)});
  int published = 0;
  Publisher pub(f, io, 100, 1000, &published);
  pub.run();
  io.run();
  CHECK(published == 100);
}

TEST_CASE("fanout: a sole slow subscriber back-pressures and loses nothing") {
  asio::io_context io;
  OutputFanout f(io.get_executor(), FanoutLimits{4096, std::chrono::milliseconds(10)});
  auto sub = f.subscribe();
  int published = 0;
  Publisher pub(f, io, 50, 1000, &published);
  pub.run();
  io.run_for(std::chrono::milliseconds(50));
  // Bounded: the publisher stopped once the queue went over the bound; never dropped.
  CHECK(published < 10);
  CHECK_FALSE(sub->dropped());
  std::size_t received = 0;
  while (published < 50 || sub->queued_bytes() > 0) {
    if (auto c = sub->pop()) received += c->size;
    io.poll();
    io.restart();
  }
  CHECK(received == 50 * 1000);
  CHECK_FALSE(sub->dropped());
}

TEST_CASE("fanout: a stalled subscriber is dropped when another waits; the other gets everything after") {
  asio::io_context io;
  OutputFanout f(io.get_executor(), FanoutLimits{4096, std::chrono::milliseconds(30)});
  auto stalled = f.subscribe();
  int published = 0;
  Publisher pub(f, io, 40, 1000, &published);
  pub.run();
  io.run_for(std::chrono::milliseconds(20));
  int before = published;
  auto fresh = f.subscribe();
  std::size_t received = 0;
  auto start = std::chrono::steady_clock::now();
  while (published < 40 && std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
    while (auto c = fresh->pop()) received += c->size;
    io.run_for(std::chrono::milliseconds(1));
  }
  while (auto c = fresh->pop()) received += c->size;
  CHECK(stalled->dropped());
  CHECK_FALSE(fresh->dropped());
  CHECK(published == 40);
  CHECK(received >= static_cast<std::size_t>(40 - before - 1) * 1000);
  CHECK(f.dropped_count() == 1);
}

TEST_CASE("fanout: close wakes subscribers; chunk buffers are reused") {
  asio::io_context io;
  OutputFanout f(io.get_executor(), FanoutLimits{});
  auto sub = f.subscribe();
  CHECK_FALSE(sub->ready.is_set());
  f.close();
  CHECK(sub->ready.is_set());
  Chunk* first;
  {
    auto c = Chunk::acquire();
    first = &*c;
  }
  auto again = Chunk::acquire();
  CHECK(&*again == first);
}

TEST_CASE("fanout: a subscriber's queue keeps order while it never empties") {
  ChunkQueue q;
  CHECK(q.empty());
  std::size_t pushed = 0, popped = 0;
  // Push two, pop one, many times: the front is compacted along the way.
  for (int round = 0; round < 500; ++round) {
    for (int k = 0; k < 2; ++k) q.push_back(make_chunk(++pushed, 'x'));
    ChunkRef c = q.take_front();
    CHECK(c->size == ++popped);
  }
  while (!q.empty()) CHECK(q.take_front()->size == ++popped);
  CHECK(popped == pushed);
  q.push_back(make_chunk(1, 'y'));
  q.clear();
  CHECK(q.empty());
}
