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

// A hand-written JSON encoder for a hot message type: appends to `out` exactly the text the
// generic converter would write for `msg` and returns true, or returns false with `out` untouched
// to leave `msg` to the converter. Registered by full type name (no descriptor is built for it).
using JsonEncoder = bool (*)(const google::protobuf::Message& msg, std::string& out);
void register_json_encoder(std::string full_name, JsonEncoder encoder);

std::string gzip_compress(std::string_view data);
// Inflates gzip data; refuses output larger than `limit` (resource_exhausted) and bad input.
Status gzip_decompress(std::string_view data, std::size_t limit, std::string& out);

}  // namespace envd::rpc
