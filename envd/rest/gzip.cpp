#include "envd/rest/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace envd::rest {

struct GzipInflater::State {
  z_stream zs{};
  gz_header head{};
};

GzipInflater::GzipInflater() : s_(std::make_unique<State>()) {
  if (inflateInit2(&s_->zs, 16 + MAX_WBITS) != Z_OK) {
    error_ = "gzip: cannot initialise inflater";
    return;
  }
  inflateGetHeader(&s_->zs, &s_->head);
}

GzipInflater::~GzipInflater() { inflateEnd(&s_->zs); }

GzipStep GzipInflater::inflate(std::span<const char> in, std::span<char> out) {
  GzipStep step;
  if (failed()) return step;
  while (true) {
    if (between_members_) {
      if (step.consumed == in.size()) return step;
      // A new member begins: reset keeps the gzip-only window bits.
      inflateReset(&s_->zs);
      std::memset(&s_->head, 0, sizeof s_->head);
      inflateGetHeader(&s_->zs, &s_->head);
      between_members_ = false;
    }
    auto& zs = s_->zs;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + step.consumed));
    zs.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size() - step.consumed, 1u << 30));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + step.produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - step.produced, 1u << 30));
    uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    if (avail_in > 0) any_input_ = true;
    int rc = ::inflate(&zs, Z_NO_FLUSH);
    std::size_t used = avail_in - zs.avail_in, made = avail_out - zs.avail_out;
    step.consumed += used;
    step.produced += made;
    total_in_ += used;
    if (s_->head.done == 1) first_header_done_ = true;
    if (rc == Z_STREAM_END) {
      between_members_ = true;
      continue;
    }
    if (rc == Z_BUF_ERROR) return step;  // no progress possible: needs input or output room
    if (rc != Z_OK) {
      std::string_view msg = zs.msg ? zs.msg : "";
      if (rc == Z_MEM_ERROR) {
        error_ = "gzip: out of memory";
      } else if (msg == "incorrect data check" || msg == "incorrect length check") {
        error_ = "gzip: invalid checksum";
      } else if (s_->head.done != 1) {
        error_ = "gzip: invalid header";
      } else {
        error_ = "flate: corrupt input before offset " + std::to_string(total_in_);
      }
      return step;
    }
    if (used == 0 && made == 0) return step;
    if (step.produced == out.size() || step.consumed == in.size()) return step;
  }
}

bool GzipInflater::finish() {
  if (failed()) return false;
  if (between_members_) return true;
  error_ = any_input_ ? "unexpected EOF" : "EOF";
  return false;
}

struct GzipDeflater::State {
  z_stream zs{};
  bool ok = false;
};

GzipDeflater::GzipDeflater(int level) : s_(std::make_unique<State>()) {
  s_->ok = deflateInit2(&s_->zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

GzipDeflater::~GzipDeflater() {
  if (s_->ok) deflateEnd(&s_->zs);
}

GzipStep GzipDeflater::deflate(std::span<const char> in, std::span<char> out, Flush flush) {
  GzipStep step;
  if (!s_->ok) return step;
  auto& zs = s_->zs;
  int mode = flush == Flush::finish ? Z_FINISH : flush == Flush::sync ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  flushed_ = false;
  while (true) {
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + step.consumed));
    zs.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size() - step.consumed, 1u << 30));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + step.produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - step.produced, 1u << 30));
    uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    int rc = ::deflate(&zs, step.consumed + avail_in == in.size() ? mode : Z_NO_FLUSH);
    step.consumed += avail_in - zs.avail_in;
    step.produced += avail_out - zs.avail_out;
    if (rc == Z_STREAM_END) {
      flushed_ = true;
      return step;
    }
    bool all_in = step.consumed == in.size();
    if (all_in && mode == Z_SYNC_FLUSH && zs.avail_out > 0) {
      flushed_ = true;  // zlib leaves room only once the flush is complete
      return step;
    }
    if (all_in && mode == Z_NO_FLUSH) return step;
    if (step.produced == out.size() || rc == Z_BUF_ERROR) return step;
  }
}

std::string gzip_compress(std::string_view data, int level) {
  GzipDeflater d(level);
  std::string out;
  std::size_t used = 0;
  char chunk[64 * 1024];
  while (!d.done_flushing()) {
    auto st =
        d.deflate(std::span<const char>(data.data() + used, data.size() - used), chunk, GzipDeflater::Flush::finish);
    used += st.consumed;
    out.append(chunk, st.produced);
    if (st.consumed == 0 && st.produced == 0 && !d.done_flushing()) break;  // cannot happen with room
  }
  return out;
}

std::string gzip_decompress(std::string_view data, std::size_t limit, std::string& out) {
  GzipInflater inf;
  out.clear();
  char chunk[64 * 1024];
  std::size_t used = 0;
  while (true) {
    auto st = inf.inflate(std::span<const char>(data.data() + used, data.size() - used), chunk);
    used += st.consumed;
    out.append(chunk, st.produced);
    if (inf.failed()) return inf.error();
    if (out.size() > limit) return "too large";
    if (st.consumed == 0 && st.produced == 0) break;
  }
  if (!inf.finish()) return inf.error();
  return "";
}

}  // namespace envd::rest
