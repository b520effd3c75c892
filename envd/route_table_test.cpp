#include "envd/route_table.h"

#include <doctest/doctest.h>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "envd/rpc/rpc_server.h"
#include "process.pb.h"

TEST_CASE("route_table_json: every route with its token exemption, every RPC method of a registered service") {
  envd::rpc::Registry registry;
  registry.add_service(::process::StartRequest::descriptor()->file()->FindServiceByName("Process"));
  envd::rpc::RpcServer rpc(registry, envd::rpc::RpcConfig{});
  envd::Router router(rpc);
  auto nothing = [](envd::http::Exchange&) -> boost::asio::awaitable<void> { co_return; };
  router.add("POST", "/files", nothing);
  router.add("GET", "/files", nothing);
  router.add("POST", "/files/compose", nothing);
  router.add("GET", "/envs", nothing);
  router.add("POST", "/init", nothing, envd::RouteOptions{.run_to_completion = true});

  auto t = nlohmann::json::parse(envd::route_table_json(router, registry));
  REQUIRE(t["routes"].size() == 5);
  // Sorted by path, then method.
  CHECK(t["routes"][0] ==
        nlohmann::json{{"method", "GET"}, {"path", "/envs"}, {"token_exempt", false}, {"run_to_completion", false}});
  CHECK(t["routes"][1]["path"] == "/files");
  CHECK(t["routes"][1]["method"] == "GET");
  CHECK(t["routes"][1]["token_exempt"] == true);
  CHECK(t["routes"][2]["method"] == "POST");
  CHECK(t["routes"][2]["token_exempt"] == true);
  CHECK(t["routes"][3]["path"] == "/files/compose");
  CHECK(t["routes"][3]["token_exempt"] == false);
  CHECK(t["routes"][4]["path"] == "/init");
  CHECK(t["routes"][4]["token_exempt"] == true);
  CHECK(t["routes"][4]["run_to_completion"] == true);

  // Every method of the service descriptor, handler or not.
  const auto* svc = ::process::StartRequest::descriptor()->file()->FindServiceByName("Process");
  REQUIRE(t["rpc"].size() == static_cast<std::size_t>(svc->method_count()));
  bool saw_start = false, saw_stream_input = false;
  for (const auto& m : t["rpc"]) {
    CHECK(m["path"] == "/" + m["service"].get<std::string>() + "/" + m["method"].get<std::string>());
    if (m["method"] == "Start") {
      saw_start = true;
      CHECK(m["kind"] == "server_stream");
      CHECK(m["request"] == "process.StartRequest");
      CHECK(m["response"] == "process.StartResponse");
    }
    if (m["method"] == "StreamInput") {
      saw_stream_input = true;
      CHECK(m["kind"] == "client_stream");
    }
  }
  CHECK(saw_start);
  CHECK(saw_stream_input);
}
