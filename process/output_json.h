#pragma once
// The hot message of a process stream in Connect JSON: a StartResponse/ConnectResponse whose event
// is a DataEvent with its stdout, stderr or pty bytes (and maybe its offset). Written directly, the
// same text as protobuf's JSON converter (key names and order, standard padded base64, uint64 as a
// string), without the converter's serialise-and-reparse and its slow base64. Anything else is
// left to the converter.
#include <string>

namespace google::protobuf {
class Message;
}

namespace envd::process {

// envd::rpc::JsonEncoder for process.StartResponse and process.ConnectResponse.
bool encode_start_response_json(const google::protobuf::Message& msg, std::string& out);
bool encode_connect_response_json(const google::protobuf::Message& msg, std::string& out);

// Registers both with the RPC codec.
void register_output_json_encoders();

}  // namespace envd::process
