#pragma once
// tar archives (POSIX ustar + pax extended headers), both ways, in bounded memory: the directory
// archives of /files (README "Directories as archives"). Plain code over string_view, no I/O.
//
// Writer: tar_headers() gives the header block(s) of one entry: a pax 'x' header first when a
// field does not fit ustar (a name or link target over 100 bytes, a size of 8 GiB or more, ids or
// times out of octal range, xattrs as SCHILY.xattr.<name> records, which GNU tar --xattrs reads),
// then the ustar block. The caller sends the entry's data, then tar_padding(size), and ends the
// archive with tar_end().
//
// Reader: a push parser. next(in) consumes from `in` and says what it found: an entry header
// (pax 'x'/'g' and GNU 'L'/'K' long-name records folded in), a piece of the entry's data, the
// end of the archive (a zero block), need_more, or an error with the HTTP status it deserves
// (400 malformed, 413 over a bound). Memory: one 512-byte block, plus a pax/GNU record while it
// is read, bounded by `max_header_bytes`.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace envd::rest {

enum class TarType : char {
  regular = '0',
  hard_link = '1',
  symlink = '2',
  char_device = '3',
  block_device = '4',
  directory = '5',
  fifo = '6',
  other = '?',  // sparse files, vendor types: the reader reports them, the caller refuses them
};

struct TarEntry {
  std::string name;  // as stored (directories usually end in '/')
  TarType type = TarType::regular;
  char raw_type = '0';  // the typeflag byte as read
  std::uint32_t mode = 0;
  std::uint64_t uid = 0, gid = 0;
  std::int64_t mtime = 0;        // seconds
  std::uint32_t mtime_nsec = 0;  // from a pax mtime with a fraction
  std::uint64_t size = 0;        // bytes of data that follow (regular files only, when writing)
  std::string linkname;          // symlink target / hard link name
  std::string uname, gname;
  std::uint32_t dev_major = 0, dev_minor = 0;
  std::map<std::string, std::string> xattrs;     // full names ("user.e2b.k") from SCHILY.xattr.*
  std::map<std::string, std::string> other_pax;  // pax keys this code does not interpret (e.g. SCHILY.acl.*)
};

// ---- writer ----

inline constexpr std::size_t kTarBlock = 512;

// The header block(s) of `e` (a multiple of 512 bytes). Directories get a trailing '/'.
std::string tar_headers(const TarEntry& e);
// Zero bytes that pad `size` bytes of data to a block boundary.
std::string tar_padding(std::uint64_t size);
// The end of an archive: two zero blocks.
std::string tar_end();

// ---- reader ----

struct TarLimits {
  std::size_t max_header_bytes = 1 << 20;  // one pax or GNU long-name record
  std::size_t max_name_bytes = 4096;       // an entry's name or link target
};

class TarReader {
 public:
  enum class Event { need_more, entry, data, end, error };

  explicit TarReader(TarLimits limits = {}) : limits_(limits) {}

  // Consumes bytes of `in` (advancing it). need_more: all of `in` was used. entry: entry() is
  // the new entry; its data (size bytes; none for other types, whatever the header said) comes
  // as data events. data: data() views bytes inside `in` as it was at the call. end: the end
  // marker was read; later input is ignored. error: error() and error_status().
  Event next(std::string_view& in);
  // The input ended: `end` if the end marker was seen, else an error ("unexpected end of
  // archive").
  Event finish();

  const TarEntry& entry() const { return entry_; }
  std::string_view data() const { return data_; }
  const std::string& error() const { return error_; }
  int error_status() const { return error_status_; }
  std::uint64_t entries() const { return entries_; }
  // Bytes consumed so far (for messages).
  std::uint64_t offset() const { return offset_; }

 private:
  enum class State { header, data, padding, record, record_padding, end, failed };
  Event fail(int status, std::string message);
  Event parse_header();  // block_ is full
  bool apply_pax(std::string_view records, bool global);

  TarLimits limits_;
  State state_ = State::header;
  char block_[kTarBlock];
  std::size_t block_fill_ = 0;
  std::uint64_t remaining_ = 0;  // data bytes left, or record bytes left
  std::uint64_t pad_ = 0;
  char record_type_ = 0;  // 'x', 'g', 'L', 'K' while a record is read
  std::string record_;
  // What the records before this header said.
  std::map<std::string, std::string> pax_, global_pax_;
  std::string long_name_, long_link_;
  bool have_long_name_ = false, have_long_link_ = false;
  TarEntry entry_;
  std::string_view data_;
  std::string error_;
  int error_status_ = 400;
  std::uint64_t entries_ = 0;
  std::uint64_t offset_ = 0;
  bool zero_seen_ = false;
};

// Header checksum of a 512-byte block, with the checksum field counted as spaces.
std::uint32_t tar_checksum(std::string_view block);

}  // namespace envd::rest
