#include <google/protobuf/descriptor.h>

#include "fs/filesystem_service.h"

#include "filesystem.pb.h"

namespace envd::fs {

void register_service(rpc::Registry& registry) {
  registry.add_service(::filesystem::StatRequest::descriptor()->file()->FindServiceByName("Filesystem"));
}

}  // namespace envd::fs
