// HTTP/2 (h2c) sessions on nghttp2: many concurrent streams, flow control both ways (request
// bodies are consumed from the window only as handlers read them; responses queue up to a high
// watermark and then suspend the writer), trailers, and stream 1 from an `Upgrade: h2c`.
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <map>
#include <memory>

#include "envd/event.h"
#include "envd/fifo.h"
#include "envd/http/server.h"
#include "envd/log.h"

namespace envd::http {

using asio::ip::tcp;

namespace {

class Http2Session;

// How long a finished response waits for the end of a request body nobody reads (see finish()).
constexpr std::chrono::milliseconds kEofWaitForRequest{250};

class H2Stream final : public Exchange, public std::enable_shared_from_this<H2Stream> {
 public:
  H2Stream(std::shared_ptr<Http2Session> session, std::int32_t id, const asio::any_io_executor& ex)
      : session_(std::move(session)), id_(id), io_(ex) {}

  const RequestHead& request() const override { return head_; }
  asio::any_io_executor executor() const override;
  asio::awaitable<BodyRead> read_body(std::string& out, std::size_t max_bytes) override;
  asio::awaitable<BodyRead> read_body_some(std::string_view& piece, std::size_t max_bytes) override;
  asio::awaitable<BodyRead> read_body_into(char* dst, std::size_t cap, std::size_t& got) override;
  void return_credit(std::size_t n);
  // Waits until received body bytes are in in_ (data), or the body ended (end) or cannot go on.
  asio::awaitable<BodyRead> wait_input();
  asio::awaitable<bool> write_head(ResponseHead head) override;
  asio::awaitable<bool> write_body(std::string data) override;
  asio::awaitable<void> finish(Headers trailers) override;
  bool closed() const override { return closed_; }
  void abort_response() override;

  void release_eof();
  // Drops the request head once nothing needs it (handler done, or refused before it ran) and
  // returns its bytes to the connection's header budget.
  void release_head();
  // The handler is running: the stream is in use even while nothing moves on it.
  bool active() const { return handler_started_ && !handler_done_; }

  void mark_closed() {
    closed_ = true;
    notify_closed();
    io_.pulse();
  }

  std::shared_ptr<Http2Session> session_;
  std::int32_t id_;
  RequestHead head_;
  std::size_t header_bytes_ = 0;  // decoded (name + value + 32 per field), refused or not
  std::size_t header_count_ = 0;
  std::size_t charged_ = 0;        // bytes of head_ counted against the connection budget
  bool header_too_large_ = false;  // over the per-request limits: 431
  bool header_refused_ = false;    // over the connection's budget: REFUSED_STREAM
  bool handler_started_ = false;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
  // request body
  std::string in_;
  std::string in_view_;            // the piece read_body_some handed out; DATA keeps arriving into in_
  std::size_t in_unconsumed_ = 0;  // received bytes not yet returned to the flow-control window
  bool in_end_ = false;
  bool handler_done_ = false;    // later request DATA is discarded
  bool shutdown_reset_ = false;  // reset at shutdown after its complete response
  bool eof_waits_for_request_ = false;
  // response body
  Fifo<std::string> out_;
  std::size_t out_off_ = 0;
  std::size_t out_bytes_ = 0;
  bool out_eof_ = false;
  bool no_body_ = false;  // HEAD, 204 or 304: body bytes a handler writes are dropped
  Headers trailers_;
  bool finished_ = false;
  bool closed_ = false;
  Event io_;  // pulses on any change: body arrived, queue drained, stream closed
};

class Http2Session : public std::enable_shared_from_this<Http2Session> {
 public:
  Http2Session(tcp::socket socket, ServerContext& ctx)
      : socket_(std::move(socket)),
        ctx_(ctx),
        want_write_(socket_.get_executor()),
        writer_done_(socket_.get_executor()),
        idle_timer_(socket_.get_executor()) {}

  ~Http2Session() {
    if (session_) nghttp2_session_del(session_);
  }

  asio::awaitable<void> run(std::string initial, std::optional<UpgradedRequest> upgraded);

  void signal_write() { want_write_.pulse(); }
  // Shutdown (server.h): GOAWAY now; FIN once the last responses are out; read until EOF.
  void close_gracefully();
  void uncharge_headers(std::size_t n) { header_bytes_ -= std::min(n, header_bytes_); }
  bool dead() const { return dead_; }
  nghttp2_session* raw() { return session_; }
  const ServerContext& ctx() const { return ctx_; }
  asio::any_io_executor executor() { return socket_.get_executor(); }

  // data source for response bodies
  static ssize_t read_response(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                               std::uint32_t* flags, nghttp2_data_source* source, void* user);

 private:
  bool setup();
  asio::awaitable<void> reader(std::string initial);
  asio::awaitable<void> writer();
  asio::awaitable<void> idle_watchdog();
  void reap_streams(std::chrono::steady_clock::time_point now);
  void start_handler(const std::shared_ptr<H2Stream>& stream);
  void spawn_handler(const std::shared_ptr<H2Stream>& stream);
  bool feed(const char* data, std::size_t n);
  void teardown();
  H2Stream* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, std::uint8_t flags, std::int32_t stream_id, const std::uint8_t* data,
                           std::size_t len, void* user);
  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user);

  tcp::socket socket_;
  ServerContext& ctx_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::shared_ptr<H2Stream>> streams_;
  Event want_write_;
  Event writer_done_;
  asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  std::size_t header_bytes_ = 0;  // decoded request headers held by this connection's streams
  bool dead_ = false;
  bool fatal_ = false;    // a receive error ended the session: GOAWAY goes out before the close
  bool closing_ = false;  // close_gracefully() was called
  bool fin_sent_ = false;
};

// ---------------------------------------------------------------- H2Stream

asio::any_io_executor H2Stream::executor() const { return session_->executor(); }

// Gives `n` bytes the handler took back to the peer's send window, only now: upload back-pressure.
void H2Stream::return_credit(std::size_t n) {
  std::size_t credit = std::min(n, in_unconsumed_);
  in_unconsumed_ -= credit;
  if (!session_->dead() && !closed_ && credit > 0) {
    nghttp2_session_consume(session_->raw(), id_, credit);
    session_->signal_write();
  }
}

asio::awaitable<BodyRead> H2Stream::wait_input() {
  for (;;) {
    if (!in_.empty()) co_return BodyRead::data;
    if (in_end_) co_return BodyRead::end;
    if (closed_ || session_->dead()) co_return BodyRead::error;
    co_await io_.wait_pulse();
  }
}

asio::awaitable<BodyRead> H2Stream::read_body(std::string& out, std::size_t max_bytes) {
  const BodyRead r = co_await wait_input();
  if (r != BodyRead::data) co_return r;
  std::size_t n = std::min(max_bytes == 0 ? std::size_t{1} : max_bytes, in_.size());
  out.append(in_, 0, n);
  in_.erase(0, n);
  return_credit(n);
  co_return BodyRead::data;
}

// One copy out of the received bytes into the caller's buffer (no zero fill of a string first).
asio::awaitable<BodyRead> H2Stream::read_body_into(char* dst, std::size_t cap, std::size_t& got) {
  got = 0;
  const BodyRead r = co_await wait_input();
  if (r != BodyRead::data) co_return r;
  if (cap == 0) co_return BodyRead::error;  // no room: a caller's bug, never a spin
  got = std::min(cap, in_.size());
  std::memcpy(dst, in_.data(), got);
  in_.erase(0, got);
  return_credit(got);
  co_return BodyRead::data;
}

// No copy beyond the one out of nghttp2's receive buffer: the received bytes themselves become the
// piece (the two buffers swap roles), and new DATA lands in the other buffer, so the view stays
// valid while the handler hands it to a pool job.
asio::awaitable<BodyRead> H2Stream::read_body_some(std::string_view& piece, std::size_t max_bytes) {
  in_view_.clear();
  piece = {};
  const BodyRead r = co_await wait_input();
  if (r != BodyRead::data) co_return r;
  std::size_t n = std::min(max_bytes == 0 ? std::size_t{1} : max_bytes, in_.size());
  std::swap(in_, in_view_);
  if (n < in_view_.size()) {
    in_.assign(in_view_, n);  // the rest waits for the next call
    in_view_.resize(n);
  }
  piece = in_view_;
  return_credit(n);
  co_return BodyRead::data;
}

asio::awaitable<bool> H2Stream::write_head(ResponseHead head) {
  if (head_sent_ || closed_ || session_->dead()) co_return !(closed_ || session_->dead());
  head_sent_ = true;
  response_status_ = head.status;
  // DATA on such a response is a protocol error to the client (a HEAD refused 401 used to carry
  // the jsonError body, and nghttp2 clients reset the stream).
  no_body_ = head_.method == "HEAD" || head.status == 204 || head.status == 304;
  std::string status = std::to_string(head.status);
  std::vector<std::pair<std::string, std::string>> hs;
  hs.emplace_back(":status", status);
  auto add = [&](const std::string& n, const std::string& v) {
    std::string name = to_lower(n);
    if (name == "connection" || name == "transfer-encoding" || name == "keep-alive" || name == "upgrade") return;
    hs.emplace_back(std::move(name), v);
  };
  for (const auto& [n, v] : head.headers) add(n, v);
  for (const auto& [n, v] : extra_headers_)
    if (!replaced_by(head.headers, n)) add(n, v);
  if (head.content_length) hs.emplace_back("content-length", std::to_string(*head.content_length));
  std::vector<nghttp2_nv> nva;
  nva.reserve(hs.size());
  for (auto& [n, v] : hs) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(n.data()), reinterpret_cast<std::uint8_t*>(v.data()), n.size(),
                   v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider prd{};
  prd.source.ptr = this;
  prd.read_callback = &Http2Session::read_response;
  if (head.headers_only) out_eof_ = true;  // nothing is ever sent after this HEADERS frame
  int rv = nghttp2_submit_response(session_->raw(), id_, nva.data(), nva.size(), head.headers_only ? nullptr : &prd);
  if (rv != 0) {
    mark_closed();
    co_return false;
  }
  session_->signal_write();
  co_return true;
}

asio::awaitable<bool> H2Stream::write_body(std::string data) {
  if (closed_ || session_->dead()) co_return false;
  if (data.empty() || no_body_) co_return true;
  out_bytes_ += data.size();
  out_.push_back(std::move(data));
  nghttp2_session_resume_data(session_->raw(), id_);
  session_->signal_write();
  // Back-pressure: a slow reader suspends the writer instead of growing the queue.
  while (out_bytes_ > session_->ctx().config.write_high_watermark && !closed_ && !session_->dead()) {
    co_await io_.wait_pulse();
  }
  co_return !(closed_ || session_->dead());
}

asio::awaitable<void> H2Stream::finish(Headers trailers) {
  if (finished_) co_return;
  finished_ = true;
  if (closed_ || session_->dead()) co_return;
  trailers_ = std::move(trailers);
  if (in_end_) {
    release_eof();
    co_return;
  }
  // The request is still arriving. Ending the response now is legal, but some clients (curl)
  // then never finish the upload and hang; so END_STREAM waits, briefly, for the request's end.
  eof_waits_for_request_ = true;
  auto self = std::static_pointer_cast<H2Stream>(shared_from_this());
  auto timer = std::make_shared<asio::steady_timer>(session_->executor(), kEofWaitForRequest);
  timer->async_wait([self, timer](const boost::system::error_code&) { self->release_eof(); });
  co_return;
}

void H2Stream::abort_response() {
  if (closed_ || session_->dead()) return;
  nghttp2_submit_rst_stream(session_->raw(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  session_->signal_write();
  mark_closed();
}

void H2Stream::release_eof() {
  eof_waits_for_request_ = false;
  if (out_eof_ || closed_ || session_->dead()) return;
  out_eof_ = true;
  nghttp2_session_resume_data(session_->raw(), id_);
  session_->signal_write();
}

void H2Stream::release_head() {
  session_->uncharge_headers(charged_);
  charged_ = 0;
  // Swapped out, not cleared: the capacity goes too.
  RequestHead().headers.swap(head_.headers);
  std::string().swap(head_.target);
  std::string().swap(head_.query);
}

// ---------------------------------------------------------------- Http2Session

ssize_t Http2Session::read_response(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                                    std::size_t length, std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  std::size_t n = 0;
  while (n < length && !s->out_.empty()) {
    auto& front = s->out_.front();
    std::size_t take = std::min(length - n, front.size() - s->out_off_);
    std::memcpy(buf + n, front.data() + s->out_off_, take);
    n += take;
    s->out_off_ += take;
    if (s->out_off_ == front.size()) {
      s->out_.pop_front();
      s->out_off_ = 0;
    }
  }
  s->out_bytes_ -= n;
  if (n > 0) s->last_progress_ = std::chrono::steady_clock::now();
  if (n > 0 && s->out_bytes_ <= s->session_->ctx().config.write_high_watermark / 2) s->io_.pulse();
  if (s->out_.empty() && s->out_eof_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->trailers_.empty()) {
      std::vector<nghttp2_nv> nva;
      for (auto& [k, v] : s->trailers_) {
        nva.push_back({reinterpret_cast<std::uint8_t*>(k.data()), reinterpret_cast<std::uint8_t*>(v.data()), k.size(),
                       v.size(), NGHTTP2_NV_FLAG_NONE});
      }
      if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(n);
}

int Http2Session::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Http2Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto stream = std::make_shared<H2Stream>(self->shared_from_this(), frame->hd.stream_id, self->executor());
  stream->head_.version = 20;
  self->streams_[frame->hd.stream_id] = std::move(stream);
  return 0;
}

int Http2Session::on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                            std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                            void* user) {
  auto* self = static_cast<Http2Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers ignored
  H2Stream* s = self->find(frame->hd.stream_id);
  if (!s || s->header_too_large_ || s->header_refused_) return 0;
  // Counted as decoded, not as sent: a 1-byte HPACK index can stand for a 4 KiB table entry.
  const auto& cfg = self->ctx_.config;
  std::size_t cost = namelen + valuelen + 32;
  s->header_bytes_ += cost;
  if (s->header_bytes_ > std::min(cfg.max_header_bytes, cfg.h2_max_header_list_bytes) ||
      ++s->header_count_ > cfg.max_header_count) {
    s->header_too_large_ = true;
    s->release_head();
    return 0;
  }
  if (self->header_bytes_ + cost > cfg.h2_header_budget_bytes) {
    s->header_refused_ = true;
    s->release_head();
    return 0;
  }
  self->header_bytes_ += cost;
  s->charged_ += cost;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") {
    s->head_.method = std::move(v);
  } else if (n == ":path") {
    s->head_.target = std::move(v);
  } else if (n == ":authority") {
    s->head_.headers.emplace_back("host", std::move(v));
  } else if (!n.empty() && n[0] == ':') {
    // :scheme and others: nothing to keep
  } else {
    s->head_.headers.emplace_back(std::string(n), std::move(v));
  }
  (void)session;
  return 0;
}

int Http2Session::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Http2Session*>(user);
  H2Stream* s = self->find(frame->hd.stream_id);
  if (!s) return 0;
  s->last_progress_ = std::chrono::steady_clock::now();
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    s->head_.headers.shrink_to_fit();  // the head lives as long as the request (a whole stream)
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->in_end_ = true;
    if (s->header_refused_) {
      // The connection holds its budget of headers in other streams: the client may retry later.
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    if (s->header_too_large_) {
      nghttp2_nv nv[] = {{(std::uint8_t*)":status", (std::uint8_t*)"431", 7, 3, NGHTTP2_NV_FLAG_NONE}};
      nghttp2_submit_response(session, s->id_, nv, 1, nullptr);
      return 0;
    }
    auto q = s->head_.target.find('?');
    s->head_.path = s->head_.target.substr(0, q);
    if (q != std::string::npos) s->head_.query = s->head_.target.substr(q + 1);
    self->start_handler(self->streams_[frame->hd.stream_id]);
    return 0;
  }
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    s->in_end_ = true;
    s->io_.pulse();
    if (s->eof_waits_for_request_) s->release_eof();
  }
  return 0;
}

int Http2Session::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                                std::size_t len, void* user) {
  auto* self = static_cast<Http2Session*>(user);
  H2Stream* s = self->find(stream_id);
  if (!s) {
    nghttp2_session_consume_connection(self->session_, len);
    return 0;
  }
  s->last_progress_ = std::chrono::steady_clock::now();
  if (s->handler_done_ || !s->handler_started_) {
    nghttp2_session_consume(self->session_, stream_id, len);
    return 0;
  }
  s->in_.append(reinterpret_cast<const char*>(data), len);
  s->in_unconsumed_ += len;
  s->io_.pulse();
  return 0;
}

int Http2Session::on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t, void* user) {
  auto* self = static_cast<Http2Session*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  auto stream = it->second;
  self->streams_.erase(it);
  // Bytes the handler never read still count against the connection window: return them.
  if (stream->in_unconsumed_ > 0) {
    nghttp2_session_consume_connection(self->session_, stream->in_unconsumed_);
    stream->in_unconsumed_ = 0;
  }
  if (!stream->active()) stream->release_head();  // else when its handler ends
  stream->mark_closed();
  self->last_activity_ = std::chrono::steady_clock::now();
  return 0;
}

bool Http2Session::setup() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 1u << 20);
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const auto& cfg = ctx_.config;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg.h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg.h2_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(
           std::min({cfg.max_header_bytes, cfg.h2_max_header_list_bytes, std::size_t{UINT32_MAX}}))},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(cfg.h2_connection_window));
  return true;
}

void Http2Session::start_handler(const std::shared_ptr<H2Stream>& stream) {
  auto self = shared_from_this();
  stream->handler_started_ = true;
  // Posted, not dispatched: co_spawn would otherwise run the handler inline, inside nghttp2's
  // mem_recv callback, before the rest of the bytes just read (e.g. the DATA frame that ends the
  // request) have been processed.
  asio::post(executor(), [self, stream] { self->spawn_handler(stream); });
}

void Http2Session::spawn_handler(const std::shared_ptr<H2Stream>& stream) {
  auto self = shared_from_this();
  asio::co_spawn(
      executor(),
      [self, stream]() -> asio::awaitable<void> {
        try {
          co_await self->ctx_.handler(*stream);
        } catch (const std::exception& e) {
          log::error("http2", std::string("request handler failed: ") + e.what());
        }
        if (!stream->head_sent() && !stream->closed() && !self->dead()) {
          Headers h{{"content-type", "text/plain; charset=utf-8"}};
          co_await stream->respond(500, std::move(h), std::string("internal error: no response\n"));
        } else {
          co_await stream->finish({});
        }
        // A request body the handler left unread is discarded as it arrives (its window handed
        // back), so the client can finish sending. A RST_STREAM(NO_ERROR) would be allowed here,
        // but clients such as curl report it as a failed transfer.
        stream->handler_done_ = true;
        if (!stream->closed() && !self->dead() && stream->in_unconsumed_ > 0) {
          nghttp2_session_consume(self->raw(), stream->id_, stream->in_unconsumed_);
          stream->in_unconsumed_ = 0;
          self->signal_write();
        }
        stream->in_.clear();
        stream->release_head();
        stream->last_progress_ = std::chrono::steady_clock::now();
        std::string().swap(stream->in_view_);
      },
      asio::detached);
}

bool Http2Session::feed(const char* data, std::size_t n) {
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(data), n);
  signal_write();
  if (rv < 0) {
    log::debug("http2", std::string("protocol error: ") + nghttp2_strerror(static_cast<int>(rv)));
    // nghttp2 returns these without queuing a GOAWAY: queue one, so the client learns why, and
    // let the writer send it before the socket closes (run()).
    auto code = (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                                        : NGHTTP2_PROTOCOL_ERROR;
    if (rv != NGHTTP2_ERR_NOMEM && nghttp2_session_terminate_session(session_, code) == 0) fatal_ = true;
    signal_write();
    return false;
  }
  return true;
}

asio::awaitable<void> Http2Session::reader(std::string initial) {
  if (!initial.empty() && !feed(initial.data(), initial.size())) co_return;
  std::string().swap(initial);  // a parameter lives in the frame for the connection's life
  std::vector<char> buf(64 * 1024);
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = co_await socket_.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    last_activity_ = std::chrono::steady_clock::now();
    if (!feed(buf.data(), n)) co_return;
    // Closing gracefully: read (and drop) until the client closes, so no byte is left unread.
    if (!closing_ && !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) co_return;
  }
}

asio::awaitable<void> Http2Session::writer() {
  std::string out;
  while (!dead_) {
    out.clear();
    for (;;) {
      const std::uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        dead_ = true;
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      if (out.size() >= 128 * 1024) break;
    }
    if (!out.empty()) {
      boost::system::error_code ec;
      co_await asio::async_write(socket_, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      last_activity_ = std::chrono::steady_clock::now();
      continue;
    }
    if (closing_ && !dead_ && !fin_sent_) {
      // Everything queued is out. A stream whose response is complete but whose request the
      // client has not ended is reset (NO_ERROR, RFC 9113 §8.1); once no stream is open, FIN.
      bool reset = false;
      bool open = false;
      for (auto& [id, st] : streams_) {
        if (st->closed()) continue;
        if (!st->active() && !st->shutdown_reset_ && nghttp2_session_get_stream_local_close(session_, id) == 1) {
          st->shutdown_reset_ = true;
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
          reset = true;
        } else {
          open = true;
        }
      }
      if (reset) continue;
      if (!open) {
        fin_sent_ = true;
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
      }
    }
    // Closing gracefully, the writer waits for the reader to see EOF (teardown) — unless a
    // receive error ended the session: then it stops once the GOAWAY is out, as otherwise.
    bool done = !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
    if (dead_ || (done && (!closing_ || fatal_))) break;
    co_await want_write_.wait_pulse();
  }
  dead_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  writer_done_.set();
}

void Http2Session::close_gracefully() {
  if (dead_ || closing_) return;
  closing_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  signal_write();
}

asio::awaitable<void> Http2Session::idle_watchdog() {
  auto period = std::max<std::chrono::milliseconds>(ctx_.config.idle_timeout / 4, std::chrono::milliseconds(10));
  while (!dead_) {
    idle_timer_.expires_after(period);
    boost::system::error_code ec;
    co_await idle_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (dead_) break;
    auto now = std::chrono::steady_clock::now();
    reap_streams(now);
    bool any_active = std::any_of(streams_.begin(), streams_.end(), [](const auto& e) { return e.second->active(); });
    if (!any_active && now - last_activity_ >= ctx_.config.idle_timeout) {
      nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                            NGHTTP2_NO_ERROR, nullptr, 0);
      signal_write();
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_receive, ignored);
      break;
    }
  }
}

// A stream whose handler is not running (it ended, or never started: a refused or incomplete
// request) that saw no frame either way for the idle timeout is reset: a client that never ends a
// stream answered long ago must not hold it (and its slot) for the connection's life.
void Http2Session::reap_streams(std::chrono::steady_clock::time_point now) {
  bool reset = false;
  for (auto& [id, s] : streams_) {
    if (s->active() || s->closed() || now - s->last_progress_ < ctx_.config.idle_timeout) continue;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, s->head_sent() ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    s->last_progress_ = now;  // once
    reset = true;
  }
  if (reset) signal_write();
}

void Http2Session::teardown() {
  dead_ = true;
  signal_write();
  idle_timer_.cancel();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->mark_closed();
}

asio::awaitable<void> Http2Session::run(std::string initial, std::optional<UpgradedRequest> upgraded) {
  if (!setup()) co_return;
  auto self = shared_from_this();
  struct Tracked {
    std::uint64_t id;
    ~Tracked() { untrack_connection(id); }
  } tracked{track_connection(
      [weak = std::weak_ptr<Http2Session>(self)] {
        if (auto s = weak.lock()) s->close_gracefully();
      },
      [weak = std::weak_ptr<Http2Session>(self)] {
        auto s = weak.lock();
        return !s || s->dead_ || (s->fin_sent_ && send_queue_empty(s->socket_.native_handle()));
      })};
  if (upgraded) {
    int rv = nghttp2_session_upgrade2(session_, reinterpret_cast<const std::uint8_t*>(upgraded->settings.data()),
                                      upgraded->settings.size(), upgraded->head.method == "HEAD", nullptr);
    if (rv != 0) co_return;
    auto stream = std::make_shared<H2Stream>(self, 1, executor());
    stream->head_ = std::move(upgraded->head);
    stream->head_.version = 20;
    // Connection-level headers of the HTTP/1.1 request do not apply to the HTTP/2 stream.
    std::erase_if(stream->head_.headers, [](const auto& h) {
      return h.first == "connection" || h.first == "upgrade" || h.first == "http2-settings" ||
             h.first == "transfer-encoding" || h.first == "content-length";
    });
    stream->in_ = std::move(upgraded->body);
    stream->in_end_ = true;
    streams_[1] = stream;
    start_handler(stream);
  }
  asio::co_spawn(
      executor(), [self]() { return self->writer(); }, asio::detached);
  asio::co_spawn(
      executor(), [self]() { return self->idle_watchdog(); }, asio::detached);
  co_await reader(std::move(initial));
  if (fatal_ && !dead_) {
    // Let the writer flush the GOAWAY (bounded: a peer that reads nothing gets the socket closed).
    asio::steady_timer limit(executor(), std::chrono::milliseconds(2000));
    limit.async_wait([self](const boost::system::error_code& ec) {
      if (ec) return;
      boost::system::error_code ignored;
      self->socket_.close(ignored);
    });
    co_await writer_done_.wait();
    limit.cancel();
  }
  teardown();
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_receive, ignored);
}

}  // namespace

asio::awaitable<void> serve_http2(tcp::socket socket, std::string initial, ServerContext& ctx,
                                  std::optional<UpgradedRequest> upgraded) {
  auto session = std::make_shared<Http2Session>(std::move(socket), ctx);
  co_await session->run(std::move(initial), std::move(upgraded));
}

}  // namespace envd::http
