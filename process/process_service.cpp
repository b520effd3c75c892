#include <google/protobuf/descriptor.h>

#include "process/process_service.h"

#include "process.pb.h"

namespace envd::process {

void register_service(rpc::Registry& registry) {
  registry.add_service(::process::StartRequest::descriptor()->file()->FindServiceByName("Process"));
}

}  // namespace envd::process
