#include "envd/rpc/codec.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "envd/rest/gzip.h"
#include "envd/rpc/service.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

namespace envd::rpc {

namespace {

namespace gpb = google::protobuf;

// True if `d` or any message type it reaches has a repeated field that is not a map.
bool has_list_field(const gpb::Descriptor* d) {
  static std::mutex mu;
  static std::map<const gpb::Descriptor*, bool> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(d); it != cache.end()) return it->second;
  cache[d] = false;  // a recursive type meets itself: no verdict from that path
  bool found = false;
  std::vector<const gpb::Descriptor*> todo{d};
  std::vector<const gpb::Descriptor*> seen{d};
  while (!todo.empty() && !found) {
    const gpb::Descriptor* m = todo.back();
    todo.pop_back();
    for (int i = 0; i < m->field_count() && !found; ++i) {
      const gpb::FieldDescriptor* f = m->field(i);
      if (f->is_repeated() && !f->is_map()) found = true;
      if (const gpb::Descriptor* sub = f->message_type()) {
        if (std::find(seen.begin(), seen.end(), sub) == seen.end()) {
          seen.push_back(sub);
          todo.push_back(sub);
        }
      }
    }
  }
  cache[d] = found;
  return found;
}

const gpb::FieldDescriptor* json_field(const gpb::Descriptor* d, std::string_view key) {
  for (int i = 0; i < d->field_count(); ++i) {
    const gpb::FieldDescriptor* f = d->field(i);
    if (f->json_name() == key || f->name() == key) return f;
  }
  return nullptr;
}

// protojson refuses a scalar where a repeated field needs a JSON array; libprotobuf 3.21's
// JsonStringToMessage takes it as a one-element list. This pass (SAX: nothing built) walks the
// JSON along the message's descriptors and finds such a value. Map fields are checked by
// libprotobuf itself; unknown members are skipped by counting their depth.
class ListFieldCheck {
 public:
  using json = nlohmann::json;
  explicit ListFieldCheck(const gpb::Descriptor* root) { frames_.push_back({root, false}); }

  bool null() { return scalar(true); }
  bool boolean(bool) { return scalar(false); }
  bool number_integer(json::number_integer_t) { return scalar(false); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(false); }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(false); }
  bool string(json::string_t&) { return scalar(false); }
  bool binary(json::binary_t&) { return scalar(false); }
  bool start_object(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(true); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    if (skip_depth_ > 0) return true;
    const Frame& top = frames_.back();
    pending_ = top.message ? json_field(top.message, k) : nullptr;
    has_pending_ = pending_ != nullptr;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  const gpb::FieldDescriptor* offender() const { return offender_; }

 private:
  struct Frame {
    const gpb::Descriptor* message;  // object of this message type; nullptr: a list or map
    bool list;                       // array of a repeated field (elements: element_type)
    const gpb::Descriptor* element_type = nullptr;
  };

  // The field a value belongs to, if it is a member of a known message (not inside a list).
  const gpb::FieldDescriptor* take_field() {
    if (!has_pending_) return nullptr;
    has_pending_ = false;
    return pending_;
  }

  bool scalar(bool is_null) {
    if (skip_depth_ > 0) return true;
    const gpb::FieldDescriptor* f = take_field();
    if (f && f->is_repeated() && !f->is_map() && !is_null) {
      offender_ = f;
      return false;
    }
    return true;
  }

  bool open(bool array) {
    if (skip_depth_ > 0) {
      ++skip_depth_;
      return true;
    }
    const Frame& top = frames_.back();
    if (top.list) {  // an element of a repeated field
      if (!array && top.element_type) {
        frames_.push_back({top.element_type, false});
      } else {
        skip_depth_ = 1;
      }
      return true;
    }
    if (frames_.size() == 1 && !root_opened_) {  // the top-level object itself
      root_opened_ = true;
      if (array) skip_depth_ = 1;
      return true;
    }
    const gpb::FieldDescriptor* f = take_field();
    if (!f) {
      skip_depth_ = 1;  // unknown member, or anything libprotobuf judges by itself
      return true;
    }
    if (f->is_repeated() && !f->is_map()) {
      if (!array) {
        offender_ = f;
        return false;
      }
      frames_.push_back({nullptr, true, f->message_type()});
      return true;
    }
    if (!array && !f->is_map() && f->message_type() && !is_well_known(f->message_type())) {
      frames_.push_back({f->message_type(), false});
      return true;
    }
    skip_depth_ = 1;  // maps, well-known types (Struct, Value...): libprotobuf checks them
    return true;
  }

  bool close() {
    if (skip_depth_ > 0) {
      --skip_depth_;
      return true;
    }
    if (frames_.size() > 1) frames_.pop_back();
    return true;
  }

  static bool is_well_known(const gpb::Descriptor* d) { return d->file()->package() == "google.protobuf"; }

  std::vector<Frame> frames_;
  std::size_t skip_depth_ = 0;
  bool root_opened_ = false;
  const gpb::FieldDescriptor* pending_ = nullptr;
  bool has_pending_ = false;
  const gpb::FieldDescriptor* offender_ = nullptr;
};

}  // namespace

namespace {

// `{}` with JSON whitespace around or inside the braces.
bool is_empty_json_object(std::string_view d) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t i = 0;
  while (i < d.size() && ws(d[i])) ++i;
  if (i == d.size() || d[i] != '{') return false;
  ++i;
  while (i < d.size() && ws(d[i])) ++i;
  if (i == d.size() || d[i] != '}') return false;
  ++i;
  while (i < d.size() && ws(d[i])) ++i;
  return i == d.size();
}

}  // namespace

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
  if (is_empty_json_object(data)) {
    // `{}` (List, and every request without fields): what the parser would give, without its
    // converter set-up (about 9,000 instructions a request).
    msg.Clear();
    return {};
  }
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st =
      google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece(data.data(), data.size()), &msg, opts);
  if (!st.ok()) {
    return error(Code::invalid_argument, "unmarshal into " + type + ": " + std::string(st.message()));
  }
  if (has_list_field(msg.GetDescriptor())) {
    ListFieldCheck check(msg.GetDescriptor());
    if (!nlohmann::json::sax_parse(data, &check) && check.offender()) {
      msg.Clear();
      return error(Code::invalid_argument, "unmarshal into " + type + ": (" + check.offender()->full_name() +
                                               "): a repeated field needs a JSON array");
    }
  }
  return {};
}

namespace {

struct JsonEncoders {
  std::mutex mu;
  std::vector<std::pair<std::string, JsonEncoder>> list;
};

JsonEncoders& json_encoders() {
  static JsonEncoders e;
  return e;
}

JsonEncoder find_json_encoder(const std::string& full_name) {
  auto& e = json_encoders();
  std::lock_guard lock(e.mu);
  for (const auto& [name, fn] : e.list)
    if (name == full_name) return fn;
  return nullptr;
}

}  // namespace

void register_json_encoder(std::string full_name, JsonEncoder encoder) {
  auto& e = json_encoders();
  std::lock_guard lock(e.mu);
  for (auto& [name, fn] : e.list) {
    if (name == full_name) {
      fn = encoder;
      return;
    }
  }
  e.list.emplace_back(std::move(full_name), encoder);
}

void encode_message_to(Codec codec, const google::protobuf::Message& msg, std::string& out) {
  if (codec == Codec::proto) {
    const std::size_t at = out.size();
    const std::size_t n = msg.ByteSizeLong();
    out.resize(at + n);
    msg.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(out.data() + at));
    return;
  }
  if (JsonEncoder fast = find_json_encoder(msg.GetDescriptor()->full_name()); fast && fast(msg, out)) return;
  if (msg.ByteSizeLong() == 0) {
    // Nothing set (no field with presence, no non-default value, no unknown fields): the printer
    // with these options writes `{}`; skip its serialise-and-reparse (about 14,000 instructions).
    out += "{}";
    return;
  }
  google::protobuf::util::JsonPrintOptions opts;  // defaults omitted, lowerCamelCase names
  if (out.empty()) {
    (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
    return;
  }
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(msg, &text, opts);
  out += text;
}

std::string encode_message(Codec codec, const google::protobuf::Message& msg) {
  std::string out;
  encode_message_to(codec, msg, out);
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
