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

std::string gzip_compress(std::string_view data);
// Inflates gzip data; refuses output larger than `limit` (resource_exhausted) and bad input.
Status gzip_decompress(std::string_view data, std::size_t limit, std::string& out);

}  // namespace envd::rpc
