#include "envd/rpc/codec.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "envd/rest/gzip.h"

namespace envd::rpc {

Status decode_message(Codec codec, std::string_view data, google::protobuf::Message& msg) {
  const std::string& type = msg.GetDescriptor()->full_name();
  if (codec == Codec::proto) {
    if (!msg.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
      return error(Code::invalid_argument, "unmarshal into " + type + ": invalid binary protobuf");
    }
    return {};
  }
  if (data.empty()) {
    return error(Code::invalid_argument, "unmarshal into " + type + ": zero-length payload is not a valid JSON object");
  }
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st =
      google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece(data.data(), data.size()), &msg, opts);
  if (!st.ok()) {
    return error(Code::invalid_argument, "unmarshal into " + type + ": " + std::string(st.message()));
  }
  return {};
}

std::string encode_message(Codec codec, const google::protobuf::Message& msg) {
  std::string out;
  if (codec == Codec::proto) {
    msg.SerializeToString(&out);
    return out;
  }
  google::protobuf::util::JsonPrintOptions opts;  // defaults omitted, lowerCamelCase names
  (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

std::string gzip_compress(std::string_view data) { return rest::gzip_compress(data); }

Status gzip_decompress(std::string_view data, std::size_t limit, std::string& out) {
  std::string why = rest::gzip_decompress(data, limit, out);
  if (why.empty()) return {};
  if (why == "too large") {
    return error(Code::resource_exhausted,
                 "message is larger than configured max " + std::to_string(limit) + " bytes after decompression");
  }
  if (why == "EOF" || why == "unexpected EOF") return error(Code::invalid_argument, "gzip: truncated compressed data");
  return error(Code::invalid_argument, "gzip: invalid compressed data");
}

}  // namespace envd::rpc
