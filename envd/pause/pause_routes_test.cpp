#include "envd/pause/pause_routes.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "envd/control.h"
#include "envd/rpc/rpc_server.h"
#include "tests/fake_exchange.h"

using namespace envd;
using envd::testing::FakeExchange;

namespace {

namespace fsys = std::filesystem;

pause::PauseOptions no_watchdog() {
  pause::PauseOptions o;
  o.thaw_watchdog = std::chrono::milliseconds(0);
  return o;
}

// The pause routes on fake exchanges, over a fake cgroup tree whose cgroup.events never says
// `frozen 1` (a workload that cannot freeze), so a /freeze with maxWaitMs waits.
struct Daemon {
  boost::asio::io_context io;
  rpc::Registry registry;
  rpc::RpcServer rpc{registry, rpc::RpcConfig{}};
  Router router{rpc};
  fsys::path tree;
  std::unique_ptr<pause::PauseController> pause;

  explicit Daemon(pause::PauseOptions options = no_watchdog()) {
    char tmpl[] = "/tmp/envd-pause-routes-XXXXXX";
    tree = ::mkdtemp(tmpl);
    for (auto c : {"user", "ptys"}) {
      fsys::create_directories(tree / c);
      std::ofstream(tree / c / "cgroup.freeze") << "0\n";
      std::ofstream(tree / c / "cgroup.events") << "populated 1\nfrozen 0\n";
    }
    pause::CgroupFreezer::Config cfg;
    cfg.root = tree.string();
    pause = std::make_unique<pause::PauseController>(io.get_executor(), options, cfg);
    pause->register_routes(router);
  }
  ~Daemon() { fsys::remove_all(tree); }

  std::unique_ptr<FakeExchange> start(std::string target) {
    http::RequestHead h;
    h.method = "POST";
    h.target = std::move(target);
    auto ex = std::make_unique<FakeExchange>(io, std::move(h));
    io.restart();
    boost::asio::co_spawn(io, router.handle(*ex), boost::asio::detached);
    io.poll();  // runs until the handler answers or waits
    io.restart();
    return ex;
  }
  char freeze_of(const char* c) {
    std::ifstream in(tree / c / "cgroup.freeze");
    char v = '?';
    in >> v;
    return v;
  }
};

}  // namespace

TEST_CASE("pause routes: a /freeze waiting for frozen holds the lock (503); /unfreeze ends its wait") {
  Daemon d;
  auto first = d.start("/freeze?maxWaitMs=600000");
  CHECK(first->status == 0);  // still waiting: nothing reports frozen
  CHECK(d.freeze_of("user") == '1');
  auto second = d.start("/freeze?maxWaitMs=100");
  CHECK(second->status == 503);
  CHECK(second->body == "another freeze is in progress\n");
  auto thaw = d.start("/unfreeze");
  CHECK(thaw->status == 204);
  CHECK(d.freeze_of("user") == '0');
  d.io.run();  // the first sees the thaw at its next poll
  REQUIRE(first->status == 200);
  auto r = nlohmann::json::parse(first->body);
  CHECK(r["notFrozen"] == 2);
  CHECK(r["requested"] == 2);
  // The lock is free again.
  auto third = d.start("/freeze");
  CHECK(third->status == 204);
  d.start("/unfreeze");
}

TEST_CASE("pause routes: maxWaitMs elapses with cgroups not frozen: 200 with notFrozen") {
  Daemon d;
  auto ex = d.start("/freeze?maxWaitMs=30&mode=hierarchy");
  d.io.run();
  REQUIRE(ex->status == 200);
  auto r = nlohmann::json::parse(ex->body);
  CHECK(r["mode"] == "hierarchy");
  CHECK(r["notFrozen"] == 2);
  CHECK(r["waitMs"].get<int>() >= 30);
  d.start("/unfreeze");
}

TEST_CASE("pause routes: the /init hook thaws and reports the audit only when a freeze was in effect") {
  Daemon d;
  CHECK_FALSE(d.pause->thaw_for_init("r1").has_value());
  d.start("/freeze");
  CHECK(d.freeze_of("ptys") == '1');
  auto audit = d.pause->thaw_for_init("r2");
  REQUIRE(audit.has_value());
  auto a = nlohmann::json::parse(*audit);
  CHECK(a["visited"] == 2);
  CHECK(a["escaped"] == 2);  // the fake kernel never froze them
  CHECK(d.freeze_of("ptys") == '0');
}

TEST_CASE("pause routes: /fsfreeze and /fsthaw without a path answer 503; the write gate is open") {
  Daemon d;
  for (auto p : {"/fsfreeze", "/fsthaw"}) {
    auto ex = d.start(p);
    CHECK(ex->status == 503);
    CHECK(ex->body == "{\"code\":503,\"message\":\"no fsfreeze path configured\"}\n");
  }
  http::RequestHead h;
  h.method = "POST";
  h.path = "/files";
  CHECK_FALSE(d.pause->write_gate(h).has_value());
  CHECK_FALSE(d.pause->fs_frozen());
}

TEST_CASE("pause routes: the watchdog thaws a forgotten freeze") {
  pause::PauseOptions o;
  o.thaw_watchdog = std::chrono::milliseconds(20);
  Daemon d(o);
  d.start("/freeze");
  CHECK(d.freeze_of("user") == '1');
  d.io.run();  // only the watchdog's timer is left
  CHECK(d.freeze_of("user") == '0');
}
