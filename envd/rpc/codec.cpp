#include "envd/rpc/codec.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <zlib.h>

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

std::string gzip_compress(std::string_view data) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out;
  out.resize(deflateBound(&zs, data.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Status gzip_decompress(std::string_view data, std::size_t limit, std::string& out) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return error(Code::internal, "gzip: cannot initialise inflater");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  out.clear();
  char chunk[64 * 1024];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return error(Code::invalid_argument, "gzip: invalid compressed data");
    }
    out.append(chunk, sizeof chunk - zs.avail_out);
    if (out.size() > limit) {
      inflateEnd(&zs);
      return error(Code::resource_exhausted,
                   "message is larger than configured max " + std::to_string(limit) + " bytes after decompression");
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return error(Code::invalid_argument, "gzip: truncated compressed data");
    }
  }
  inflateEnd(&zs);
  return {};
}

}  // namespace envd::rpc
