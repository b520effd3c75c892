#include "fs/files_upload.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <ctime>
#include <memory>
#include <mutex>
#include <set>

#include "envd/ascii.h"
#include "envd/blocking.h"
#include "envd/event.h"
#include "envd/http_date.h"
#include "envd/json_util.h"
#include "envd/log.h"
#include "envd/rest/gzip.h"
#include "envd/rest/multipart.h"
#include "envd/rest/query.h"
#include "envd/rest/quoted_printable.h"
#include "fs/archive.h"
#include "fs/compose.h"
#include "fs/etag.h"
#include "fs/file_writer.h"
#include "fs/files_common.h"
#include "fs/fs_ops.h"

namespace envd::fs {

namespace {

namespace asio = boost::asio;
using asio::awaitable;

std::string lower_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return http::to_lower(s);
}

// The media type of a Content-Type value: before any ';', trimmed, lowercase.
std::string media_type(std::string_view ct) { return lower_trim(ct.substr(0, ct.find(';'))); }

// Plain functions: g++ 12 rejects braced initializers of string literals inside coroutines.
http::Headers json_headers() { return {{"content-type", "application/json"}}; }
Reply text_reply(int status, std::string body) {  // Go's http.Error (query binding errors)
  return Reply{
      status, {{"content-type", "text/plain; charset=utf-8"}, {"x-content-type-options", "nosniff"}}, std::move(body)};
}

std::optional<std::uint64_t> parse_content_length(const http::RequestHead& head) {
  auto cl = head.header("content-length");
  if (!cl || cl->empty() || cl->size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : *cl) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

awaitable<void> reply_error(http::Exchange& ex, int status, std::string_view message) {
  co_await send_reply(ex, json_error(status, message));
}

// ---------------------------------------------------------------- conditions

// If-Match / If-None-Match / If-Unmodified-Since (better than envd: issue 8 "conditional writes").
struct Conditions {
  std::optional<std::string> if_match;
  std::optional<std::string> if_none_match;
  std::optional<std::int64_t> if_unmodified_since;  // unix seconds; an unparsable date is ignored
  bool any = false;

  static Conditions from(const http::RequestHead& head) {
    Conditions c;
    if (auto v = head.header("if-match")) c.if_match = std::string(*v);
    if (auto v = head.header("if-none-match")) c.if_none_match = std::string(*v);
    if (auto v = head.header("if-unmodified-since")) {
      c.any = true;
      c.if_unmodified_since = parse_http_date(*v);
    }
    c.any = c.any || c.if_match || c.if_none_match;
    return c;
  }
  bool create_only() const { return if_none_match && lower_trim(*if_none_match) == "*"; }

  // Runs on the pool (under the path lock at commit): 412 when a condition fails.
  std::optional<WriteFailure> check(const std::string& path, const struct stat* st) const {
    std::string etag;
    if (st) etag = strong_etag(*st, etag_generations().get(st->st_dev, st->st_ino));
    if (if_match && eval_if_match(*if_match, etag) == Cond::no_match)
      return WriteFailure{412, "precondition failed: If-Match does not match the current version of '" + path + "'"};
    if (if_none_match && !create_only() && eval_if_none_match(*if_none_match, etag) == Cond::match)
      return WriteFailure{412, "precondition failed: If-None-Match matches the current version of '" + path + "'"};
    // RFC 9110 §13.1.4: ignored with If-Match, or when there is no file (no modification date).
    if (if_unmodified_since && !if_match && st && st->st_mtim.tv_sec > *if_unmodified_since)
      return WriteFailure{
          412, "precondition failed: '" + path + "' was modified since " + format_http_date(*if_unmodified_since)};
    return std::nullopt;
  }
};

// ---------------------------------------------------------------- the body, with an idle bound

enum class Pull { data, end, gone, idle, bad };  // bad: the gzip stream is corrupt

// Reads the request body piece by piece; a read that gets no byte within the idle timeout is
// cancelled (Pull::idle). The transport's read runs in its own coroutine bound to a cancellation
// signal that a timer emits, and that the request's cancellation (shutdown) emits too: the
// handler's own cancellation does not reach a read bound to another slot, and a client that
// stopped sending would otherwise hold shutdown for its whole timeout.
class BodyPuller {
 public:
  BodyPuller(http::Exchange& ex, std::chrono::milliseconds idle)
      : ex_(ex), idle_(idle), st_(std::make_shared<State>(ex.executor())) {
    cancel_id_ = ex_.scope().on_cancel([st = st_] {
      if (st->reading) st->signal.emit(asio::cancellation_type::terminal);
    });
  }
  ~BodyPuller() {
    st_->timer.cancel();
    ex_.scope().forget(cancel_id_);
  }

  // Appends the next piece (at most max bytes) to `out`.
  awaitable<Pull> next(std::string& out, std::size_t max) {
    co_return co_await pull_with([&]() { return ex_.read_body(out, max); });
  }
  // Stores the next piece (at most cap bytes) at dst; `got` is its length.
  awaitable<Pull> next_into(char* dst, std::size_t cap, std::size_t& got) {
    got = 0;
    co_return co_await pull_with([&]() { return ex_.read_body_into(dst, cap, got); });
  }

 private:
  template <class Read>
  awaitable<Pull> pull_with(Read read) {
    if (ended_) co_return Pull::end;
    if (ex_.scope().cancelled()) co_return Pull::gone;
    const std::uint64_t gen = ++st_->gen;
    st_->timer.expires_after(idle_);
    // The state is shared with the timer's handler: a handler already queued when this object
    // goes away still finds it (and, its generation being stale, does nothing).
    st_->timer.async_wait([st = st_, gen](boost::system::error_code ec) {
      if (ec || gen != st->gen || !st->reading) return;
      st->timed_out = true;
      st->signal.emit(asio::cancellation_type::terminal);
    });
    st_->reading = true;
    http::BodyRead r = http::BodyRead::error;
    try {
      r = co_await asio::co_spawn(ex_.executor(), read(),
                                  asio::bind_cancellation_slot(st_->signal.slot(), asio::use_awaitable));
    } catch (const boost::system::system_error&) {
      r = http::BodyRead::error;
    }
    st_->reading = false;
    ++st_->gen;
    st_->timer.cancel();
    if (st_->timed_out) co_return Pull::idle;
    switch (r) {
      case http::BodyRead::data: co_return Pull::data;
      case http::BodyRead::end: ended_ = true; co_return Pull::end;
      default: co_return Pull::gone;
    }
  }

  struct State {
    explicit State(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    asio::cancellation_signal signal;
    std::uint64_t gen = 0;
    bool reading = false;
    bool timed_out = false;
  };
  http::Exchange& ex_;
  std::chrono::milliseconds idle_;
  std::shared_ptr<State> st_;
  std::uint64_t cancel_id_ = 0;
  bool ended_ = false;
};

// ---------------------------------------------------------------- one upload request

struct FileResult {
  std::optional<WriteFailure> failure;
};

class Upload {
 public:
  Upload(http::Exchange& ex, SandboxState& state, const UploadOptions& opts, FilesRequest req)
      : ex_(ex), state_(state), opts_(opts), req_(std::move(req)), body_(ex, opts.idle_timeout) {}
  // Also reached by unwinding, when the request is cancelled (client gone, shutdown) in the
  // middle of a co_await: an unfinished file is dropped on the pool, by a job of its own.
  ~Upload();

  awaitable<void> run();
  awaitable<void> run_request();

 private:
  // Opens the writer for a resolved target: EnsureDirs, then the writer (both on the pool).
  awaitable<std::optional<WriteFailure>> open_file(const std::string& target);
  // Queues `data` (which stays valid until the next write or swap_buffers()) after the write in
  // flight; returns that write's failure.
  awaitable<std::optional<WriteFailure>> write(std::string_view data);
  void start_write(std::string_view data);
  awaitable<std::optional<WriteFailure>> wait_write();
  // Waits for the write in flight if it reads from `buf`, before `buf` is refilled.
  awaitable<void> release(const std::string& buf);
  awaitable<void> release(const char* buf, std::size_t size);
  // After a piece was handed to write(): the next pull fills the other buffer.
  void swap_buffers();
  awaitable<std::optional<WriteFailure>> commit();
  awaitable<void> drop_file();
  // The next decoded body bytes (gzip inflated) into `decoded_`. Pull::data with an empty
  // result is possible (gzip header bytes).
  awaitable<Pull> pull();
  Pull gzip_failed();
  awaitable<void> run_raw(const std::string& raw_path);
  awaitable<void> run_multipart(std::string_view content_type);
  awaitable<void> run_archive(const std::string& raw_path);
  awaitable<void> fail(int status, std::string_view message);
  awaitable<void> finish_ok();
  awaitable<void> end_on(Pull p);
  void add_entry();

  http::Exchange& ex_;
  SandboxState& state_;
  const UploadOptions& opts_;
  FilesRequest req_;
  BodyPuller body_;
  Metadata md_;
  Conditions cond_;
  bool atomic_ = false;
  bool gzip_ = false;
  std::optional<std::uint64_t> known_length_;    // decoded length, known before writing
  std::optional<std::uint64_t> content_length_;  // the request's, for envd's 507 wording
  std::unique_ptr<rest::GzipInflater> inflater_;
  static constexpr std::size_t kInflateChunk = 256 * 1024;
  // The body buffers are shared with the write in flight, so that they outlive this object if the
  // request is cancelled while a pool thread still reads one of them.
  struct Buffers {
    std::string in, decoded, decoded_spare;
    // Raw bodies: pieces read straight into these (no zero fill), allocated at the first piece.
    std::unique_ptr<char[]> raw, raw_spare;
  };
  std::shared_ptr<Buffers> bufs_ = std::make_shared<Buffers>();
  std::string& in_ = bufs_->in;  // gzip: compressed body bytes
  std::size_t in_off_ = 0;       // gzip: how much of in_ the inflater consumed
  bool inflate_pending_ = false;
  bool body_ended_ = false;
  std::string& decoded_ = bufs_->decoded;  // inflated bytes (gzip only)
  std::string_view chunk_;                 // what pull() produced: into in_ or decoded_
  std::unique_ptr<char[]>& raw_ = bufs_->raw;
  std::unique_ptr<char[]>& raw_spare_ = bufs_->raw_spare;
  std::size_t raw_cap_ = 0;  // the size of raw_ and raw_spare_
  std::string& decoded_spare_ = bufs_->decoded_spare;
  struct PendingWrite {
    explicit PendingWrite(const asio::any_io_executor& ex) : event(ex) {}
    const char* base = nullptr;  // the bytes it writes (inside raw_/raw_spare_/decoded_/...)
    std::optional<WriteFailure> result;
    bool done = false;
    Event event;
  };
  std::shared_ptr<PendingWrite> pending_;
  std::optional<WriteFailure> write_failure_;  // of a write already waited for
  std::shared_ptr<FileWriter> writer_;
  std::string target_;
  std::string entries_ = "[";
  std::size_t entry_count_ = 0;
  std::set<std::string> targets_;
  std::string gzip_error_;
};

awaitable<std::optional<WriteFailure>> Upload::open_file(const std::string& target) {
  target_ = target;
  writer_ = std::make_shared<FileWriter>();
  WriterOptions wo;
  wo.atomic = atomic_;
  wo.uid = req_.user.uid;
  wo.gid = req_.user.gid;
  wo.known_length = known_length_;
  wo.content_length = content_length_;
  if (cond_.any) {
    wo.create_only = cond_.create_only();
    wo.precondition = [c = cond_, target](const struct stat* st) { return c.check(target, st); };
  }
  auto job = [w = writer_, target, wo = std::move(wo)]() mutable -> std::optional<WriteFailure> {
    if (auto r = ensure_dirs(go_dir(target), wo.uid, wo.gid); !r.ok())
      return WriteFailure{500, "error ensuring directories: " + r.error};
    return w->open(target, std::move(wo));
  };
  co_return co_await run_blocking(WorkClass::meta, job);
}

// Writes run on the pool while the loop reads the next piece of body: at most one write is in
// flight, and the buffer it reads from is not refilled until it is done (see swap_buffers()).
void Upload::start_write(std::string_view data) {
  auto pending = std::make_shared<PendingWrite>(ex_.executor());
  pending->base = data.data();
  pending_ = pending;
  auto run = [](std::shared_ptr<PendingWrite> p, std::shared_ptr<FileWriter> w, std::shared_ptr<Buffers> keep,
                std::string_view data) -> awaitable<void> {
    auto job = [w, data] { return w->write(data); };
    p->result = co_await run_blocking(WorkClass::data, job);
    p->done = true;
    p->event.set();
    keep.reset();
  };
  asio::co_spawn(ex_.executor(), run(pending, writer_, bufs_, data), asio::detached);
}

Upload::~Upload() {
  if (!writer_) return;
  // After the write in flight, if any: never two pool jobs on one writer (a close racing a
  // write could send the bytes to whatever file reuses the descriptor).
  auto drop = [](std::shared_ptr<FileWriter> w, std::shared_ptr<PendingWrite> pending) -> awaitable<void> {
    if (pending && !pending->done) co_await pending->event.wait();
    auto job = [w] {
      bool touched = w->touched();
      struct stat st = w->final_stat();
      w->abort();
      if (touched) etag_generations().bump(st.st_dev, st.st_ino);
      return 0;
    };
    co_await run_blocking(WorkClass::meta, job);
  };
  asio::co_spawn(ex_.executor(), drop(std::move(writer_), std::move(pending_)), asio::detached);
}

awaitable<std::optional<WriteFailure>> Upload::wait_write() {
  if (auto p = std::move(pending_)) {
    if (!p->done) co_await p->event.wait();
    if (p->result && !write_failure_) write_failure_ = std::move(p->result);
  }
  co_return write_failure_;
}

awaitable<void> Upload::release(const std::string& buf) { co_await release(buf.data(), buf.capacity()); }

awaitable<void> Upload::release(const char* buf, std::size_t size) {
  if (pending_ && pending_->base >= buf && pending_->base < buf + size) co_await wait_write();
}

awaitable<std::optional<WriteFailure>> Upload::write(std::string_view data) {
  if (auto f = co_await wait_write()) co_return f;
  if (!data.empty()) start_write(data);
  co_return std::nullopt;
}

void Upload::swap_buffers() {
  if (gzip_)
    std::swap(decoded_, decoded_spare_);
  else
    std::swap(raw_, raw_spare_);
}

awaitable<std::optional<WriteFailure>> Upload::commit() {
  if (auto f = co_await wait_write()) co_return f;
  auto job = [w = writer_, md = md_] {
    auto f = w->commit(md);
    if (w->touched()) etag_generations().bump(w->final_stat().st_dev, w->final_stat().st_ino);
    return f;
  };
  auto failed = co_await run_blocking(WorkClass::data, job);
  if (!failed) add_entry();
  co_return failed;
}

// An unfinished file: in place it keeps what was written; atomic drops the temporary file.
awaitable<void> Upload::drop_file() {
  co_await wait_write();  // never leave a pool job reading a buffer that goes away
  if (!writer_) co_return;
  auto job = [w = std::move(writer_)] {
    bool touched = w->touched();
    struct stat st = w->final_stat();
    w->abort();
    if (touched) etag_generations().bump(st.st_dev, st.st_ino);
    return 0;
  };
  co_await run_blocking(WorkClass::meta, job);
}

void Upload::add_entry() {
  // The REST shape of §6.6 (keys as envd orders them), metadata read back from the file.
  if (entry_count_++ > 0) entries_ += ',';
  entries_ += '{';
  const Metadata& md = writer_->final_metadata();
  if (!md.empty()) {
    entries_ += "\"metadata\":{";
    for (std::size_t i = 0; i < md.size(); ++i) {
      if (i) entries_ += ',';
      append_go_json_string(entries_, md[i].first);
      entries_ += ':';
      append_go_json_string(entries_, md[i].second);
    }
    entries_ += "},";
  }
  entries_ += "\"name\":";
  append_go_json_string(entries_, base_name(target_));
  entries_ += ",\"path\":";
  append_go_json_string(entries_, target_);
  entries_ += ",\"type\":\"file\"}";
  writer_.reset();
}

// More than any chunked-encoding framing: that many ready bytes always hold body bytes.
constexpr std::size_t kFillReadyBytes = 4096;

awaitable<Pull> Upload::pull() {
  if (!gzip_) {
    if (!raw_) {
      // A body known to be small gets a buffer its size (an upload of a few bytes does not
      // allocate read_chunk_bytes twice).
      raw_cap_ = opts_.read_chunk_bytes;
      if (content_length_ && *content_length_ < raw_cap_) raw_cap_ = std::max<std::size_t>(*content_length_, 4096);
      raw_ = std::make_unique_for_overwrite<char[]>(raw_cap_);
      raw_spare_ = std::make_unique_for_overwrite<char[]>(raw_cap_);
    }
    co_await release(raw_.get(), raw_cap_);
    char* buf = raw_.get();
    std::size_t len = 0, got = 0;
    Pull p = co_await body_.next_into(buf, raw_cap_, got);
    len += got;
    // One read hands out what the socket holds (HTTP/1.1 with Content-Length: up to the whole
    // buffer; chunked: at most 64 KiB through Beast), and every piece costs a write handed to the
    // pool and back. While the previous write still runs and more body is already there (no
    // wait for the client), fill this piece up to read_chunk_bytes: fewer, larger writes (bench
    // files row, HTTP/1.1 upload). A slow client's bytes still go out as they come.
    while (p == Pull::data && len < raw_cap_ && pending_ && !pending_->done &&
           ex_.body_bytes_ready() >= kFillReadyBytes) {
      p = co_await body_.next_into(buf + len, raw_cap_ - len, got);
      len += got;
    }
    if (p == Pull::end && len > 0) p = Pull::data;  // the end comes at the next pull
    chunk_ = std::string_view(buf, len);
    co_return p;
  }
  // gzip: inflate into a fixed buffer, one piece per call, so a small body that inflates to a
  // huge one (a gzip bomb) never takes more memory than that buffer.
  for (;;) {
    if (in_off_ < in_.size() || inflate_pending_) {
      co_await release(decoded_);
      decoded_.resize(kInflateChunk);
      auto step = inflater_->inflate({in_.data() + in_off_, in_.size() - in_off_}, {decoded_.data(), decoded_.size()});
      if (inflater_->failed()) co_return gzip_failed();
      in_off_ += step.consumed;
      inflate_pending_ = step.produced == decoded_.size();
      if (step.produced > 0) {
        chunk_ = std::string_view(decoded_.data(), step.produced);
        co_return Pull::data;
      }
      if (step.consumed == 0 && in_off_ < in_.size()) co_return gzip_failed();  // no progress: never spin
      continue;
    }
    if (body_ended_) {
      chunk_ = {};
      if (!inflater_->finish()) co_return gzip_failed();
      co_return Pull::end;
    }
    in_.clear();
    in_off_ = 0;
    Pull p = co_await body_.next(in_, opts_.read_chunk_bytes);
    if (p == Pull::end)
      body_ended_ = true;
    else if (p != Pull::data)
      co_return p;
  }
}

Pull Upload::gzip_failed() {
  gzip_error_ = inflater_->failed() ? inflater_->error() : "gzip: no progress";
  if (inflater_->error_in_first_header()) gzip_error_ = "failed to create gzip reader: " + gzip_error_;
  return Pull::bad;
}

awaitable<void> Upload::fail(int status, std::string_view message) {
  co_await drop_file();
  co_await reply_error(ex_, status, message);
}

awaitable<void> Upload::end_on(Pull p) {
  co_await drop_file();
  if (p == Pull::idle) {
    co_await reply_error(
        ex_, 408,
        "request body idle timeout: no data received for " + std::to_string(opts_.idle_timeout.count()) + " ms");
  } else if (p == Pull::bad) {
    co_await reply_error(ex_, 400, "error decompressing request body: " + gzip_error_);
  }
  // Client gone: nobody to answer.
}

awaitable<void> Upload::finish_ok() {
  entries_ += ']';
  co_await ex_.respond(200, json_headers(), std::move(entries_));
}

awaitable<void> Upload::run_raw(const std::string& raw_path) {
  FilesPath resolved = resolve_files_path(state_, req_.user, raw_path);
  if (!resolved.error.empty()) co_return co_await reply_error(ex_, 400, "error resolving path: " + resolved.error);
  // gzip: the first piece is inflated before the file is opened, so a body that is not gzip at
  // all creates nothing (envd creates its gzip reader first too).
  Pull p = Pull::data;
  bool primed = false;
  if (gzip_) {
    p = co_await pull();
    if (p == Pull::gone || p == Pull::idle || p == Pull::bad) co_return co_await end_on(p);
    primed = true;
  }
  if (auto f = co_await open_file(resolved.path)) co_return co_await fail(f->status, f->message);
  for (;;) {
    if (!primed) p = co_await pull();
    primed = false;
    if (p == Pull::gone || p == Pull::idle || p == Pull::bad) co_return co_await end_on(p);
    if (auto f = co_await write(chunk_)) co_return co_await fail(f->status, f->message);
    swap_buffers();
    if (p == Pull::end) break;
  }
  if (auto f = co_await commit()) co_return co_await fail(f->status, f->message);
  co_await finish_ok();
}

awaitable<void> Upload::run_multipart(std::string_view content_type) {
  auto boundary = rest::multipart_boundary(content_type);
  if (boundary.boundary.empty())
    co_return co_await reply_error(ex_, 400, "error parsing multipart form: " + boundary.error);
  rest::MultipartReader reader(std::move(boundary.boundary));
  bool file_part = false;  // inside a part named `file`
  // A part with `Content-Transfer-Encoding: quoted-printable` is decoded, as Go's reader does.
  std::optional<rest::QuotedPrintableDecoder> qp;
  std::string decoded;
  bool at_end = false;
  int finishes = 0;
  std::string_view in;
  for (;;) {
    rest::MultipartEvent ev = at_end && in.empty() ? reader.finish() : reader.next(in);
    if (at_end && in.empty() && ++finishes > 4) ev = rest::MultipartEvent::error;  // never spin
    if (ev == rest::MultipartEvent::need_more) {
      swap_buffers();  // writes in flight keep reading the piece just parsed
      Pull p = co_await pull();
      if (p == Pull::gone || p == Pull::idle || p == Pull::bad) co_return co_await end_on(p);
      if (p == Pull::end) at_end = true;
      in = chunk_;
      continue;
    }
    switch (ev) {
      case rest::MultipartEvent::part_begin: {
        file_part = reader.headers().form_name() == "file";
        if (!file_part) break;
        qp.reset();
        if (auto cte = reader.headers().get("content-transfer-encoding");
            cte && ascii::iequals(*cte, "quoted-printable"))
          qp.emplace();
        std::string raw;
        if (req_.path)
          raw = *req_.path;
        else if (auto name = reader.headers().filename())
          raw = *name;
        else
          co_return co_await reply_error(
              ex_, 400,
              "error getting multipart custom part file name: filename not found in Content-Disposition header");
        FilesPath resolved = resolve_files_path(state_, req_.user, raw);
        if (!resolved.error.empty())
          co_return co_await reply_error(ex_, 400, "error resolving path: " + resolved.error);
        if (!targets_.insert(resolved.path).second)
          co_return co_await reply_error(ex_, 400,
                                         "you cannot upload multiple files to the same path '" + resolved.path +
                                             "' in one upload request, only the first specified file was uploaded");
        if (auto f = co_await open_file(resolved.path)) co_return co_await fail(f->status, f->message);
        break;
      }
      case rest::MultipartEvent::data: {
        if (!file_part) break;
        std::string_view d = reader.data();
        if (qp) {
          decoded.clear();
          if (auto err = qp->feed(d, decoded)) co_return co_await fail(400, "error writing file: " + *err);
          if (decoded.empty()) break;
          if (auto f = co_await write(decoded)) co_return co_await fail(f->status, f->message);
          if (auto f = co_await wait_write()) co_return co_await fail(f->status, f->message);
          break;
        }
        if (auto f = co_await write(d)) co_return co_await fail(f->status, f->message);
        // Bytes from the reader's own small buffer (a held-back delimiter prefix) change at the
        // next call: that write must be done first.
        bool from_input = d.data() >= chunk_.data() && d.data() + d.size() <= chunk_.data() + chunk_.size();
        if (!from_input)
          if (auto f = co_await wait_write()) co_return co_await fail(f->status, f->message);
        break;
      }
      case rest::MultipartEvent::part_end:
        if (file_part && qp) {
          decoded.clear();
          if (auto err = qp->finish(decoded)) co_return co_await fail(400, "error writing file: " + *err);
          if (!decoded.empty()) {
            if (auto f = co_await write(decoded)) co_return co_await fail(f->status, f->message);
            if (auto f = co_await wait_write()) co_return co_await fail(f->status, f->message);
          }
        }
        if (file_part)
          if (auto f = co_await commit()) co_return co_await fail(f->status, f->message);
        file_part = false;
        break;
      case rest::MultipartEvent::done: co_return co_await finish_ok();
      case rest::MultipartEvent::error:
      default:
        co_return co_await fail(
            400, "error reading form: " +
                     (reader.error().empty() ? std::string("multipart: NextPart: EOF") : reader.error()));
    }
  }
}

awaitable<void> Upload::run() {
  co_await run_request();
  co_await drop_file();  // whatever path ended the request, no pool job outlives the buffers
}

awaitable<void> Upload::run_request() {
  const auto& head = ex_.request();
  // Order as envd checks: Content-Encoding, metadata, Content-Type, then the path.
  std::string encoding = lower_trim(head.header("content-encoding").value_or(""));
  if (encoding == "gzip") {
    gzip_ = true;
    inflater_ = std::make_unique<rest::GzipInflater>();
    // Heap buffers from the start: swapping them then swaps their storage, and views into a
    // piece in flight stay valid (a short string would live inside the object and move with it).
    // Raw bodies use raw_ and raw_spare_ (pull()).
    in_.reserve(opts_.read_chunk_bytes);
    decoded_.reserve(kInflateChunk);
    decoded_spare_.reserve(kInflateChunk);
  } else if (!encoding.empty() && encoding != "identity") {
    co_return co_await reply_error(ex_, 400,
                                   "error decompressing request body: unsupported Content-Encoding: " +
                                       std::string(*head.header("content-encoding")) + ", supported: [gzip]");
  }
  md_ = metadata_from_headers(head.headers);
  if (auto err = validate_metadata(md_)) co_return co_await reply_error(ex_, 400, "invalid metadata: " + *err);

  auto query = rest::Query::parse(head.query);
  auto atomic = rest::single_value(query, "atomic");
  if (!atomic.error.empty()) co_return co_await send_reply(ex_, text_reply(400, atomic.error + "\n"));
  if (atomic.value) {
    std::string v = http::to_lower(*atomic.value);
    if (v == "true" || v == "1")
      atomic_ = true;
    else if (v != "false" && v != "0" && !v.empty())
      co_return co_await reply_error(ex_, 400,
                                     "invalid atomic parameter '" + *atomic.value + "': expected true or false");
  }
  cond_ = Conditions::from(head);
  if (cond_.any) atomic_ = true;  // check and rename happen together, under the path lock

  content_length_ = parse_content_length(head);
  std::string_view ct = head.header("content-type").value_or("");
  std::string mt = media_type(ct);
  // Directories as archives (README): opt-in by media type, and, with a token set, only for a
  // request carrying X-Access-Token (a signed URL never extracts archives).
  if ((mt == "application/x-tar" || mt == "application/gzip") &&
      (!state_.access_token || head.header("x-access-token"))) {
    if (!req_.path) co_return co_await reply_error(ex_, 400, "path query parameter is required for an archive upload");
    co_return co_await run_archive(*req_.path);
  }
  if (mt == "application/octet-stream") {
    if (!req_.path) co_return co_await reply_error(ex_, 400, "path query parameter is required for raw body upload");
    if (!gzip_) known_length_ = content_length_;  // the body is the file
    co_return co_await run_raw(*req_.path);
  }
  if (mt.rfind("multipart/", 0) == 0) {
    if (cond_.any && !req_.path)
      co_return co_await reply_error(
          ex_, 400,
          "If-Match, If-None-Match and If-Unmodified-Since apply to one file: give it as ?path= (a multipart body "
          "without it may name several)");
    co_return co_await run_multipart(ct);
  }
  co_await reply_error(
      ex_, 400,
      "unsupported content type: " + std::string(ct) + ", expected multipart/form-data or application/octet-stream");
}

// An archive extracted on the pool. The lock keeps jobs on one extractor in order even when the
// request goes away while one runs (the cleanup job then waits for it).
struct SharedExtractor {
  SharedExtractor(const ArchiveOptions& o, uid_t uid, gid_t gid) : x(o, uid, gid) {}
  std::mutex m;
  ArchiveExtractor x;
};

// Drops an unfinished extraction on the pool (staging directory removed), whichever way the
// request ends.
struct ExtractorGuard {
  std::shared_ptr<SharedExtractor> p;
  asio::any_io_executor exec;
  ~ExtractorGuard() {
    if (!p) return;
    auto drop = [](std::shared_ptr<SharedExtractor> x) -> awaitable<void> {
      auto job = [x] {
        std::lock_guard lock(x->m);
        x->x.abort();
        return 0;
      };
      co_await run_blocking(WorkClass::meta, job);
    };
    asio::co_spawn(exec, drop(std::move(p)), asio::detached);
  }
};

awaitable<void> Upload::run_archive(const std::string& raw_path) {
  FilesPath resolved = resolve_files_path(state_, req_.user, raw_path);
  if (!resolved.error.empty()) co_return co_await reply_error(ex_, 400, "error resolving path: " + resolved.error);
  ExtractorGuard guard{std::make_shared<SharedExtractor>(opts_.archive, req_.user.uid, req_.user.gid), ex_.executor()};
  auto x = guard.p;
  const std::string target = resolved.path;
  auto begin_job = [x, target] {
    std::lock_guard lock(x->m);
    return x->x.begin(target);
  };
  // A refused archive leaves nothing behind by the time the answer goes out.
  auto abort_job = [x] {
    std::lock_guard lock(x->m);
    x->x.abort();
    return 0;
  };
  if (auto f = co_await run_blocking(WorkClass::meta, begin_job)) {
    co_await run_blocking(WorkClass::meta, abort_job);
    co_return co_await reply_error(ex_, f->status, f->message);
  }
  auto cancel = ex_.scope().token();
  for (;;) {
    Pull p = co_await pull();
    if (p == Pull::gone || p == Pull::idle || p == Pull::bad) {
      co_await run_blocking(WorkClass::meta, abort_job);
      co_return co_await end_on(p);
    }
    std::optional<WriteFailure> f;
    if (p == Pull::data) {
      // chunk_ stays valid: nothing refills the buffer until this job is done, and the job holds
      // the buffers in case the request is torn down (client gone, shutdown) while it runs.
      auto feed_job = [x, data = chunk_, keep = bufs_, cancel]() -> std::optional<WriteFailure> {
        std::lock_guard lock(x->m);
        if (is_cancelled(cancel)) return WriteFailure{499, "canceled"};
        return x->x.feed(data);
      };
      f = co_await run_blocking(WorkClass::data, feed_job);
    } else {
      auto finish_job = [x] {
        std::lock_guard lock(x->m);
        return x->x.finish();
      };
      f = co_await run_blocking(WorkClass::meta, finish_job);
    }
    if (ex_.closed() || is_cancelled(cancel)) co_return;
    if (f) {
      co_await run_blocking(WorkClass::meta, abort_job);
      co_return co_await reply_error(ex_, f->status, f->message);
    }
    if (p == Pull::end) break;
  }
  // The REST shape of §6.6: what was written, in archive order.
  for (const auto& e : x->x.written()) {
    if (entry_count_++ > 0) entries_ += ',';
    entries_ += "{\"name\":";
    append_go_json_string(entries_, base_name(e.path));
    entries_ += ",\"path\":";
    append_go_json_string(entries_, e.path);
    entries_ += e.dir ? ",\"type\":\"dir\"}" : ",\"type\":\"file\"}";
  }
  co_await finish_ok();
}

awaitable<void> handle_upload(http::Exchange& ex, SandboxState& state, const UploadOptions& opts) {
  auto pre = files_prelude(state, ex.request(), FileOp::write, unix_seconds_now());
  if (auto* reply = std::get_if<Reply>(&pre)) co_return co_await send_reply(ex, std::move(*reply));
  Upload upload(ex, state, opts, std::move(std::get<FilesRequest>(pre)));
  co_await upload.run();
}

// ---------------------------------------------------------------- compose

awaitable<void> handle_compose(http::Exchange& ex, SandboxState& state, const UploadOptions& opts) {
  std::string body;
  auto r = co_await http::read_whole_body(ex, body, opts.max_compose_body_bytes);
  if (r == http::BodyRead::too_large) co_return co_await reply_error(ex, 413, "request body too large");
  if (r != http::BodyRead::end) co_return;
  WriteFailure failure;
  auto req = parse_compose_request(body, failure);
  if (!req) co_return co_await reply_error(ex, failure.status, failure.message);

  // The user: the body's `username`, else the default user (§2.3).
  std::string name = req->username.value_or(state.default_user);
  if (!req->username && name.empty()) co_return co_await reply_error(ex, 400, "username not provided");
  auto user = state.users.lookup(name);
  if (!user)
    co_return co_await reply_error(ex, 401, "error looking up user '" + name + "': user: unknown user " + name);

  FilesPath dest = resolve_files_path(state, *user, req->destination);
  if (!dest.error.empty()) co_return co_await reply_error(ex, 400, "error resolving destination path: " + dest.error);
  std::vector<ComposeSource> sources;
  for (const auto& s : req->source_paths) {
    FilesPath p = resolve_files_path(state, *user, s);
    if (!p.error.empty())
      co_return co_await reply_error(ex, 400, "error resolving source path \"" + s + "\": " + p.error);
    sources.push_back({s, p.path});
  }
  if (auto f = check_compose_paths(sources, dest.path)) co_return co_await reply_error(ex, f->status, f->message);

  CancelToken cancel = ex.scope().token();
  auto job = [&, cancel, uid = user->uid, gid = user->gid]() -> std::optional<WriteFailure> {
    if (auto f = check_compose_sources(sources)) return f;
    if (auto r = ensure_dirs(go_dir(dest.path), uid, gid); !r.ok())
      return WriteFailure{500, "error ensuring directories: " + r.error};
    struct stat st {};
    auto f = compose_files(sources, dest.path, uid, gid, cancel.get(), &st);
    if (!f) etag_generations().bump(st.st_dev, st.st_ino);
    return f;
  };
  auto failed = co_await run_blocking(WorkClass::walk, job);
  if (failed) co_return co_await reply_error(ex, failed->status, failed->message);
  std::string out = "{\"name\":";
  append_go_json_string(out, base_name(dest.path));
  out += ",\"path\":";
  append_go_json_string(out, dest.path);
  out += ",\"type\":\"file\"}\n";
  co_await ex.respond(200, json_headers(), std::move(out));
}

}  // namespace

void register_upload_routes(Router& router, SandboxState& state, UploadOptions options) {
  auto opts = std::make_shared<UploadOptions>(options);
  router.add("POST", "/files", [&state, opts](http::Exchange& ex) { return handle_upload(ex, state, *opts); });
  router.add("POST", "/files/compose", [&state, opts](http::Exchange& ex) { return handle_compose(ex, state, *opts); });
}

}  // namespace envd::fs
