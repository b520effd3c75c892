#include "envd/init.h"

#include <limits>
#include <nlohmann/json.hpp>

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

struct RawMember {
  std::string key;         // decoded
  std::string_view value;  // raw JSON text
};

// The members of a top-level object in document order, raw values kept (envd's token check looks
// at the raw bytes). `text` must already be known to be a valid JSON object.
std::vector<RawMember> object_members(std::string_view text) {
  std::vector<RawMember> out;
  std::size_t i = skip_ws(text, 0) + 1;  // past '{'
  for (;;) {
    i = skip_ws(text, i);
    if (i >= text.size() || text[i] == '}') break;
    std::size_t key_end = skip_string(text, i);
    std::string key = json::parse(text.substr(i, key_end - i)).get<std::string>();
    i = skip_ws(text, key_end) + 1;  // past ':'
    i = skip_ws(text, i);
    std::size_t value_end = skip_value(text, i);
    out.push_back({std::move(key), text.substr(i, value_end - i)});
    i = skip_ws(text, value_end);
    if (i < text.size() && text[i] == ',') ++i;
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

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

// A string-or-null member. Returns false on a type error.
bool get_optional_string(const json& v, std::optional<std::string>& out) {
  if (v.is_null()) return true;
  if (!v.is_string()) return false;
  out = v.get<std::string>();
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

std::optional<InitRequest> parse_init_request(std::string_view body, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<InitRequest> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  InitRequest req;
  if (skip_ws(body, 0) == body.size()) return req;  // no body: no fields
  if (!json::accept(body)) return fail("invalid JSON");
  char first = body[skip_ws(body, 0)];
  if (first == 'n') return req;  // top-level null: nothing to decode (as Go)
  if (first != '{') return fail("the body is not a JSON object");

  // Go's encoding/json: each member is matched to a field by exact name, else case-insensitively;
  // unknown members are ignored; a later member overwrites an earlier one.
  for (const auto& m : object_members(body)) {
    auto is = [&](std::string_view name) { return iequals(m.key, name); };
    if (is("accessToken")) {
      // envd's SecureToken.UnmarshalJSON looks at the raw bytes: a string without escapes, non-empty.
      if (m.value == "null") {
        req.access_token.reset();
        continue;
      }
      if (m.value.size() < 2 || m.value.front() != '"' || m.value.back() != '"') {
        return fail("accessToken: invalid secure token JSON string");
      }
      std::string_view content = m.value.substr(1, m.value.size() - 2);
      if (content.find('\\') != std::string_view::npos) {
        return fail("accessToken: invalid secure token: unexpected escape sequence");
      }
      if (content.empty()) return fail("accessToken: empty token not allowed");
      req.access_token = std::string(content);
      continue;
    }
    json v = json::parse(m.value);
    if (is("envVars")) {
      if (v.is_null()) {
        req.env_vars.reset();
        continue;
      }
      if (!v.is_object()) return fail("envVars: not an object");
      std::map<std::string, std::string> env;
      for (auto& [k, val] : v.items()) {
        if (val.is_null()) {
          env[k];
        } else if (val.is_string()) {
          env[k] = val.get<std::string>();
        } else {
          return fail("envVars: value of " + k + " is not a string");
        }
      }
      req.env_vars = std::move(env);
    } else if (is("timestamp")) {
      if (v.is_null()) continue;  // time.Time ignores null
      if (!v.is_string()) return fail("timestamp: not a string");
      auto ts = parse_rfc3339(v.get<std::string>());
      if (!ts) return fail("timestamp: not RFC 3339");
      req.timestamp_ns = *ts;
    } else if (is("defaultUser")) {
      if (!get_optional_string(v, req.default_user)) return fail("defaultUser: not a string");
    } else if (is("defaultWorkdir")) {
      if (!get_optional_string(v, req.default_workdir)) return fail("defaultWorkdir: not a string");
    } else if (is("hyperloopIP")) {
      if (!get_optional_string(v, req.hyperloop_ip)) return fail("hyperloopIP: not a string");
    } else if (is("caBundle")) {
      if (!get_optional_string(v, req.ca_bundle)) return fail("caBundle: not a string");
    } else if (is("lifecycleID")) {
      if (!get_optional_string(v, req.lifecycle_id)) return fail("lifecycleID: not a string");
    } else if (is("volumeMounts")) {
      if (v.is_null()) {
        req.volume_mounts.reset();
        continue;
      }
      if (!v.is_array()) return fail("volumeMounts: not an array");
      std::vector<VolumeMount> mounts;
      for (const auto& item : v) {
        VolumeMount vm;
        if (!item.is_object() && !item.is_null()) return fail("volumeMounts: item is not an object");
        if (item.is_object()) {
          for (auto& [k, val] : item.items()) {
            std::optional<std::string> s;
            if ((iequals(k, "nfs_target") || iequals(k, "path")) && !get_optional_string(val, s)) {
              return fail("volumeMounts: " + k + " is not a string");
            }
            if (iequals(k, "nfs_target") && s) vm.nfs_target = *s;
            if (iequals(k, "path") && s) vm.path = *s;
          }
        }
        mounts.push_back(std::move(vm));
      }
      req.volume_mounts = std::move(mounts);
    }
  }
  return req;
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
