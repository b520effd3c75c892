#include "process/output_ring.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace envd::process;

namespace {
constexpr auto kOut = OutputStream::stdout_stream;
constexpr auto kErr = OutputStream::stderr_stream;

std::string pattern(std::uint64_t from, std::size_t n, char base) {
  std::string s(n, '\0');
  for (std::size_t k = 0; k < n; ++k) s[k] = static_cast<char>(base + (from + k) % 23);
  return s;
}

struct Replayed {
  std::string out, err;
  std::uint64_t out_first = 0, err_first = 0;
  StreamOffsets lost{};
  std::size_t runs = 0;
};

// Replays from `from`, checking that each stream's runs are contiguous from from + lost.
Replayed replay_all(const OutputRing& ring, StreamOffsets from, std::size_t max = 1 << 20) {
  Replayed r;
  auto rp = ring.replay(from);
  r.lost = rp.lost();
  StreamOffsets next{from[0] + r.lost[0], from[1] + r.lost[1], from[2] + r.lost[2]};
  r.out_first = next[0];
  r.err_first = next[1];
  OutputStream s{};
  std::uint64_t off = 0;
  std::string chunk;
  while (rp.next(s, off, chunk, max)) {
    auto i = static_cast<std::size_t>(s);
    CHECK(off == next[i]);
    CHECK(!chunk.empty());
    CHECK(chunk.size() <= max);
    next[i] += chunk.size();
    (s == kOut ? r.out : r.err) += chunk;
    ++r.runs;
  }
  return r;
}
}  // namespace

TEST_CASE("OutputRing: everything retained replays from any offset, in order, with no gap") {
  OutputRing ring(64 * 1024);
  ring.append(kOut, "hello ", 6);
  ring.append(kErr, "oops", 4);
  ring.append(kOut, "world", 5);
  CHECK(ring.written(kOut) == 11);
  CHECK(ring.written(kErr) == 4);
  CHECK(ring.first_retained(kOut) == 0);

  auto r = replay_all(ring, {0, 0, 0});
  CHECK(r.out == "hello world");
  CHECK(r.err == "oops");
  CHECK(r.lost == StreamOffsets{0, 0, 0});
  CHECK(r.runs == 3);  // stdout, stderr, stdout: the order they were read in

  r = replay_all(ring, {8, 4, 0});
  CHECK(r.out == "rld");
  CHECK(r.err.empty());
  CHECK(r.out_first == 8);

  // The same stream twice in a row is one record and one run.
  OutputRing merged(64 * 1024);
  for (int k = 0; k < 100; ++k) merged.append(kOut, "x", 1);
  CHECK(merged.used() == OutputRing::kHeader + 100);
  CHECK(replay_all(merged, {0, 0, 0}).runs == 1);
}

TEST_CASE("OutputRing: wraparound evicts the oldest records and counts the lost bytes") {
  constexpr std::size_t cap = 8192;
  OutputRing ring(cap);
  std::string all;
  for (int k = 0; k < 200; ++k) {
    std::string s = pattern(all.size(), 97 + k % 50, 'a');
    ring.append(kOut, s.data(), s.size());
    all += s;
    CHECK(ring.used() <= cap);
    CHECK(ring.allocated() <= cap + cap);
  }
  CHECK(ring.written(kOut) == all.size());
  const std::uint64_t first = ring.first_retained(kOut);
  CHECK(first > 0);
  CHECK(all.size() - first <= cap);
  CHECK(all.size() - first >= cap / 2);  // eviction is by records of at most cap/2 bytes

  auto r = replay_all(ring, {0, 0, 0});
  CHECK(r.lost[0] == first);
  CHECK(r.out == all.substr(first));
  // From inside the retained part: nothing lost, exactly the rest.
  r = replay_all(ring, {first + 10, 0, 0});
  CHECK(r.lost[0] == 0);
  CHECK(r.out == all.substr(first + 10));
  // From the very end: nothing at all.
  r = replay_all(ring, {all.size(), 0, 0});
  CHECK(r.out.empty());
  CHECK(r.runs == 0);
}

TEST_CASE("OutputRing: one write larger than the ring keeps its tail") {
  OutputRing ring(4096);
  std::string big = pattern(0, 100'000, 'A');
  ring.append(kErr, big.data(), big.size());
  CHECK(ring.written(kErr) == big.size());
  auto r = replay_all(ring, {0, 0, 0});
  CHECK(r.lost[1] + r.err.size() == big.size());
  CHECK(r.err == big.substr(r.lost[1]));
  CHECK(ring.used() <= 4096);
}

TEST_CASE("OutputRing: interleaved streams under random writes match a model, runs are bounded") {
  std::mt19937 rng(12345);
  for (std::size_t cap : {4096u, 10000u, 70000u, 300000u}) {
    OutputRing ring(cap);
    std::string out, err;
    for (int k = 0; k < 3000; ++k) {
      bool to_err = rng() % 3 == 0;
      std::size_t n = 1 + rng() % (rng() % 10 == 0 ? 40000 : 300);
      std::string& dst = to_err ? err : out;
      std::string s = pattern(dst.size(), n, to_err ? 'a' : 'A');
      ring.append(to_err ? kErr : kOut, s.data(), s.size());
      dst += s;
      REQUIRE(ring.used() <= ring.capacity());
      if (k % 500 == 499) {
        StreamOffsets from{rng() % (out.size() + 1), rng() % (err.size() + 1), 0};
        auto r = replay_all(ring, from, 1 + rng() % 5000);
        CHECK(r.out_first == std::max<std::uint64_t>(from[0], ring.first_retained(kOut)));
        CHECK(r.err_first == std::max<std::uint64_t>(from[1], ring.first_retained(kErr)));
        CHECK(r.out == out.substr(r.out_first));
        CHECK(r.err == err.substr(r.err_first));
      }
    }
  }
}

TEST_CASE("OutputRing: a replay snapshot is unaffected by later writes") {
  OutputRing ring(8192);
  std::string a = pattern(0, 6000, 'a');
  ring.append(kOut, a.data(), a.size());
  auto rp = ring.replay({0, 0, 0});
  std::string b = pattern(6000, 8000, 'a');
  ring.append(kOut, b.data(), b.size());  // evicts everything the snapshot holds
  std::string got, chunk;
  OutputStream s{};
  std::uint64_t off = 0;
  while (rp.next(s, off, chunk, 1 << 20)) got += chunk;
  CHECK(got == a);
}

TEST_CASE("OutputRing: the budget is charged the capacity while live, what it holds once settled") {
  auto budget = std::make_shared<RetentionBudget>();
  budget->total = 1 << 20;
  {
    OutputRing ring(100'000, budget);
    CHECK(budget->used == 100'000);
    ring.append(kOut, "abc", 3);
    ring.settle();
    CHECK(budget->used == ring.allocated());
    CHECK(budget->used < 100'000);
  }
  CHECK(budget->used == 0);
  // No memory before the first byte.
  OutputRing idle(1 << 20);
  CHECK(idle.allocated() == 0);
}
