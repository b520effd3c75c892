#include "fs/etag.h"

#include <cstdio>

namespace envd::fs {

void EtagGenerations::bump(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  Key key{dev, ino};
  std::uint64_t gen = ++counter_;
  auto [it, inserted] = by_key_.try_emplace(key, gen);
  if (!inserted) {
    by_generation_.erase(it->second);
    it->second = gen;
  }
  by_generation_.emplace(gen, key);
  while (by_key_.size() > capacity_) {
    auto oldest = by_generation_.begin();
    by_key_.erase(oldest->second);
    by_generation_.erase(oldest);
  }
}

void EtagGenerations::set_capacity(std::size_t capacity) {
  std::lock_guard lock(mu_);
  capacity_ = capacity == 0 ? 1 : capacity;
  while (by_key_.size() > capacity_) {
    auto oldest = by_generation_.begin();
    by_key_.erase(oldest->second);
    by_generation_.erase(oldest);
  }
}

std::uint64_t EtagGenerations::get(dev_t dev, ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(Key{dev, ino});
  return it == by_key_.end() ? 0 : it->second;
}

std::size_t EtagGenerations::size() const {
  std::lock_guard lock(mu_);
  return by_key_.size();
}

EtagGenerations& etag_generations() {
  static EtagGenerations table;
  return table;
}

namespace {
std::int64_t ns(const struct timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::int64_t>(ts.tv_nsec);
}
}  // namespace

std::string strong_etag(const struct stat& st, std::uint64_t generation) {
  char buf[128];
  int n = std::snprintf(buf, sizeof buf, "\"%llx-%llx-%llx-%llx", static_cast<unsigned long long>(st.st_ino),
                        static_cast<unsigned long long>(st.st_size), static_cast<unsigned long long>(ns(st.st_mtim)),
                        static_cast<unsigned long long>(ns(st.st_ctim)));
  std::string out(buf, static_cast<std::size_t>(n));
  if (generation != 0) {
    n = std::snprintf(buf, sizeof buf, "-%llx", static_cast<unsigned long long>(generation));
    out.append(buf, static_cast<std::size_t>(n));
  }
  out += '"';
  return out;
}

std::string weak_gzip_etag(std::string_view strong) {
  if (strong.starts_with("W/")) strong.remove_prefix(2);
  std::string out = "W/";
  if (strong.size() >= 2 && strong.front() == '"' && strong.back() == '"') {
    out.append(strong.substr(0, strong.size() - 1));
    out += "-gz\"";
  } else {
    out += "\"-gz\"";
  }
  return out;
}

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}
std::string_view opaque(std::string_view tag) {
  if (tag.starts_with("W/")) tag.remove_prefix(2);
  return tag;
}
}  // namespace

std::size_t scan_etag(std::string_view s, std::string_view& tag) {
  std::size_t lead = 0;
  while (lead < s.size() && is_space(s[lead])) ++lead;
  std::size_t start = lead;
  if (s.substr(start).starts_with("W/")) start += 2;
  if (start >= s.size() || s[start] != '"') return 0;
  // etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
  for (std::size_t i = start + 1; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      tag = s.substr(lead, i + 1 - lead);
      return i + 1;
    }
    if (!(c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80)) return 0;
  }
  return 0;
}

bool etag_strong_match(std::string_view a, std::string_view b) { return !a.empty() && a == b && a.front() == '"'; }

bool etag_weak_match(std::string_view a, std::string_view b) { return !a.empty() && opaque(a) == opaque(b); }

namespace {
// Walks a comma-separated list of entity tags (or `*`), calling match(tag) for each; a malformed
// element stops the walk (Go's net/http does the same).
// `*` matches any current representation (none when `current` is empty: the file does not exist).
template <class F>
bool list_matches(std::string_view header, bool exists, F match) {
  std::string_view buf = header;
  for (;;) {
    buf = trim(buf);
    if (buf.empty()) return false;
    if (buf.front() == ',') {
      buf.remove_prefix(1);
      continue;
    }
    if (buf.front() == '*') return exists;
    std::string_view tag;
    std::size_t used = scan_etag(buf, tag);
    if (used == 0) return false;
    if (match(tag)) return true;
    buf.remove_prefix(used);
  }
}
}  // namespace

Cond eval_if_match(std::string_view header, std::string_view current) {
  if (trim(header).empty()) return Cond::none;
  return list_matches(header, !current.empty(), [&](std::string_view tag) { return etag_strong_match(tag, current); })
             ? Cond::match
             : Cond::no_match;
}

Cond eval_if_none_match(std::string_view header, std::string_view current) {
  if (trim(header).empty()) return Cond::none;
  return list_matches(header, !current.empty(), [&](std::string_view tag) { return etag_weak_match(tag, current); })
             ? Cond::match
             : Cond::no_match;
}

}  // namespace envd::fs
