#pragma once
// Message codecs (binary protobuf and canonical proto3 JSON) and gzip.
#include <string>
#include <string_view>

#include "envd/rpc/status.h"

namespace google::protobuf {
class Message;
}

namespace envd::rpc {

enum class Codec { proto, json };

// Decodes `data` into `msg`. JSON ignores unknown fields and refuses an empty payload.
Status decode_message(Codec codec, std::string_view data, google::protobuf::Message& msg);
// Encodes `msg`. JSON omits default values, writes int64 as strings and enums as names.
std::string encode_message(Codec codec, const google::protobuf::Message& msg);
// The same, appended to `out` (e.g. after the 5 bytes an envelope header will take), so a frame
// is built in one buffer with no copy of the payload.
void encode_message_to(Codec codec, const google::protobuf::Message& msg, std::string& out);

// (register_json_encoder, in service.h, plugs a hand-written JSON encoder into encode_message.)

std::string gzip_compress(std::string_view data);
// Inflates gzip data; refuses output larger than `limit` (resource_exhausted) and bad input.
Status gzip_decompress(std::string_view data, std::size_t limit, std::string& out);

}  // namespace envd::rpc
