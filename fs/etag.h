#pragma once
// Entity tags for /files (better than envd, which sends none; issue 8 "conditional writes").
//
// A strong ETag names one version of a file's bytes: inode, size, mtime and ctime in nanoseconds,
// plus a per-inode generation that envd bumps on each of its own writes. The generation covers
// writes that leave size and timestamps unchanged (coarse timestamp granularity: two writes in
// the same kernel tick). Writers outside envd are seen only through size and timestamps.
// A gzip response carries the weak form `W/"…-gz"`: its bytes are not those of the file.
//
// Also here: If-Match / If-None-Match list matching as RFC 9110 §13.1.1–2 (and Go's
// net/http) read it, shared by downloads (304) and conditional uploads (412).
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace envd::fs {

// Per-inode write generations, keyed by device and inode. Thread-safe (uploads bump it from pool
// threads). Bounded: past `capacity` entries the one bumped longest ago is forgotten, and its
// generation reads 0 again; by then its ctime has moved past any timestamp tick, so no ETag
// handed out earlier comes back.
class EtagGenerations {
 public:
  explicit EtagGenerations(std::size_t capacity = 4096) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Call after envd wrote to (or truncated, or replaced the contents of) the file.
  void bump(dev_t dev, ino_t ino);
  std::uint64_t get(dev_t dev, ino_t ino) const;
  std::size_t size() const;
  // Lowers or raises the bound (--etag-generations); the oldest entries go first.
  void set_capacity(std::size_t capacity);

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.ino) * 0x9E3779B97F4A7C15ull ^
                                        static_cast<std::uint64_t>(k.dev));
    }
  };

  mutable std::mutex mu_;
  std::size_t capacity_;
  std::uint64_t counter_ = 0;  // generations are unique and increasing
  std::unordered_map<Key, std::uint64_t, KeyHash> by_key_;
  std::map<std::uint64_t, Key> by_generation_;  // oldest first, for eviction
};

// The process-wide table (downloads read it, uploads bump it).
EtagGenerations& etag_generations();

// `"<ino>-<size>-<mtime ns>-<ctime ns>[-<generation>]"` (hex fields), quotes included.
std::string strong_etag(const struct stat& st, std::uint64_t generation);
// `W/"…-gz"` for a gzip-encoded response of the same version.
std::string weak_gzip_etag(std::string_view strong);

// One entity tag at the start of `s` (after optional whitespace): returns its length in bytes
// of `s` consumed, with the tag itself (W/ prefix kept, quotes kept) in `tag`; 0 if there is no
// well-formed tag there.
std::size_t scan_etag(std::string_view s, std::string_view& tag);

// Strong comparison: both strong and byte-identical. Weak: the opaque parts equal.
bool etag_strong_match(std::string_view a, std::string_view b);
bool etag_weak_match(std::string_view a, std::string_view b);

enum class Cond { none, match, no_match };

// `current` is the file's strong ETag, empty when it does not exist (then `*` does not match).
// If-Match: `*` or any listed tag strongly matching `current` → match; a malformed list → no_match;
// absent/empty header → none.
Cond eval_if_match(std::string_view header, std::string_view current);
// If-None-Match: `*` or any listed tag weakly matching `current` → match (the caller answers
// 304/412); otherwise no_match; absent/empty → none.
Cond eval_if_none_match(std::string_view header, std::string_view current);

}  // namespace envd::fs
