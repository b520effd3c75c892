#include "process/output_json.h"

#include "envd/base64.h"
#include "envd/rpc/service.h"
#include "process.pb.h"

#include <google/protobuf/unknown_field_set.h>

namespace envd::process {

namespace {

namespace pb = ::process;

// No fields this build does not know (a newer peer's message): those are left to the converter.
bool no_unknown(const google::protobuf::Message& m) { return m.GetReflection()->GetUnknownFields(m).empty(); }

template <class Resp>
bool encode_data(const google::protobuf::Message& msg, std::string& out) {
  const auto& resp = static_cast<const Resp&>(msg);
  if (!resp.has_event() || !no_unknown(resp)) return false;
  const pb::ProcessEvent& ev = resp.event();
  if (ev.event_case() != pb::ProcessEvent::kData || !no_unknown(ev)) return false;
  const pb::ProcessEvent::DataEvent& data = ev.data();
  if (!no_unknown(data)) return false;
  const std::string* bytes = nullptr;
  const char* key = nullptr;
  switch (data.output_case()) {
    case pb::ProcessEvent::DataEvent::kStdout:
      bytes = &data.stdout();
      key = R"({"event":{"data":{"stdout":")";
      break;
    case pb::ProcessEvent::DataEvent::kStderr:
      bytes = &data.stderr();
      key = R"({"event":{"data":{"stderr":")";
      break;
    case pb::ProcessEvent::DataEvent::kPty:
      bytes = &data.pty();
      key = R"({"event":{"data":{"pty":")";
      break;
    default: return false;
  }
  std::string offset;
  if (data.has_offset()) offset = std::to_string(data.offset());
  out.reserve(out.size() + 64 + offset.size() + (bytes->size() + 2) / 3 * 4);
  out += key;
  base64_append(out, *bytes);
  out += '"';
  if (data.has_offset()) {
    // Field 100 after the oneof (fields in number order); uint64 as a JSON string.
    out += R"(,"offset":")";
    out += offset;
    out += '"';
  }
  out += "}}}";
  return true;
}

}  // namespace

bool encode_start_response_json(const google::protobuf::Message& msg, std::string& out) {
  return encode_data<pb::StartResponse>(msg, out);
}

bool encode_connect_response_json(const google::protobuf::Message& msg, std::string& out) {
  return encode_data<pb::ConnectResponse>(msg, out);
}

void register_output_json_encoders() {
  rpc::register_json_encoder("process.StartResponse", &encode_start_response_json);
  rpc::register_json_encoder("process.ConnectResponse", &encode_connect_response_json);
}

}  // namespace envd::process
