#include "envd/rest/tar.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace envd::rest {

namespace {

// ustar field offsets and widths.
constexpr std::size_t kName = 0, kNameLen = 100;
constexpr std::size_t kMode = 100, kUid = 108, kGid = 116, kIdLen = 8;
constexpr std::size_t kSize = 124, kMtime = 136, kNumLen = 12;
constexpr std::size_t kChksum = 148, kChksumLen = 8;
constexpr std::size_t kType = 156;
constexpr std::size_t kLink = 157, kLinkLen = 100;
constexpr std::size_t kMagic = 257;
constexpr std::size_t kUname = 265, kGname = 297, kOwnerLen = 32;
constexpr std::size_t kDevMajor = 329, kDevMinor = 337;
constexpr std::size_t kPrefix = 345, kPrefixLen = 155;

// Largest value an octal field of `width` bytes holds (width - 1 digits and a NUL).
constexpr std::uint64_t octal_max(std::size_t width) { return (std::uint64_t{1} << (3 * (width - 1))) - 1; }

void put_octal(char* field, std::size_t width, std::uint64_t v) {
  // width - 1 zero-padded digits, then NUL.
  for (std::size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  field[width - 1] = '\0';
}

void put_string(char* field, std::size_t width, std::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string decimal(std::uint64_t v) { return std::to_string(v); }

// One pax record: "<len> <key>=<value>\n", where <len> counts the whole record, itself included.
void add_record(std::string& out, std::string_view key, std::string_view value) {
  const std::size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  std::size_t len = body + 1;
  while (decimal(len).size() + body != len) len = decimal(len).size() + body;
  out += decimal(len);
  out += ' ';
  out += key;
  out += '=';
  out += value;
  out += '\n';
}

std::string block_header(std::string_view name, char type, const TarEntry& e, std::uint64_t size) {
  std::string b(kTarBlock, '\0');
  char* p = b.data();
  put_string(p + kName, kNameLen, name);
  put_octal(p + kMode, kIdLen, e.mode & 07777);
  put_octal(p + kUid, kIdLen, e.uid <= octal_max(kIdLen) ? e.uid : 0);
  put_octal(p + kGid, kIdLen, e.gid <= octal_max(kIdLen) ? e.gid : 0);
  put_octal(p + kSize, kNumLen, size <= octal_max(kNumLen) ? size : 0);
  const bool mtime_fits = e.mtime >= 0 && static_cast<std::uint64_t>(e.mtime) <= octal_max(kNumLen);
  put_octal(p + kMtime, kNumLen, mtime_fits ? static_cast<std::uint64_t>(e.mtime) : 0);
  p[kType] = type;
  if (e.linkname.size() <= kLinkLen) put_string(p + kLink, kLinkLen, e.linkname);
  std::memcpy(p + kMagic,
              "ustar\0"
              "00",
              8);
  if (e.uname.size() < kOwnerLen) put_string(p + kUname, kOwnerLen, e.uname);
  if (e.gname.size() < kOwnerLen) put_string(p + kGname, kOwnerLen, e.gname);
  put_octal(p + kDevMajor, kIdLen, e.dev_major <= octal_max(kIdLen) ? e.dev_major : 0);
  put_octal(p + kDevMinor, kIdLen, e.dev_minor <= octal_max(kIdLen) ? e.dev_minor : 0);
  std::memset(p + kChksum, ' ', kChksumLen);
  std::uint32_t sum = tar_checksum(b);
  // Six octal digits, NUL, space (what every tar writes).
  for (int i = 5; i >= 0; --i) {
    p[kChksum + i] = static_cast<char>('0' + (sum & 7));
    sum >>= 3;
  }
  p[kChksum + 6] = '\0';
  p[kChksum + 7] = ' ';
  return b;
}

bool all_zero(const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

// A NUL-terminated (or full-width) string field.
std::string_view field_string(const char* p, std::size_t width) {
  std::size_t n = 0;
  while (n < width && p[n] != '\0') ++n;
  return {p, n};
}

// A numeric field: octal digits (leading spaces/NULs allowed, ended by space or NUL), or GNU's
// base-256 (first byte's high bit set; negative values refused).
bool parse_number(const char* p, std::size_t width, std::uint64_t& out) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  if (u[0] & 0x80) {
    if (u[0] & 0x40) return false;  // negative
    std::uint64_t v = u[0] & 0x3f;
    for (std::size_t i = 1; i < width; ++i) {
      if (v > (UINT64_MAX >> 8)) return false;
      v = (v << 8) | u[i];
    }
    out = v;
    return true;
  }
  std::size_t i = 0;
  while (i < width && (p[i] == ' ' || p[i] == '\0')) ++i;
  if (i == width) {
    out = 0;  // an empty field
    return true;
  }
  std::uint64_t v = 0;
  for (; i < width && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v > (UINT64_MAX >> 3)) return false;
    v = (v << 3) | static_cast<std::uint64_t>(p[i] - '0');
  }
  for (; i < width; ++i)
    if (p[i] != ' ' && p[i] != '\0') return false;
  out = v;
  return true;
}

bool parse_decimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A pax time: seconds, optionally negative, optionally with a fraction.
bool parse_pax_time(std::string_view s, std::int64_t& sec, std::uint32_t& nsec) {
  bool neg = !s.empty() && s.front() == '-';
  if (neg) s.remove_prefix(1);
  auto dot = s.find('.');
  std::uint64_t whole = 0;
  if (!parse_decimal(s.substr(0, dot), whole) || whole > static_cast<std::uint64_t>(INT64_MAX)) return false;
  nsec = 0;
  if (dot != std::string_view::npos) {
    std::string_view frac = s.substr(dot + 1);
    std::uint32_t scale = 100000000;
    for (char c : frac) {
      if (c < '0' || c > '9') return false;
      nsec += static_cast<std::uint32_t>(c - '0') * scale;
      scale /= 10;
    }
  }
  sec = neg ? -static_cast<std::int64_t>(whole) : static_cast<std::int64_t>(whole);
  if (neg && nsec) {  // -1.5 is 1.5 s before the epoch
    sec -= 1;
    nsec = 1000000000 - nsec;
  }
  return true;
}

TarType type_of(char t) {
  switch (t) {
    case '0':
    case '\0':
    case '7': return TarType::regular;
    case '1': return TarType::hard_link;
    case '2': return TarType::symlink;
    case '3': return TarType::char_device;
    case '4': return TarType::block_device;
    case '5': return TarType::directory;
    case '6': return TarType::fifo;
    default: return TarType::other;
  }
}

// Types whose header is the whole entry (no data follows whatever the size field says), as
// Go's archive/tar and GNU tar read them.
bool header_only(char t) { return t >= '1' && t <= '6'; }

}  // namespace

std::uint32_t tar_checksum(std::string_view block) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < kTarBlock && i < block.size(); ++i) {
    unsigned char c = (i >= kChksum && i < kChksum + kChksumLen) ? ' ' : static_cast<unsigned char>(block[i]);
    sum += c;
  }
  return sum;
}

std::string tar_headers(const TarEntry& e) {
  std::string name = e.name;
  if (e.type == TarType::directory && (name.empty() || name.back() != '/')) name += '/';
  const std::uint64_t size = e.type == TarType::regular ? e.size : 0;
  std::string pax;
  if (name.size() > kNameLen) add_record(pax, "path", name);
  if (e.linkname.size() > kLinkLen) add_record(pax, "linkpath", e.linkname);
  if (size > octal_max(kNumLen)) add_record(pax, "size", decimal(size));
  if (e.uid > octal_max(kIdLen)) add_record(pax, "uid", decimal(e.uid));
  if (e.gid > octal_max(kIdLen)) add_record(pax, "gid", decimal(e.gid));
  if (e.mtime < 0 || static_cast<std::uint64_t>(e.mtime) > octal_max(kNumLen))
    add_record(pax, "mtime", std::to_string(e.mtime));
  if (e.uname.size() >= kOwnerLen) add_record(pax, "uname", e.uname);
  if (e.gname.size() >= kOwnerLen) add_record(pax, "gname", e.gname);
  for (const auto& [k, v] : e.xattrs) add_record(pax, "SCHILY.xattr." + k, v);
  for (const auto& [k, v] : e.other_pax) add_record(pax, k, v);

  std::string out;
  if (!pax.empty()) {
    TarEntry ph;
    ph.mode = 0644;
    ph.mtime = e.mtime >= 0 && static_cast<std::uint64_t>(e.mtime) <= octal_max(kNumLen) ? e.mtime : 0;
    out += block_header("././@PaxHeader", 'x', ph, pax.size());
    out += pax;
    out += tar_padding(pax.size());
  }
  char type = static_cast<char>(e.type == TarType::other ? TarType::regular : e.type);
  out += block_header(name.size() > kNameLen ? std::string_view(name).substr(0, kNameLen) : name, type, e, size);
  return out;
}

std::string tar_padding(std::uint64_t size) {
  return std::string(static_cast<std::size_t>((kTarBlock - size % kTarBlock) % kTarBlock), '\0');
}

std::string tar_end() { return std::string(2 * kTarBlock, '\0'); }

// ---------------------------------------------------------------- reader

TarReader::Event TarReader::fail(int status, std::string message) {
  state_ = State::failed;
  error_status_ = status;
  error_ = std::move(message);
  return Event::error;
}

TarReader::Event TarReader::finish() {
  if (state_ == State::failed) return Event::error;
  if (state_ == State::end) return Event::end;
  return fail(400, "unexpected end of archive at offset " + std::to_string(offset_) + " (truncated)");
}

TarReader::Event TarReader::next(std::string_view& in) {
  data_ = {};
  for (;;) {
    switch (state_) {
      case State::failed: return Event::error;
      case State::end:
        offset_ += in.size();
        in = {};
        return Event::end;
      case State::data: {
        if (remaining_ == 0) {
          state_ = State::padding;
          continue;
        }
        if (in.empty()) return Event::need_more;
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        data_ = in.substr(0, n);
        in.remove_prefix(n);
        remaining_ -= n;
        offset_ += n;
        return Event::data;
      }
      case State::padding:
      case State::record_padding: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pad_, in.size()));
        in.remove_prefix(n);
        pad_ -= n;
        offset_ += n;
        if (pad_ > 0) return Event::need_more;
        state_ = State::header;
        continue;
      }
      case State::record: {
        if (in.empty() && remaining_ > 0) return Event::need_more;
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        record_.append(in.data(), n);
        in.remove_prefix(n);
        remaining_ -= n;
        offset_ += n;
        if (remaining_ > 0) return Event::need_more;
        // The whole record is here.
        switch (record_type_) {
          case 'x':
            if (!apply_pax(record_, false)) return Event::error;
            break;
          case 'g':
            if (!apply_pax(record_, true)) return Event::error;
            break;
          case 'L':
            long_name_ = std::string(field_string(record_.data(), record_.size()));
            have_long_name_ = true;
            break;
          case 'K':
            long_link_ = std::string(field_string(record_.data(), record_.size()));
            have_long_link_ = true;
            break;
          default: break;
        }
        record_.clear();
        record_.shrink_to_fit();
        state_ = State::record_padding;
        continue;
      }
      case State::header: {
        if (in.empty()) return Event::need_more;
        std::size_t n = std::min(kTarBlock - block_fill_, in.size());
        std::memcpy(block_ + block_fill_, in.data(), n);
        block_fill_ += n;
        in.remove_prefix(n);
        offset_ += n;
        if (block_fill_ < kTarBlock) return Event::need_more;
        block_fill_ = 0;
        Event ev = parse_header();
        if (ev == Event::need_more) continue;  // a record header: read the record
        return ev;
      }
    }
  }
}

TarReader::Event TarReader::parse_header() {
  const std::uint64_t at = offset_ - kTarBlock;
  if (all_zero(block_, kTarBlock)) {
    // The end marker is two zero blocks; one is enough to know (GNU tar reads on with a warning).
    state_ = State::end;
    return Event::end;
  }
  std::uint64_t stored = 0;
  if (!parse_number(block_ + kChksum, kChksumLen, stored))
    return fail(400,
                "invalid tar header at offset " + std::to_string(at) + ": bad checksum field (not a tar archive?)");
  std::uint32_t unsigned_sum = tar_checksum({block_, kTarBlock});
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i)
    signed_sum += (i >= kChksum && i < kChksum + kChksumLen) ? ' ' : static_cast<signed char>(block_[i]);
  if (stored != unsigned_sum && static_cast<std::int64_t>(stored) != signed_sum)
    return fail(400, "invalid tar header at offset " + std::to_string(at) + ": checksum mismatch (not a tar archive?)");

  const char t = block_[kType];
  std::uint64_t size = 0;
  if (!parse_number(block_ + kSize, kNumLen, size))
    return fail(400, "invalid tar header at offset " + std::to_string(at) + ": bad size field");

  if (t == 'x' || t == 'g' || t == 'L' || t == 'K') {
    if (size > limits_.max_header_bytes)
      return fail(413, "tar " + std::string(t == 'x' || t == 'g' ? "pax header" : "GNU long-name record") + " of " +
                           std::to_string(size) + " bytes at offset " + std::to_string(at) +
                           " is larger than the limit of " + std::to_string(limits_.max_header_bytes) + " bytes");
    record_type_ = t;
    record_.clear();
    record_.reserve(static_cast<std::size_t>(size));
    remaining_ = size;
    pad_ = (kTarBlock - size % kTarBlock) % kTarBlock;
    state_ = State::record;
    return Event::need_more;
  }

  TarEntry e;
  e.raw_type = t;
  e.type = type_of(t);
  const bool ustar = std::memcmp(block_ + kMagic, "ustar\0", 6) == 0;
  std::string_view name = field_string(block_ + kName, kNameLen);
  std::string_view prefix = ustar ? field_string(block_ + kPrefix, kPrefixLen) : std::string_view();
  if (!prefix.empty()) {
    e.name.assign(prefix);
    e.name += '/';
  }
  e.name += name;
  e.linkname = std::string(field_string(block_ + kLink, kLinkLen));
  std::uint64_t v = 0;
  auto num = [&](std::size_t off, std::size_t width, const char* what) -> bool {
    if (parse_number(block_ + off, width, v)) return true;
    fail(400, "invalid tar header at offset " + std::to_string(at) + ": bad " + what + " field");
    return false;
  };
  if (!num(kMode, kIdLen, "mode")) return Event::error;
  e.mode = static_cast<std::uint32_t>(v & 07777);
  if (!num(kUid, kIdLen, "uid")) return Event::error;
  e.uid = v;
  if (!num(kGid, kIdLen, "gid")) return Event::error;
  e.gid = v;
  if (!num(kMtime, kNumLen, "mtime")) return Event::error;
  e.mtime = static_cast<std::int64_t>(std::min<std::uint64_t>(v, INT64_MAX));
  if (ustar || std::memcmp(block_ + kMagic, "ustar ", 6) == 0) {
    e.uname = std::string(field_string(block_ + kUname, kOwnerLen));
    e.gname = std::string(field_string(block_ + kGname, kOwnerLen));
    if (t == '3' || t == '4') {
      if (!num(kDevMajor, kIdLen, "devmajor")) return Event::error;
      e.dev_major = static_cast<std::uint32_t>(v);
      if (!num(kDevMinor, kIdLen, "devminor")) return Event::error;
      e.dev_minor = static_cast<std::uint32_t>(v);
    }
  }
  e.size = size;

  // Records before this header: global pax first, then the entry's own, then GNU long names.
  auto apply = [&](const std::map<std::string, std::string>& m) -> bool {
    for (const auto& [k, val] : m) {
      if (k == "path") {
        e.name = val;
      } else if (k == "linkpath") {
        e.linkname = val;
      } else if (k == "size" || k == "uid" || k == "gid") {
        std::uint64_t n = 0;
        if (!parse_decimal(val, n)) {
          fail(400, "invalid pax record " + k + "=" + val + " at offset " + std::to_string(at));
          return false;
        }
        (k == "size" ? e.size : k == "uid" ? e.uid : e.gid) = n;
      } else if (k == "mtime") {
        if (!parse_pax_time(val, e.mtime, e.mtime_nsec)) {
          fail(400, "invalid pax record mtime=" + val + " at offset " + std::to_string(at));
          return false;
        }
      } else if (k == "uname") {
        e.uname = val;
      } else if (k == "gname") {
        e.gname = val;
      } else if (k.rfind("SCHILY.xattr.", 0) == 0) {
        e.xattrs[k.substr(13)] = val;
      } else if (k == "atime" || k == "ctime" || k == "comment" || k == "charset" || k == "hdrcharset") {
        // informational
      } else {
        e.other_pax[k] = val;
      }
    }
    return true;
  };
  if (!apply(global_pax_) || !apply(pax_)) return Event::error;
  if (have_long_name_ && !pax_.count("path")) e.name = long_name_;
  if (have_long_link_ && !pax_.count("linkpath")) e.linkname = long_link_;
  pax_.clear();
  long_name_.clear();
  long_link_.clear();
  have_long_name_ = have_long_link_ = false;

  if (e.name.size() > limits_.max_name_bytes || e.linkname.size() > limits_.max_name_bytes)
    return fail(400, "tar entry name or link target of " + std::to_string(std::max(e.name.size(), e.linkname.size())) +
                         " bytes at offset " + std::to_string(at) + " is longer than the limit of " +
                         std::to_string(limits_.max_name_bytes) + " bytes");
  if (e.name.empty()) return fail(400, "invalid tar header at offset " + std::to_string(at) + ": empty name");
  if (e.name.find('\0') != std::string::npos || e.linkname.find('\0') != std::string::npos)
    return fail(400, "invalid tar header at offset " + std::to_string(at) + ": NUL byte in a name");

  if (header_only(t)) e.size = 0;
  remaining_ = e.size;
  pad_ = (kTarBlock - e.size % kTarBlock) % kTarBlock;
  state_ = State::data;
  entry_ = std::move(e);
  ++entries_;
  return Event::entry;
}

bool TarReader::apply_pax(std::string_view records, bool global) {
  auto& target = global ? global_pax_ : pax_;
  while (!records.empty()) {
    auto sp = records.find(' ');
    std::uint64_t len = 0;
    if (sp == std::string_view::npos || !parse_decimal(records.substr(0, sp), len) || len <= sp + 1 ||
        len > records.size() || records[len - 1] != '\n') {
      fail(400, "invalid pax record at offset " + std::to_string(offset_));
      return false;
    }
    std::string_view rec = records.substr(sp + 1, len - sp - 2);
    auto eq = rec.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      fail(400, "invalid pax record at offset " + std::to_string(offset_));
      return false;
    }
    std::string key(rec.substr(0, eq));
    std::string_view value = rec.substr(eq + 1);
    if (value.empty())
      target.erase(key);  // an empty value unsets the key (pax)
    else
      target[key] = std::string(value);
    records.remove_prefix(len);
  }
  if (global) {
    // Global records accumulate over the archive: their total is held to the same bound.
    std::size_t total = 0;
    for (const auto& [k, v] : global_pax_) total += k.size() + v.size();
    if (total > limits_.max_header_bytes) {
      fail(413, "tar global pax headers add up to more than the limit of " + std::to_string(limits_.max_header_bytes) +
                    " bytes");
      return false;
    }
  }
  return true;
}

}  // namespace envd::rest
