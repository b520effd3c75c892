#include "envd/rpc/service.h"

#include <doctest/doctest.h>

#include <stdexcept>

#include "process.pb.h"

namespace rpc = envd::rpc;

namespace {

int lookups = 0;

const google::protobuf::ServiceDescriptor* process_service() {
  ++lookups;
  return ::process::StartRequest::descriptor()->file()->FindServiceByName("Process");
}

}  // namespace

TEST_CASE("Registry: a service added by name is looked up at its first call, with the handlers set before") {
  lookups = 0;
  rpc::Registry registry;
  registry.add_service("process.Process", &process_service);
  bool handled = false;
  registry.unary<::process::ListRequest, ::process::ListResponse>(
      "process.Process", "List",
      [&handled](rpc::CallContext&, const auto&, auto&) -> boost::asio::awaitable<rpc::Status> {
        handled = true;
        co_return rpc::Status{};
      });
  CHECK(lookups == 0);

  bool known = true;
  CHECK(registry.find("/health", &known) == nullptr);
  CHECK_FALSE(known);
  CHECK(registry.find("/filesystem.Filesystem/Stat", &known) == nullptr);
  CHECK_FALSE(known);
  CHECK(lookups == 0);

  const rpc::Method* list = registry.find("/process.Process/List", &known);
  CHECK(known);
  CHECK(lookups == 1);
  REQUIRE(list != nullptr);
  CHECK(list->kind == rpc::MethodKind::unary);
  const rpc::Method* start = registry.find("/process.Process/Start", &known);
  REQUIRE(start != nullptr);
  CHECK(start->kind == rpc::MethodKind::server_stream);
  CHECK(registry.find("/process.Process/NoSuchMethod", &known) == nullptr);
  CHECK(known);
  CHECK(lookups == 1);
}

TEST_CASE("Registry: an unknown method of a service added by name is refused when it is looked up") {
  lookups = 0;
  rpc::Registry registry;
  registry.add_service("process.Process", &process_service);
  registry.unary<::process::ListRequest, ::process::ListResponse>(
      "process.Process", "Lisst",
      [](rpc::CallContext&, const auto&, auto&) -> boost::asio::awaitable<rpc::Status> { co_return rpc::Status{}; });
  CHECK_THROWS_AS(registry.resolve_all(), std::logic_error);
}
