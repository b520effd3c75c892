#include "envd/flags.h"

#include <doctest/doctest.h>

using namespace envd;

TEST_CASE("flags: Go-style single and double dashes, = and separate values") {
  Flags f;
  CHECK_FALSE(parse_flags({"-port", "8080", "--isnotfc", "-verbose=false", "--cgroup-root=/x"}, f));
  CHECK(f.port == 8080);
  CHECK(f.is_not_fc);
  CHECK_FALSE(f.verbose);
  CHECK(f.cgroup_root == "/x");
  Flags g;
  CHECK_FALSE(parse_flags({"--port=0", "-no-cgroups", "-idle-timeout-ms", "250"}, g));
  CHECK(g.port == 0);
  CHECK(g.no_cgroups);
  CHECK(g.idle_timeout == std::chrono::milliseconds(250));
}

TEST_CASE("flags: errors are reported, not guessed") {
  Flags f;
  CHECK(parse_flags({"--bogus"}, f).value() == "flag provided but not defined: -bogus");
  CHECK(parse_flags({"-port"}, f).value() == "flag needs an argument: -port");
  CHECK(parse_flags({"-port", "70000"}, f).has_value());
  CHECK(parse_flags({"-port", "x"}, f).has_value());
  CHECK(parse_flags({"-verbose=maybe"}, f).has_value());
  CHECK(parse_flags({"stray"}, f).has_value());
  CHECK(parse_flags({"--max-message-bytes", "0"}, f).has_value());
}

TEST_CASE("flags: control and operations flags") {
  Flags f;
  CHECK(f.default_user == "root");
  CHECK(f.metrics_interval == std::chrono::milliseconds(2000));
  CHECK_FALSE(f.owns_clock);
  CHECK_FALSE(parse_flags({"--default-user", "user", "-default-workdir=/home/user", "--metrics-interval-ms=50",
                           "-shutdown-timeout-ms", "0", "--owns-clock", "-help"},
                          f));
  CHECK(f.default_user == "user");
  CHECK(f.default_workdir == "/home/user");
  CHECK(f.metrics_interval == std::chrono::milliseconds(50));
  CHECK(f.shutdown_timeout == std::chrono::milliseconds(0));
  CHECK(f.owns_clock);
  CHECK(f.help);
  Flags g;
  CHECK(parse_flags({"--default-user="}, g).has_value());
  CHECK(parse_flags({"--metrics-interval-ms", "5"}, g).has_value());
  CHECK(parse_flags({"--metrics-interval-ms", "-1"}, g).has_value());
  CHECK(parse_flags({"--shutdown-timeout-ms", "x"}, g).has_value());
  for (auto flag :
       {"-port", "-version", "-commit", "-isnotfc", "-verbose", "-cgroup-root", "-no-cgroups", "--default-user",
        "--default-workdir", "--metrics-interval-ms", "--shutdown-timeout-ms", "--owns-clock", "-help"}) {
    std::string name = std::string(flag).substr(flag[1] == '-' ? 2 : 1);
    CHECK_MESSAGE(usage().find("-" + name + " ") != std::string::npos, name);
  }
}

TEST_CASE("flags: heap trim interval") {
  Flags f;
  CHECK(f.trim_interval == std::chrono::milliseconds(10000));
  CHECK_FALSE(parse_flags({"--trim-interval-ms", "250"}, f).has_value());
  CHECK(f.trim_interval == std::chrono::milliseconds(250));
  CHECK(parse_flags({"--trim-interval-ms", "0"}, f).has_value());
  CHECK(usage().find("--trim-interval-ms") != std::string::npos);
}

TEST_CASE("flags: port forwarding") {
  envd::Flags f;
  REQUIRE_FALSE(envd::parse_flags({}, f));
  CHECK(f.forward_address == "169.254.0.21");
  CHECK(f.forward_scan.count() == 1000);
  CHECK(f.forward_ports.empty());
  CHECK(f.forward_thread);
  REQUIRE_FALSE(
      envd::parse_flags({"--forward-address", "127.0.0.2", "--forward-scan-ms", "50", "--forward-ports",
                         "8000,9000-9010", "--forward-max-connections-per-port", "2", "--forward-max-connections", "3",
                         "--forward-fd-reserve", "0", "--forward-thread=false"},
                        f));
  CHECK(f.forward_address == "127.0.0.2");
  CHECK(f.forward_scan.count() == 50);
  REQUIRE(f.forward_ports.size() == 2);
  CHECK(f.forward_ports[0] == std::pair<std::uint16_t, std::uint16_t>{8000, 8000});
  CHECK(f.forward_ports[1] == std::pair<std::uint16_t, std::uint16_t>{9000, 9010});
  CHECK(f.forward_max_connections_per_port == 2);
  CHECK(f.forward_max_connections == 3);
  CHECK(f.forward_fd_reserve == 0);
  CHECK_FALSE(f.forward_thread);
  REQUIRE_FALSE(envd::parse_flags({"--forward-address=", "--forward-ports="}, f));
  CHECK(f.forward_address.empty());  // off
  CHECK(f.forward_ports.empty());    // all
  REQUIRE_FALSE(envd::parse_flags({"--forward-address", "fd00::21"}, f));
  for (const char* bad : {"localhost", "0.0.0.0", "::", "1.2.3"}) {
    CHECK(envd::parse_flags({"--forward-address", bad}, f));
  }
  for (const char* bad : {"0", "70000", "9-8", "a", "1,,2", "-5"}) {
    CHECK(envd::parse_flags({"--forward-ports", bad}, f));
  }
  CHECK(envd::parse_flags({"--forward-scan-ms", "0"}, f));
}

TEST_CASE("flags: process service (retention, subscriber stall)") {
  Flags f;
  CHECK(f.process_retention == std::chrono::milliseconds(30000));
  CHECK(f.subscriber_stall == std::chrono::milliseconds(10000));
  REQUIRE_FALSE(parse_flags({"--process-retention-ms", "0", "-subscriber-stall-ms=2500"}, f).has_value());
  CHECK(f.process_retention == std::chrono::milliseconds(0));
  CHECK(f.subscriber_stall == std::chrono::milliseconds(2500));
  CHECK(parse_flags({"--subscriber-stall-ms", "0"}, f).has_value());
  CHECK(parse_flags({"--process-retention-ms", "x"}, f).has_value());
}

TEST_CASE("flags: transport bounds (issue 7)") {
  Flags f;
  CHECK(f.read_timeout == std::chrono::milliseconds(60'000));
  CHECK(f.read_min_progress_bytes == 1024);
  CHECK(f.max_header_count == 256);
  CHECK(f.h2_max_header_list_bytes == 64u * 1024);
  CHECK(f.h2_header_budget_bytes == 4u << 20);
  CHECK(f.h2_max_concurrent_streams == 250);
  CHECK_FALSE(parse_flags(
      {"--read-timeout-ms", "300", "--read-min-progress-bytes=64", "--max-header-count", "100",
       "--h2-max-header-list-bytes", "8192", "--h2-header-budget-bytes", "65536", "--h2-max-concurrent-streams", "100"},
      f));
  CHECK(f.read_timeout == std::chrono::milliseconds(300));
  CHECK(f.read_min_progress_bytes == 64);
  CHECK(f.max_header_count == 100);
  CHECK(f.h2_max_header_list_bytes == 8192);
  CHECK(f.h2_header_budget_bytes == 65536);
  CHECK(f.h2_max_concurrent_streams == 100);
  Flags g;
  CHECK(parse_flags({"--read-timeout-ms", "0"}, g).has_value());
  CHECK(parse_flags({"--read-min-progress-bytes", "0"}, g).has_value());
  CHECK(parse_flags({"--max-header-count", "2"}, g).has_value());
  CHECK(parse_flags({"--h2-max-header-list-bytes", "10"}, g).has_value());
  CHECK(parse_flags({"--h2-max-concurrent-streams", "0"}, g).has_value());
  for (auto name : {"max-header-count", "read-timeout-ms", "read-min-progress-bytes", "h2-max-header-list-bytes",
                    "h2-header-budget-bytes", "h2-max-concurrent-streams"}) {
    CHECK_MESSAGE(usage().find(std::string("--") + name + " ") != std::string::npos, name);
  }
}

TEST_CASE("flags: upload idle timeout") {
  Flags f;
  CHECK(f.upload_idle_timeout == std::chrono::milliseconds(60000));
  REQUIRE_FALSE(parse_flags({"--upload-idle-timeout-ms", "250"}, f).has_value());
  CHECK(f.upload_idle_timeout == std::chrono::milliseconds(250));
  CHECK(parse_flags({"--upload-idle-timeout-ms", "0"}, f).has_value());
  CHECK(parse_flags({"-upload-idle-timeout-ms=x"}, f).has_value());
}
