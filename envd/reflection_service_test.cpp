#include "envd/reflection_service.h"

#include <doctest/doctest.h>

#include <google/protobuf/descriptor.pb.h>

#include "filesystem.pb.h"
#include "process.pb.h"
#include "reflection_v1.pb.h"

namespace v1 = grpc::reflection::v1;

namespace {

envd::rpc::Registry served() {
  envd::rpc::Registry registry;
  registry.add_service(process::StartRequest::descriptor()->file()->FindServiceByName("Process"));
  envd::register_reflection_service(registry);
  return registry;
}

v1::ServerReflectionResponse ask(const envd::rpc::Registry& registry, const v1::ServerReflectionRequest& req,
                                 std::vector<std::string>& sent) {
  v1::ServerReflectionResponse resp;
  REQUIRE(resp.ParseFromString(envd::reflection_answer(registry, req.SerializeAsString(), sent)));
  CHECK(resp.original_request().SerializeAsString() == req.SerializeAsString());
  return resp;
}

std::vector<std::string> file_names(const v1::ServerReflectionResponse& resp) {
  std::vector<std::string> names;
  for (const auto& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto fd;
    REQUIRE(fd.ParseFromString(bytes));
    names.push_back(fd.name());
  }
  return names;
}

}  // namespace

TEST_CASE("reflection lists the registered services, lazily added ones included") {
  auto registry = served();
  std::vector<std::string> sent;
  v1::ServerReflectionRequest req;
  req.set_list_services("");
  auto resp = ask(registry, req, sent);
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  CHECK(names == std::vector<std::string>{"grpc.reflection.v1.ServerReflection",
                                          "grpc.reflection.v1alpha.ServerReflection", "process.Process"});
}

TEST_CASE("reflection finds the file of a service, method, message, enum; dependencies once per stream") {
  auto registry = served();
  std::vector<std::string> sent;
  v1::ServerReflectionRequest req;
  req.set_file_containing_symbol("process.Process");
  auto first = file_names(ask(registry, req, sent));
  REQUIRE(!first.empty());
  CHECK(first[0] == "process.proto");
  CHECK(first.size() == 1);  // process.proto imports nothing

  // A file comes with its imports (grpcurl needs them); not twice on one stream.
  req.set_file_containing_symbol("filesystem.EntryInfo");
  CHECK(file_names(ask(registry, req, sent)) ==
        std::vector<std::string>{"filesystem.proto", "google/protobuf/timestamp.proto"});
  req.set_file_containing_symbol("filesystem.Filesystem.Stat");
  CHECK(file_names(ask(registry, req, sent)) == std::vector<std::string>{"filesystem.proto"});

  // The same file again: the file itself is always sent, its dependencies not twice.
  req.set_file_containing_symbol("process.Process.Start");
  CHECK(file_names(ask(registry, req, sent)) == std::vector<std::string>{"process.proto"});
  req.set_file_containing_symbol("process.StartRequest");
  CHECK(file_names(ask(registry, req, sent)) == std::vector<std::string>{"process.proto"});
  req.set_file_containing_symbol("process.Signal");
  CHECK(file_names(ask(registry, req, sent)) == std::vector<std::string>{"process.proto"});

  std::vector<std::string> fresh;
  req.set_file_by_filename("process.proto");
  CHECK(file_names(ask(registry, req, fresh)) == first);
}

TEST_CASE("reflection answers unknown names and extensions with a NOT_FOUND error_response") {
  auto registry = served();
  std::vector<std::string> sent;
  v1::ServerReflectionRequest req;
  req.set_file_containing_symbol("process.Nope");
  auto resp = ask(registry, req, sent);
  CHECK(resp.error_response().error_code() == 5);
  CHECK(resp.error_response().error_message().find("process.Nope") != std::string::npos);

  req.set_file_by_filename("nope.proto");
  CHECK(ask(registry, req, sent).error_response().error_code() == 5);

  req.mutable_file_containing_extension()->set_containing_type("process.StartRequest");
  req.mutable_file_containing_extension()->set_extension_number(100);
  CHECK(ask(registry, req, sent).error_response().error_code() == 5);

  req.set_all_extension_numbers_of_type("process.StartRequest");
  resp = ask(registry, req, sent);
  CHECK(resp.has_all_extension_numbers_response());
  CHECK(resp.all_extension_numbers_response().base_type_name() == "process.StartRequest");
  CHECK(resp.all_extension_numbers_response().extension_number_size() == 0);
  req.set_all_extension_numbers_of_type("process.Nope");
  CHECK(ask(registry, req, sent).error_response().error_code() == 5);

  CHECK(ask(registry, v1::ServerReflectionRequest{}, sent).error_response().error_code() == 3);
  CHECK(sent.empty());
}
