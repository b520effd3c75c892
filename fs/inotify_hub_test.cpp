#include "fs/inotify_hub.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/test_files.h"

using namespace envd::fs;
using namespace envd::testing;

namespace {

struct Recorder : HubListener {
  std::vector<std::pair<std::uint32_t, std::string>> events;
  std::vector<std::string> lost;
  void on_inotify(int, const RawEvent& ev) override { events.emplace_back(ev.mask, std::string(ev.name)); }
  void on_lost(const std::string& why) override { lost.push_back(why); }
};

void touch(const std::string& p) { ::close(::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)); }

template <class Pred>
bool run_until(boost::asio::io_context& io, Pred pred) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (!pred() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace

TEST_CASE("inotify hub: one watch per directory, shared and reference-counted") {
  boost::asio::io_context io;
  InotifyHub hub(io.get_executor(), HubConfig{16});
  REQUIRE(hub.open() == 0);
  TempDir d;
  Recorder a, b;
  hub.begin_adds();
  AddResult ra = hub.add(d.path);
  AddResult rb = hub.add(d.path);
  REQUIRE(ra.wd >= 0);
  CHECK(ra.wd == rb.wd);
  CHECK(hub.watches_in_use() == 2);  // two reservations until attached
  hub.attach(ra.wd, &a);
  hub.attach(rb.wd, &b);
  hub.end_adds();
  CHECK(hub.watches_in_use() == 1);

  touch(d.path + "/x");
  REQUIRE(run_until(io, [&] { return !a.events.empty() && !b.events.empty(); }));
  CHECK((a.events[0].first & IN_CREATE) != 0);
  CHECK(a.events[0].second == "x");
  CHECK(b.events[0].second == "x");

  hub.detach(ra.wd, &a);
  CHECK(hub.watches_in_use() == 1);
  touch(d.path + "/y");
  REQUIRE(run_until(io, [&] { return b.events.size() >= 2; }));
  CHECK(a.events.size() == 1);  // detached: no more events
  hub.detach(rb.wd, &b);
  CHECK(hub.watches_in_use() == 0);
}

TEST_CASE("inotify hub: the budget refuses adds past --max-inotify-watches with a clear error") {
  boost::asio::io_context io;
  InotifyHub hub(io.get_executor(), HubConfig{1});
  REQUIRE(hub.open() == 0);
  TempDir d1, d2;
  Recorder a;
  hub.begin_adds();
  AddResult r1 = hub.add(d1.path);
  REQUIRE(r1.wd >= 0);
  AddResult r2 = hub.add(d2.path);
  CHECK(r2.wd < 0);
  CHECK(r2.budget);
  std::string msg = hub.add_error_text(d2.path, r2);
  CHECK(msg.find("error adding path " + d2.path + " to watcher: ") == 0);
  CHECK(msg.find("--max-inotify-watches") != std::string::npos);
  CHECK(msg.find("fs.inotify.max_user_watches") != std::string::npos);
  hub.release_unattached(r1.wd);
  hub.end_adds();
  CHECK(hub.watches_in_use() == 0);
}

TEST_CASE("inotify hub: events for a watch being added are held and replayed on attach") {
  boost::asio::io_context io;
  InotifyHub hub(io.get_executor(), HubConfig{16});
  REQUIRE(hub.open() == 0);
  TempDir d;
  Recorder a;
  hub.begin_adds();
  AddResult r = hub.add(d.path);
  REQUIRE(r.wd >= 0);
  touch(d.path + "/early");
  // Let the hub read the event before anyone is attached: it must be held, not dropped.
  for (int i = 0; i < 20; ++i) {
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  CHECK(a.events.empty());
  hub.attach(r.wd, &a);
  hub.end_adds();
  REQUIRE(a.events.size() == 1);
  CHECK(a.events[0].second == "early");
  hub.detach(r.wd, &a);
}

TEST_CASE("inotify hub: a kernel queue overflow tells every listener that events were lost") {
  boost::asio::io_context io;
  InotifyHub hub(io.get_executor(), HubConfig{16});
  REQUIRE(hub.open() == 0);
  TempDir d;
  Recorder a;
  hub.begin_adds();
  AddResult r = hub.add(d.path);
  REQUIRE(r.wd >= 0);
  hub.attach(r.wd, &a);
  hub.end_adds();
  // The loop does not run while more events than fs.inotify.max_queued_events are generated.
  long max_queued = 16384;
  if (FILE* f = std::fopen("/proc/sys/fs/inotify/max_queued_events", "r")) {
    if (std::fscanf(f, "%ld", &max_queued) != 1) max_queued = 16384;
    std::fclose(f);
  }
  for (long i = 0; i <= max_queued + 10; ++i) touch(d.path + "/f" + std::to_string(i));
  REQUIRE(run_until(io, [&] { return !a.lost.empty(); }));
  CHECK(a.lost[0].find("events were lost: the kernel's inotify queue overflowed") == 0);
  CHECK(a.lost[0].find("fs.inotify.max_queued_events") != std::string::npos);
  hub.detach(r.wd, &a);
}
