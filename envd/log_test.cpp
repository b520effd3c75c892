#include "envd/log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  // Reads until `pred(all)` holds or nothing arrives for 10 s (a failure, not a timing check).
  template <class Pred>
  std::string read_until(Pred pred) {
    std::string all;
    char buf[65536];
    while (!pred(all)) {
      pollfd p{r, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) break;
      ssize_t n = ::read(r, buf, sizeof buf);
      if (n <= 0) break;
      all.append(buf, static_cast<std::size_t>(n));
    }
    return all;
  }
};

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (std::size_t e; (e = s.find('\n', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  return out;
}

}  // namespace

TEST_CASE("AsyncSink writes every line, in order, from its own thread") {
  Pipe p;
  envd::log::AsyncSink sink(p.w, 1 << 20);
  for (int i = 0; i < 200; ++i) sink.push("line " + std::to_string(i));
  auto all = p.read_until([](const std::string& s) { return s.find("line 199\n") != std::string::npos; });
  CHECK(sink.flush(std::chrono::milliseconds(10'000)));
  auto lines = lines_of(all);
  REQUIRE(lines.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(lines[static_cast<std::size_t>(i)] == "line " + std::to_string(i));
  CHECK(sink.dropped() == 0);
  sink.stop();
}

TEST_CASE("AsyncSink never blocks on a descriptor that does not drain: oldest lines dropped, counted, reported") {
  Pipe p;
  // A pipe nobody reads stands for a frozen filesystem: the writer thread blocks in write(2).
  envd::log::AsyncSink sink(p.w, 64 * 1024);
  const std::string filler(1000, 'x');
  for (int i = 0; i < 5000; ++i) sink.push(std::to_string(i) + " " + filler);  // 5 MB: far over pipe + queue
  sink.push("the newest line");
  CHECK(sink.dropped() > 0);
  CHECK_FALSE(sink.flush(std::chrono::milliseconds(1)));  // still blocked: the pipe is full
  // "Thaw": read everything; the report of the dropped lines comes before the kept newer ones.
  auto all = p.read_until([](const std::string& s) { return s.find("the newest line\n") != std::string::npos; });
  CHECK(sink.flush(std::chrono::milliseconds(10'000)));
  auto lines = lines_of(all);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back() == "the newest line");
  // Each report says how many lines went missing just before it (one per episode: the writer may
  // have caught up in between); together they account for every dropped line.
  std::uint64_t reported = 0;
  std::size_t reports = 0;
  for (const auto& l : lines) {
    if (l.find("log lines dropped") == std::string::npos) continue;
    ++reports;
    CHECK(l.find("\"logger\":\"log\"") != std::string::npos);
    auto at = l.find("\"dropped\":");
    REQUIRE(at != std::string::npos);
    reported += std::stoull(l.substr(at + 10));
  }
  CHECK(reports >= 1);
  CHECK(reported == sink.dropped());
  // Lines written + dropped = lines pushed.
  CHECK(lines.size() - reports + sink.dropped() == 5001);
  sink.stop();
}

TEST_CASE("AsyncSink gathering: flush() and stop() cut the wait short, nothing is lost") {
  Pipe p;
  // A minute of gathering: only flush() or stop() can get these lines out within the test.
  envd::log::AsyncSink sink(p.w, 1 << 20, std::chrono::minutes(1));
  for (int i = 0; i < 50; ++i) sink.push("a" + std::to_string(i));
  CHECK(sink.flush(std::chrono::seconds(30)));
  auto first = p.read_until([](const std::string& s) { return s.find("a49\n") != std::string::npos; });
  CHECK(lines_of(first).size() == 50);
  sink.push("last");
  sink.stop();
  auto rest = p.read_until([](const std::string& s) { return s.find("last\n") != std::string::npos; });
  CHECK(lines_of(rest) == std::vector<std::string>{"last"});
}

TEST_CASE("log fields: a double is written as printf's %.3f") {
  for (double v : {0.0, 0.0004, 0.0005, 0.0015, 1.0005, 2.5, 12.3456789, 1e-9, 123456.7894, 1e15, -3.14159}) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    CHECK(envd::log::Field("d", v).json == buf);
  }
}
