#include "envd/init.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "envd/ascii.h"
#include "envd/secure.h"

namespace envd {

namespace {

using nlohmann::json;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::size_t skip_ws(std::string_view s, std::size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// s[i] is the opening quote; returns the index after the closing quote.
std::size_t skip_string(std::string_view s, std::size_t i) {
  for (++i; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\') ++i;
  }
  return i + 1;
}

std::size_t skip_value(std::string_view s, std::size_t i) {
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < s.size() && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

// Calls fn(decoded key, raw value) for each member of the object starting at text[i] ('{'), in
// document order; stops early when fn returns false. `text` must already be valid JSON. Builds
// nothing: only the key being looked at is decoded.
template <class Fn>
bool for_each_member(std::string_view text, std::size_t i, Fn&& fn) {
  ++i;  // past '{'
  for (;;) {
    i = skip_ws(text, i);
    if (i >= text.size() || text[i] == '}') return true;
    std::size_t key_end = skip_string(text, i);
    std::string key = json::parse(text.substr(i, key_end - i)).get<std::string>();
    i = skip_ws(text, key_end) + 1;  // past ':'
    i = skip_ws(text, i);
    std::size_t value_end = skip_value(text, i);
    if (!fn(key, text.substr(i, value_end - i))) return false;
    i = skip_ws(text, value_end);
    if (i < text.size() && text[i] == ',') ++i;
  }
}

// Calls fn(raw item) for each item of the array starting at text[i] ('['); same rules.
template <class Fn>
bool for_each_item(std::string_view text, std::size_t i, Fn&& fn) {
  ++i;  // past '['
  for (;;) {
    i = skip_ws(text, i);
    if (i >= text.size() || text[i] == ']') return true;
    std::size_t value_end = skip_value(text, i);
    if (!fn(text.substr(i, value_end - i))) return false;
    i = skip_ws(text, value_end);
    if (i < text.size() && text[i] == ',') ++i;
  }
}

// Validates JSON without building anything, refusing nesting deeper than max_depth.
class DepthCheckingSax {
 public:
  explicit DepthCheckingSax(std::size_t max_depth) : max_depth_(max_depth) {}
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return enter(); }
  bool key(json::string_t&) { return true; }
  bool end_object() { return leave(); }
  bool start_array(std::size_t) { return enter(); }
  bool end_array() { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ > max_depth_) too_deep_ = true;
    return !too_deep_;
  }
  bool leave() {
    --depth_;
    return true;
  }
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  bool too_deep_ = false;
};

bool is_string_or_null(std::string_view raw) { return !raw.empty() && (raw[0] == '"' || raw[0] == 'n'); }
bool is_null(std::string_view raw) { return raw == "null"; }
std::string decode_string(std::string_view raw) { return json::parse(raw).get<std::string>(); }

bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// A string-or-null member. Returns false on a type error; `build` false checks only.
bool get_optional_string(std::string_view raw, std::optional<std::string>& out, bool build) {
  if (is_null(raw)) return true;
  if (raw.empty() || raw[0] != '"') return false;
  if (build) out = decode_string(raw);
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!parse_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !parse_digits(s, 5, 2, month) || s[7] != '-' ||
      !parse_digits(s, 8, 2, day) || s[10] != 'T' || !parse_digits(s, 11, 2, hour) || s[13] != ':' ||
      !parse_digits(s, 14, 2, minute) || s[16] != ':' || !parse_digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    std::size_t start = ++i;
    int kept = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (kept < 9) {
        nanos = nanos * 10 + (s[i] - '0');
        ++kept;
      }
      ++i;
    }
    if (i == start) return std::nullopt;
    for (; kept < 9; ++kept) nanos *= 10;
  }
  std::int64_t offset = 0;
  if (i < s.size() && s[i] == 'Z') {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!parse_digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !parse_digits(s, i + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (s[i] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return std::nullopt;
  if (day > kDays[month - 1] + (month == 2 && leap(year) ? 1 : 0)) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  std::int64_t secs = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                      hour * 3600 + minute * 60 + second - offset;
  // Unix nanoseconds fit years 1678..2262; saturate beyond (ordering still works).
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1;
  if (secs > kMax) return std::numeric_limits<std::int64_t>::max();
  if (secs < -kMax) return std::numeric_limits<std::int64_t>::min();
  return secs * 1'000'000'000 + nanos;
}

namespace {

// Walks a body already known to be valid JSON (see check_init_json) as Go's encoding/json decodes
// it into envd's struct: members matched to fields by exact name, else case-insensitively; unknown
// members skipped unseen; a later member overwrites an earlier one; null leaves a field alone.
// With `build` false it checks every field's type and fills only accessToken and timestamp (the
// token check needs them); nothing a client can make big (envVars, volumeMounts) is built.
bool walk_init(std::string_view body, InitRequest& req, bool build, std::string& why) {
  std::size_t first = skip_ws(body, 0);
  if (first == body.size() || body[first] == 'n') return true;  // no body, or top-level null (as Go)
  if (body[first] != '{') {
    why = "the body is not a JSON object";
    return false;
  }
  return for_each_member(body, first, [&](const std::string& key, std::string_view v) {
    auto is = [&](std::string_view name) { return ascii::iequals(key, name); };
    auto fail = [&](std::string text) {
      why = std::move(text);
      return false;
    };
    if (is("accessToken")) {
      // envd's SecureToken.UnmarshalJSON looks at the raw bytes: a string without escapes, non-empty.
      if (is_null(v)) {
        req.access_token.reset();
        return true;
      }
      if (v.size() < 2 || v.front() != '"' || v.back() != '"')
        return fail("accessToken: invalid secure token JSON string");
      std::string_view content = v.substr(1, v.size() - 2);
      if (content.find('\\') != std::string_view::npos) {
        return fail("accessToken: invalid secure token: unexpected escape sequence");
      }
      if (content.empty()) return fail("accessToken: empty token not allowed");
      req.access_token = std::string(content);
    } else if (is("envVars")) {
      if (is_null(v)) {
        req.env_vars.reset();
        return true;
      }
      if (v[0] != '{') return fail("envVars: not an object");
      std::map<std::string, std::string> env;
      bool ok = for_each_member(v, 0, [&](const std::string& k, std::string_view val) {
        if (!is_string_or_null(val)) return fail("envVars: value of " + k + " is not a string");
        if (build) env[k] = is_null(val) ? std::string() : decode_string(val);
        return true;
      });
      if (!ok) return false;
      if (build) req.env_vars = std::move(env);
    } else if (is("timestamp")) {
      if (is_null(v)) return true;  // time.Time ignores null
      if (v[0] != '"') return fail("timestamp: not a string");
      auto ts = parse_rfc3339(decode_string(v));
      if (!ts) return fail("timestamp: not RFC 3339");
      req.timestamp_ns = *ts;
    } else if (is("defaultUser")) {
      if (!get_optional_string(v, req.default_user, build)) return fail("defaultUser: not a string");
    } else if (is("defaultWorkdir")) {
      if (!get_optional_string(v, req.default_workdir, build)) return fail("defaultWorkdir: not a string");
    } else if (is("hyperloopIP")) {
      if (!get_optional_string(v, req.hyperloop_ip, build)) return fail("hyperloopIP: not a string");
    } else if (is("caBundle")) {
      if (!get_optional_string(v, req.ca_bundle, build)) return fail("caBundle: not a string");
    } else if (is("lifecycleID")) {
      if (!get_optional_string(v, req.lifecycle_id, build)) return fail("lifecycleID: not a string");
    } else if (is("volumeMounts")) {
      if (is_null(v)) {
        req.volume_mounts.reset();
        return true;
      }
      if (v[0] != '[') return fail("volumeMounts: not an array");
      std::vector<VolumeMount> mounts;
      bool ok = for_each_item(v, 0, [&](std::string_view item) {
        VolumeMount vm;
        if (item[0] != '{' && !is_null(item)) return fail("volumeMounts: item is not an object");
        if (item[0] == '{') {
          bool item_ok = for_each_member(item, 0, [&](const std::string& k, std::string_view val) {
            bool target = ascii::iequals(k, "nfs_target"), path = ascii::iequals(k, "path");
            if (!target && !path) return true;
            std::optional<std::string> s;
            if (!get_optional_string(val, s, build)) return fail("volumeMounts: " + k + " is not a string");
            if (target && s) vm.nfs_target = *s;
            if (path && s) vm.path = *s;
            return true;
          });
          if (!item_ok) return false;
        }
        if (build) mounts.push_back(std::move(vm));
        return true;
      });
      if (!ok) return false;
      if (build) req.volume_mounts = std::move(mounts);
    }
    return true;
  });
}

}  // namespace

InitCheck check_init_json(std::string_view body, std::size_t max_depth) {
  if (skip_ws(body, 0) == body.size()) return InitCheck::ok;  // no body: no fields
  DepthCheckingSax sax(max_depth);
  if (json::sax_parse(body, &sax)) return InitCheck::ok;
  return sax.too_deep() ? InitCheck::too_deep : InitCheck::invalid;
}

std::optional<InitRequest> check_init_request(std::string_view body, std::string* error) {
  InitRequest req;
  std::string why;
  if (!walk_init(body, req, false, why)) {
    if (error) *error = std::move(why);
    return std::nullopt;
  }
  return req;
}

std::optional<InitRequest> decode_init_request(std::string_view body, std::string* error) {
  InitRequest req;
  std::string why;
  if (!walk_init(body, req, true, why)) {
    if (error) *error = std::move(why);
    return std::nullopt;
  }
  return req;
}

std::optional<InitRequest> parse_init_request(std::string_view body, std::string* error, std::size_t max_depth) {
  switch (check_init_json(body, max_depth)) {
    case InitCheck::ok: break;
    case InitCheck::invalid:
      if (error) *error = "invalid JSON";
      return std::nullopt;
    case InitCheck::too_deep:
      if (error) *error = "JSON nested deeper than " + std::to_string(max_depth) + " levels";
      return std::nullopt;
  }
  return decode_init_request(body, error);
}

InitAuth validate_init_token(const std::optional<std::string>& current, const std::optional<std::string>& body_token,
                             std::optional<std::string_view> header_token) {
  if (!current) return InitAuth::ok;
  if (body_token && constant_time_equal(*body_token, *current)) return InitAuth::ok;
  if (header_token && constant_time_equal(*header_token, *current)) return InitAuth::ok;
  return body_token ? InitAuth::mismatch : InitAuth::reset_not_authorized;
}

std::string_view init_auth_message(InitAuth auth) {
  switch (auth) {
    case InitAuth::ok: return "";
    case InitAuth::mismatch: return "access token validation failed";
    case InitAuth::reset_not_authorized: return "access token reset not authorized";
  }
  return "";
}

InitOutcome apply_init(SandboxState& state, InitRequest req) {
  InitOutcome out;
  if (req.timestamp_ns) {
    if (state.last_init_time_ns && *req.timestamp_ns < *state.last_init_time_ns) return out;
    state.last_init_time_ns = req.timestamp_ns;
  }
  out.applied = true;
  if (req.env_vars) state.user_env = std::move(*req.env_vars);
  state.access_token = std::move(req.access_token);  // absent → cleared (validation allowed it)
  if (req.default_user && !req.default_user->empty()) state.default_user = std::move(*req.default_user);
  if (req.default_workdir && !req.default_workdir->empty()) state.default_workdir = std::move(*req.default_workdir);
  // Orchestrator-only fields that need the E2B infrastructure (events host, NFS, CA store).
  if (req.hyperloop_ip) out.ignored.emplace_back("hyperloopIP");
  if (req.ca_bundle) out.ignored.emplace_back("caBundle");
  if (req.volume_mounts) out.ignored.emplace_back("volumeMounts");
  if (req.lifecycle_id) out.ignored.emplace_back("lifecycleID");
  return out;
}

bool clock_needs_setting(std::int64_t local_ns, std::int64_t timestamp_ns) {
  constexpr std::int64_t kBehind = 50'000'000;    // 50 ms
  constexpr std::int64_t kAhead = 5'000'000'000;  // 5 s
  // In 128 bits: a saturated timestamp (a year outside 1678..2262) must not overflow (found by
  // fuzzing /init).
  const __int128 local = local_ns, ts = timestamp_ns;
  return local < ts - kBehind || local > ts + kAhead;
}

}  // namespace envd
