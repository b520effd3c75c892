// envd_bench_client: the native load client and machine baselines of bench/run.py.
//
// One subcommand per measurement; each prints one line of JSON (figures in microseconds, bytes and
// seconds) that the harness reads. The client is single-threaded and does no more work per byte
// than parsing framing (HTTP/1.1 chunks, HTTP/2 frames via nghttp2, Connect envelopes), so on the
// loopback it is never the slower side of a transfer.
//
//   unary     --port P --path PATH --ct TYPE --body FILE [--h2] [--conc N] [--seconds S]
//   stream    --port P --path PATH --ct TYPE --body FILE [--h2] [--repeat K]
//             [--ready STR] [--count STR --until N]     Connect server stream to its end
//   upload    --port P --path PATH --file F [--h2]      POST the file (application/octet-stream)
//   download  --port P --path PATH [--h2]               GET, bytes discarded
//   streams   --port P --path PATH --ct TYPE --body FILE --n N [--h2 --per-conn M] --ready STR
//             open N streams, wait for STR on each, print "ready", hold until stdin closes
//   idle      --port P --n N                            N keep-alive connections after one /health each
//   coldstart --repeat K [--ready] -- BIN ARGS...       exec → first /health 204 (ARGS: {port})
//   exec      --repeat K -- BIN ARGS...                 fork+exec+wait
//   pipe      -- CMD ARGS...                            CMD's stdout through a pipe, 1 MiB reads
//   loopback  --src F --dst F [--runs N]                sendfile → loopback TCP → read/write (best of N)
//
// Not part of envd; built by `scripts/dev bench`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "envd_bench_client: %s: %s\n", what.c_str(), errno ? std::strerror(errno) : "failed");
  std::exit(1);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "envd_bench_client: %s\n", what.c_str());
  std::exit(1);
}

double since_us(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

double mono_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string read_file(const std::string& path) {
  if (path.empty()) return {};
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) die(path);
  std::string out;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// ---- options ----

struct Options {
  int port = 0;
  std::string path, ct, body_file, file, src, dst, ready, count;
  bool h2 = false, ready_notify = false;
  int conc = 1, repeat = 1, runs = 5, n = 1, per_conn = 100;
  long long until = 0;
  double seconds = 1.0;
  std::vector<std::string> headers;
  std::vector<std::string> argv;  // after "--"
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail("missing value for " + a);
      return argv[++i];
    };
    if (a == "--") {
      for (++i; i < argc; ++i) o.argv.push_back(argv[i]);
      break;
    } else if (a == "--port")
      o.port = std::stoi(next());
    else if (a == "--path")
      o.path = next();
    else if (a == "--ct")
      o.ct = next();
    else if (a == "--body")
      o.body_file = next();
    else if (a == "--file")
      o.file = next();
    else if (a == "--src")
      o.src = next();
    else if (a == "--dst")
      o.dst = next();
    else if (a == "--ready") {
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
        o.ready = next();
      else
        o.ready_notify = true;
    } else if (a == "--count")
      o.count = next();
    else if (a == "--until")
      o.until = std::stoll(next());
    else if (a == "--h2")
      o.h2 = true;
    else if (a == "--conc")
      o.conc = std::stoi(next());
    else if (a == "--repeat")
      o.repeat = std::stoi(next());
    else if (a == "--runs")
      o.runs = std::stoi(next());
    else if (a == "--n")
      o.n = std::stoi(next());
    else if (a == "--per-conn")
      o.per_conn = std::stoi(next());
    else if (a == "--seconds")
      o.seconds = std::stod(next());
    else if (a == "--header")
      o.headers.push_back(next());
    else
      fail("unknown option " + a);
  }
  return o;
}

// ---- sockets ----

int connect_loopback(int port, bool nonblocking = false) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---- Connect envelopes: counts messages, finds substrings, notes the end-of-stream message ----

struct EnvelopeReader {
  std::string ready, count;  // substrings looked for in each message (empty: none)
  bool keep = false;         // buffer whole messages (only when a substring is looked for)
  unsigned char head[5]{};
  std::size_t head_len = 0;
  std::size_t remaining = 0;
  bool in_end = false;
  std::string msg, end_msg;
  long long messages = 0, counted = 0;
  bool saw_ready = false, saw_end = false;
  std::function<void()> on_ready, on_count;

  void feed(const char* p, std::size_t n) {
    while (n > 0) {
      if (head_len < 5) {
        std::size_t take = std::min<std::size_t>(5 - head_len, n);
        std::memcpy(head + head_len, p, take);
        head_len += take;
        p += take;
        n -= take;
        if (head_len == 5) {
          remaining =
              (std::size_t(head[1]) << 24) | (std::size_t(head[2]) << 16) | (std::size_t(head[3]) << 8) | head[4];
          in_end = (head[0] & 0x02) != 0;
          msg.clear();
          if (remaining == 0) finish();
        }
        continue;
      }
      std::size_t take = std::min(remaining, n);
      if (keep || in_end) msg.append(p, take);
      p += take;
      n -= take;
      remaining -= take;
      if (remaining == 0) finish();
    }
  }

  void finish() {
    head_len = 0;
    if (in_end) {
      saw_end = true;
      end_msg = msg;
      return;
    }
    ++messages;
    if (!ready.empty() && !saw_ready && msg.find(ready) != std::string::npos) {
      saw_ready = true;
      if (on_ready) on_ready();
    }
    if (!count.empty()) {
      for (std::size_t at = msg.find(count); at != std::string::npos; at = msg.find(count, at + count.size()))
        ++counted;
      if (on_count) on_count();
    }
  }
};

// ---- HTTP/1.1 response parser (Content-Length, chunked, or to close) ----

struct H1Response {
  enum class St { Head, Body, ChunkSize, ChunkData, ChunkCrlf, Trailers, Done } st = St::Head;
  std::string line;  // head or current chunk-size / trailer line
  int status = 0;
  bool chunked = false;
  long long length = -1, left = 0, body_bytes = 0;
  std::function<void(const char*, std::size_t)> on_body;

  void reset() {
    st = St::Head;
    line.clear();
    status = 0;
    chunked = false;
    length = -1;
    left = 0;
    body_bytes = 0;
  }
  bool done() const { return st == St::Done; }

  void body(const char* p, std::size_t n) {
    body_bytes += static_cast<long long>(n);
    if (on_body) on_body(p, n);
  }

  // Returns bytes consumed (stops at the end of this response).
  std::size_t feed(const char* p, std::size_t n) {
    std::size_t used = 0;
    while (used < n && st != St::Done) {
      const char* q = p + used;
      std::size_t avail = n - used;
      switch (st) {
        case St::Head: {
          std::size_t before = line.size();
          line.append(q, avail);
          std::size_t end = line.find("\r\n\r\n");
          if (end == std::string::npos) {
            used += avail;
            break;
          }
          used += end + 4 - before;
          line.resize(end + 2);
          parse_head();
          line.clear();
          break;
        }
        case St::Body: {
          std::size_t take = length < 0 ? avail : std::min<std::size_t>(avail, static_cast<std::size_t>(left));
          body(q, take);
          used += take;
          if (length >= 0) {
            left -= static_cast<long long>(take);
            if (left == 0) st = St::Done;
          }
          break;
        }
        case St::ChunkSize:
        case St::Trailers: {
          const char* nl = static_cast<const char*>(std::memchr(q, '\n', avail));
          if (!nl) {
            line.append(q, avail);
            used += avail;
            break;
          }
          line.append(q, static_cast<std::size_t>(nl - q));
          used += static_cast<std::size_t>(nl - q) + 1;
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (st == St::ChunkSize) {
            left = std::strtoll(line.c_str(), nullptr, 16);
            st = left == 0 ? St::Trailers : St::ChunkData;
          } else if (line.empty()) {
            st = St::Done;
          }
          line.clear();
          break;
        }
        case St::ChunkData: {
          std::size_t take = std::min<std::size_t>(avail, static_cast<std::size_t>(left));
          body(q, take);
          used += take;
          left -= static_cast<long long>(take);
          if (left == 0) st = St::ChunkCrlf;
          break;
        }
        case St::ChunkCrlf: {
          const char* nl = static_cast<const char*>(std::memchr(q, '\n', avail));
          if (!nl) {
            used += avail;
            break;
          }
          used += static_cast<std::size_t>(nl - q) + 1;
          st = St::ChunkSize;
          break;
        }
        case St::Done: break;
      }
    }
    return used;
  }

  void parse_head() {
    if (line.size() < 12) fail("bad status line");
    status = std::atoi(line.c_str() + 9);
    std::size_t at = line.find("\r\n");
    while (at != std::string::npos && at + 2 < line.size()) {
      std::size_t end = line.find("\r\n", at + 2);
      std::string h = line.substr(at + 2, end - at - 2);
      std::string lower = h;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      if (lower.rfind("content-length:", 0) == 0) length = std::atoll(h.c_str() + 15);
      if (lower.rfind("transfer-encoding:", 0) == 0 && lower.find("chunked") != std::string::npos) chunked = true;
      at = end;
    }
    if (status == 204 || status == 304) length = 0;
    if (chunked) {
      st = St::ChunkSize;
    } else {
      st = St::Body;
      left = length;
      if (length == 0) st = St::Done;
    }
  }
};

std::string h1_request(const Options& o, const char* method, std::size_t body_len, bool with_body_headers = true) {
  std::string r =
      std::string(method) + " " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(o.port) + "\r\n";
  if (with_body_headers) {
    if (!o.ct.empty()) r += "Content-Type: " + o.ct + "\r\n";
    r += "Content-Length: " + std::to_string(body_len) + "\r\n";
  }
  for (const auto& h : o.headers) r += h + "\r\n";
  r += "\r\n";
  return r;
}

// Reads one response on a blocking socket; `rest` keeps bytes read past it (pipelining never used,
// but a server may send nothing else). Returns false when the connection closed first.
bool h1_read_response(int fd, H1Response& resp, std::vector<char>& buf) {
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read");
    if (r == 0) {
      if (resp.st == H1Response::St::Body && resp.length < 0) resp.st = H1Response::St::Done;
      return resp.done();
    }
    resp.feed(buf.data(), static_cast<std::size_t>(r));
    if (resp.done()) return true;
  }
}

// ---- HTTP/2 (h2c prior knowledge) client over nghttp2 ----

struct H2Stream {
  int32_t id = 0;
  int status = 0;
  bool closed = false;
  uint32_t error = 0;
  long long body_bytes = 0;
  Clock::time_point t0;
  // request body: memory or file
  const std::string* mem = nullptr;
  std::size_t mem_off = 0;
  int file_fd = -1;
  long long file_left = 0;
  EnvelopeReader* env = nullptr;
  std::function<void(H2Stream&)> on_close;
};

struct H2Conn {
  int fd = -1;
  nghttp2_session* s = nullptr;
  std::map<int32_t, std::unique_ptr<H2Stream>> streams;
  std::vector<char> rbuf = std::vector<char>(1 << 20);
  int port = 0;

  explicit H2Conn(int port_) : port(port_) {
    fd = connect_loopback(port);
    if (fd < 0) die("connect");
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb,
        [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value, size_t,
           uint8_t, void* u) -> int {
          auto* c = static_cast<H2Conn*>(u);
          if (f->hd.type == NGHTTP2_HEADERS && namelen == 7 && std::memcmp(name, ":status", 7) == 0) {
            auto it = c->streams.find(f->hd.stream_id);
            if (it != c->streams.end()) it->second->status = std::atoi(reinterpret_cast<const char*>(value));
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* u) -> int {
          auto* c = static_cast<H2Conn*>(u);
          auto it = c->streams.find(id);
          if (it != c->streams.end()) {
            it->second->body_bytes += static_cast<long long>(len);
            if (it->second->env) it->second->env->feed(reinterpret_cast<const char*>(data), len);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t id, uint32_t err, void* u) -> int {
          auto* c = static_cast<H2Conn*>(u);
          auto it = c->streams.find(id);
          if (it != c->streams.end()) {
            it->second->closed = true;
            it->second->error = err;
            if (it->second->on_close) it->second->on_close(*it->second);
          }
          return 0;
        });
    nghttp2_session_client_new(&s, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20},
                                   {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  }
  ~H2Conn() {
    nghttp2_session_del(s);
    if (fd >= 0) ::close(fd);
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* src, void*) {
    auto* st = static_cast<H2Stream*>(src->ptr);
    if (st->mem) {
      std::size_t n = std::min(length, st->mem->size() - st->mem_off);
      std::memcpy(buf, st->mem->data() + st->mem_off, n);
      st->mem_off += n;
      if (st->mem_off == st->mem->size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    std::size_t want = static_cast<std::size_t>(std::min<long long>(static_cast<long long>(length), st->file_left));
    ssize_t n = ::read(st->file_fd, buf, want);
    if (n < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->file_left -= n;
    if (st->file_left == 0 || n == 0) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return n;
  }

  H2Stream* submit(const Options& o, const char* method, const std::string* body, int file_fd = -1,
                   long long file_len = 0) {
    auto st = std::make_unique<H2Stream>();
    std::string authority = "127.0.0.1:" + std::to_string(port);
    std::vector<std::pair<std::string, std::string>> hs = {
        {":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", o.path}};
    if (!o.ct.empty()) hs.emplace_back("content-type", o.ct);
    for (const auto& h : o.headers) {
      auto colon = h.find(':');
      std::string name = h.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value[0] == ' ') value.erase(0, 1);
      hs.emplace_back(name, value);
    }
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : hs)
      nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    nghttp2_data_provider dp{};
    nghttp2_data_provider* dpp = nullptr;
    if (body || file_fd >= 0) {
      st->mem = body;
      st->file_fd = file_fd;
      st->file_left = file_len;
      dp.source.ptr = st.get();
      dp.read_callback = &H2Conn::read_body;
      dpp = &dp;
    }
    st->t0 = Clock::now();
    int32_t id = nghttp2_submit_request(s, nullptr, nva.data(), nva.size(), dpp, nullptr);
    if (id < 0) fail(std::string("nghttp2_submit_request: ") + nghttp2_strerror(id));
    st->id = id;
    H2Stream* raw = st.get();
    streams[id] = std::move(st);
    return raw;
  }

  void flush() {
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(s, &data);
      if (n < 0) fail(std::string("nghttp2_session_mem_send: ") + nghttp2_strerror(static_cast<int>(n)));
      if (n == 0) return;
      write_all(fd, reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
  }

  // Sends what is pending, then reads once (blocking) and feeds nghttp2.
  void pump() {
    flush();
    ssize_t r;
    do r = ::read(fd, rbuf.data(), rbuf.size());
    while (r < 0 && errno == EINTR);
    if (r < 0) die("read");
    if (r == 0) fail("h2 connection closed by the server");
    ssize_t used =
        nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(rbuf.data()), static_cast<std::size_t>(r));
    if (used < 0) fail(std::string("nghttp2_session_mem_recv: ") + nghttp2_strerror(static_cast<int>(used)));
  }

  void erase(int32_t id) { streams.erase(id); }
};

// ---- statistics ----

std::string json_list(std::vector<double> v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out + "]";
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ---- unary ----

int cmd_unary(const Options& o) {
  std::string body = read_file(o.body_file);
  std::vector<double> lat;
  lat.reserve(1 << 20);
  long long done = 0, errors = 0;
  auto t_start = Clock::now();
  auto deadline = t_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  if (o.h2) {
    H2Conn c(o.port);
    int inflight = 0;
    bool stop = false;
    std::function<void()> launch = [&] {
      H2Stream* st = c.submit(o, "POST", &body);
      st->on_close = [&](H2Stream& s) {
        --inflight;
        ++done;
        lat.push_back(since_us(s.t0));
        if (s.status != 200 || s.error != 0) ++errors;
      };
      ++inflight;
    };
    for (;;) {
      if (!stop && Clock::now() >= deadline) stop = true;
      if (stop && inflight == 0) break;
      while (!stop && inflight < o.conc) launch();
      c.pump();
      for (auto it = c.streams.begin(); it != c.streams.end();)
        it = it->second->closed ? c.streams.erase(it) : std::next(it);
    }
  } else {
    std::string req = h1_request(o, "POST", body.size()) + body;
    struct Conn {
      int fd;
      H1Response resp;
      Clock::time_point t0;
    };
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<Conn> conns(static_cast<std::size_t>(o.conc));
    for (std::size_t i = 0; i < conns.size(); ++i) {
      conns[i].fd = connect_loopback(o.port);
      if (conns[i].fd < 0) die("connect");
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
      conns[i].t0 = Clock::now();
      write_all(conns[i].fd, req.data(), req.size());
    }
    int inflight = o.conc;
    bool stop = false;
    std::vector<char> buf(1 << 16);
    std::vector<epoll_event> evs(static_cast<std::size_t>(o.conc));
    while (inflight > 0) {
      int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 5000);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("unary: no response within 5 s");
      if (!stop && Clock::now() >= deadline) stop = true;
      for (int k = 0; k < n; ++k) {
        Conn& c = conns[evs[k].data.u64];
        ssize_t r = ::read(c.fd, buf.data(), buf.size());
        if (r <= 0) fail("unary: connection closed");
        c.resp.feed(buf.data(), static_cast<std::size_t>(r));
        if (!c.resp.done()) continue;
        ++done;
        lat.push_back(since_us(c.t0));
        if (c.resp.status != 200) ++errors;
        c.resp.reset();
        if (stop) {
          --inflight;
          continue;
        }
        c.t0 = Clock::now();
        write_all(c.fd, req.data(), req.size());
      }
    }
    for (auto& c : conns) ::close(c.fd);
    ::close(ep);
  }
  double secs = since_us(t_start) / 1e6;
  std::printf("{\"requests\":%lld,\"errors\":%lld,\"seconds\":%.6f,\"rps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
              done, errors, secs, static_cast<double>(done) / secs, percentile(lat, 0.5), percentile(lat, 0.99));
  return errors ? 1 : 0;
}

// ---- stream ----

int cmd_stream(const Options& o) {
  std::string body = read_file(o.body_file);
  std::vector<double> times;
  long long bytes = 0, messages = 0, counted = 0;
  double t_ready = -1, t_until = -1, ready_us = -1;
  bool all_ended = true;
  std::string end_msg;
  auto setup = [&](EnvelopeReader& env) {
    env.ready = o.ready;
    env.count = o.count;
    env.keep = !o.ready.empty() || !o.count.empty();
  };
  std::unique_ptr<H2Conn> h2;
  int fd = -1;
  std::vector<char> buf(1 << 20);
  if (o.h2)
    h2 = std::make_unique<H2Conn>(o.port);
  else if ((fd = connect_loopback(o.port)) < 0)
    die("connect");
  for (int i = 0; i < o.repeat; ++i) {
    EnvelopeReader env;
    setup(env);
    auto t0 = Clock::now();
    bool stop_early = false;
    env.on_ready = [&] {
      t_ready = mono_seconds();
      ready_us = since_us(t0);
      std::printf("ready %.6f\n", t_ready);
      std::fflush(stdout);
      // With nothing to count, the stream is done once ready (e.g. a watch armed).
      if (o.count.empty()) stop_early = true;
    };
    env.on_count = [&] {
      if (o.until > 0 && env.counted >= o.until && t_until < 0) {
        t_until = mono_seconds();
        stop_early = true;
      }
    };
    long long got = 0;
    if (o.h2) {
      H2Stream* st = h2->submit(o, "POST", &body);
      st->env = &env;
      while (!st->closed && !stop_early) h2->pump();
      got = st->body_bytes;
      if (st->status != 200) fail("stream: HTTP status " + std::to_string(st->status));
      h2->erase(st->id);
    } else {
      std::string req = h1_request(o, "POST", body.size()) + body;
      write_all(fd, req.data(), req.size());
      H1Response resp;
      resp.on_body = [&](const char* p, std::size_t n) { env.feed(p, n); };
      for (;;) {
        ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        resp.feed(buf.data(), static_cast<std::size_t>(r));
        if (resp.done() || stop_early) break;
      }
      if (resp.status != 200) fail("stream: HTTP status " + std::to_string(resp.status));
      got = resp.body_bytes;
    }
    times.push_back(since_us(t0));
    bytes += got;
    messages += env.messages;
    counted += env.counted;
    if (!env.saw_end && !stop_early) all_ended = false;
    if (env.saw_end) end_msg = env.end_msg;
    if (stop_early) break;
  }
  if (fd >= 0) ::close(fd);
  for (auto& c : end_msg)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
  std::printf(
      "{\"times_us\":%s,\"bytes\":%lld,\"messages\":%lld,\"counted\":%lld,\"ended\":%s,\"end\":\"%s\",\"ready_us\":%."
      "1f,"
      "\"t_ready\":%.6f,\"t_until\":%.6f}\n",
      json_list(times).c_str(), bytes, messages, counted, all_ended ? "true" : "false", end_msg.substr(0, 200).c_str(),
      ready_us, t_ready, t_until);
  return 0;
}

// ---- upload / download ----

int cmd_transfer(const Options& o, bool upload) {
  int ffd = -1;
  long long size = 0;
  if (upload) {
    ffd = ::open(o.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (ffd < 0) die(o.file);
    struct stat st {};
    ::fstat(ffd, &st);
    size = st.st_size;
  }
  auto t0 = Clock::now();
  long long got = 0;
  int status = 0;
  if (o.h2) {
    H2Conn c(o.port);
    Options oo = o;
    if (upload) oo.ct = "application/octet-stream";
    H2Stream* st = upload ? c.submit(oo, "POST", nullptr, ffd, size) : c.submit(oo, "GET", nullptr);
    while (!st->closed) c.pump();
    got = st->body_bytes;
    status = st->status;
  } else {
    int fd = connect_loopback(o.port);
    if (fd < 0) die("connect");
    Options oo = o;
    std::string req;
    if (upload) {
      oo.ct = "application/octet-stream";
      req = h1_request(oo, "POST", static_cast<std::size_t>(size));
      write_all(fd, req.data(), req.size());
      off_t off = 0;
      while (off < size) {
        ssize_t n = ::sendfile(fd, ffd, &off, static_cast<std::size_t>(size - off));
        if (n <= 0) die("sendfile");
      }
    } else {
      oo.ct.clear();
      req = h1_request(oo, "GET", 0, false);
      write_all(fd, req.data(), req.size());
    }
    H1Response resp;
    std::vector<char> buf(1 << 20);
    if (!h1_read_response(fd, resp, buf)) fail("transfer: connection closed early");
    got = resp.body_bytes;
    status = resp.status;
    ::close(fd);
  }
  double secs = since_us(t0) / 1e6;
  if (ffd >= 0) ::close(ffd);
  std::printf("{\"seconds\":%.6f,\"bytes\":%lld,\"status\":%d}\n", secs, upload ? size : got, status);
  return status == 200 ? 0 : 1;
}

// ---- many streams / idle connections: held until stdin closes ----

void wait_stdin_eof() {
  char c[64];
  while (::read(0, c, sizeof c) > 0) {
  }
}

int cmd_streams(const Options& o) {
  std::string body = read_file(o.body_file);
  int ok = 0;
  std::vector<int> fds;
  std::vector<std::unique_ptr<H2Conn>> h2s;
  std::vector<std::unique_ptr<EnvelopeReader>> envs;
  auto t0 = Clock::now();
  if (o.h2) {
    for (int first = 0; first < o.n; first += o.per_conn) {
      auto c = std::make_unique<H2Conn>(o.port);
      int count = std::min(o.per_conn, o.n - first);
      std::vector<H2Stream*> sts;
      for (int i = 0; i < count; ++i) {
        auto env = std::make_unique<EnvelopeReader>();
        env->ready = o.ready;
        env->keep = true;
        H2Stream* st = c->submit(o, "POST", &body);
        st->env = env.get();
        envs.push_back(std::move(env));
        sts.push_back(st);
      }
      auto ready_count = [&] {
        int r = 0;
        for (auto* st : sts) r += st->env->saw_ready || st->closed;
        return r;
      };
      while (ready_count() < count) c->pump();
      for (auto* st : sts) ok += st->env->saw_ready && !st->closed;
      h2s.push_back(std::move(c));
    }
  } else {
    std::string req = h1_request(o, "POST", body.size()) + body;
    for (int i = 0; i < o.n; ++i) {
      int fd = connect_loopback(o.port);
      if (fd < 0) die("connect");
      write_all(fd, req.data(), req.size());
      fds.push_back(fd);
    }
    std::vector<char> buf(1 << 16);
    for (int fd : fds) {
      EnvelopeReader env;
      env.ready = o.ready;
      env.keep = true;
      H1Response resp;
      resp.on_body = [&](const char* p, std::size_t n) { env.feed(p, n); };
      while (!env.saw_ready && !resp.done()) {
        ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r <= 0) break;
        resp.feed(buf.data(), static_cast<std::size_t>(r));
      }
      ok += env.saw_ready;
    }
  }
  std::printf("{\"ready\":%d,\"seconds\":%.6f}\n", ok, since_us(t0) / 1e6);
  std::fflush(stdout);
  wait_stdin_eof();
  for (int fd : fds) ::close(fd);
  return 0;
}

int cmd_idle(const Options& o) {
  std::vector<int> fds;
  std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  std::vector<char> buf(4096);
  int ok = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < o.n; ++i) {
    int fd = connect_loopback(o.port);
    if (fd < 0) die("connect");
    write_all(fd, req.data(), req.size());
    H1Response resp;
    if (h1_read_response(fd, resp, buf) && resp.status / 100 == 2) ++ok;
    fds.push_back(fd);
  }
  std::printf("{\"ready\":%d,\"seconds\":%.6f}\n", ok, since_us(t0) / 1e6);
  std::fflush(stdout);
  wait_stdin_eof();
  for (int fd : fds) ::close(fd);
  return 0;
}

// ---- process start-up ----

pid_t spawn(const std::vector<std::string>& args, int port, const char* notify_socket, int stdout_fd = -1) {
  std::vector<std::string> a = args;
  for (auto& s : a) {
    auto at = s.find("{port}");
    if (at != std::string::npos) s.replace(at, 6, std::to_string(port));
  }
  std::vector<char*> av;
  for (auto& s : a) av.push_back(s.data());
  av.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (notify_socket)
      ::setenv("NOTIFY_SOCKET", notify_socket, 1);
    else
      ::unsetenv("NOTIFY_SOCKET");
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(stdout_fd >= 0 ? stdout_fd : devnull, 1);
    ::dup2(devnull, 2);
    ::execv(av[0], av.data());
    ::_exit(127);
  }
  return pid;
}

void sleep_until(Clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

// One /health attempt: true once it answered 204.
bool health_204(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::write(fd, req, sizeof req - 1) != static_cast<ssize_t>(sizeof req - 1)) {
    ::close(fd);
    return false;
  }
  pollfd p{fd, POLLIN, 0};
  char buf[512];
  bool ok = false;
  if (::poll(&p, 1, 2000) == 1) {
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ok = n >= 12 && std::memcmp(buf + 9, "204", 3) == 0;
  }
  ::close(fd);
  return ok;
}

int cmd_coldstart(const Options& o) {
  std::vector<double> us;
  bool supported = true;
  for (int i = 0; i < o.repeat; ++i) {
    int port = free_port();
    int nfd = -1;
    std::string npath;
    if (o.ready_notify) {
      npath = "/tmp/envd-bench-notify-" + std::to_string(::getpid()) + ".sock";
      ::unlink(npath.c_str());
      nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, npath.c_str(), sizeof a.sun_path - 1);
      if (::bind(nfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind notify socket");
    }
    auto t0 = Clock::now();
    pid_t pid = spawn(o.argv, port, o.ready_notify ? npath.c_str() : nullptr);
    double t = -1;
    if (o.ready_notify) {
      auto deadline = t0 + std::chrono::seconds(3);
      char buf[4096];
      for (;;) {
        int left =
            static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
        if (left <= 0) break;
        pollfd p{nfd, POLLIN, 0};
        if (::poll(&p, 1, left) != 1) break;
        ssize_t n = ::recv(nfd, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = 0;
        if (std::strstr(buf, "READY=1")) {
          t = since_us(t0);
          break;
        }
      }
      ::close(nfd);
      ::unlink(npath.c_str());
      if (t < 0) supported = false;
    } else {
      auto tick = t0;
      auto deadline = t0 + std::chrono::seconds(10);
      while (Clock::now() < deadline) {
        if (health_204(port)) {
          t = since_us(t0);
          break;
        }
        tick += std::chrono::microseconds(200);
        sleep_until(tick);
      }
      if (t < 0) fail("coldstart: no /health 204 within 10 s");
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (!supported) break;
    us.push_back(t);
  }
  if (!supported) {
    std::printf("{\"supported\":false}\n");
    return 0;
  }
  std::printf("{\"supported\":true,\"us\":%s,\"median_us\":%.1f}\n", json_list(us).c_str(), percentile(us, 0.5));
  return 0;
}

int cmd_exec(const Options& o) {
  std::vector<double> us;
  for (int i = 0; i < o.repeat; ++i) {
    auto t0 = Clock::now();
    pid_t pid = spawn(o.argv, 0, nullptr);
    int status = 0;
    ::waitpid(pid, &status, 0);
    us.push_back(since_us(t0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("exec: " + o.argv[0] + " failed");
  }
  std::printf("{\"us\":%s,\"median_us\":%.1f}\n", json_list(us).c_str(), percentile(us, 0.5));
  return 0;
}

int cmd_pipe(const Options& o) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) die("pipe");
  auto t0 = Clock::now();
  pid_t pid = spawn(o.argv, 0, nullptr, p[1]);
  ::close(p[1]);
  std::vector<char> buf(1 << 20);
  long long bytes = 0;
  for (;;) {
    ssize_t n = ::read(p[0], buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes += n;
  }
  ::waitpid(pid, nullptr, 0);
  double secs = since_us(t0) / 1e6;
  ::close(p[0]);
  std::printf("{\"seconds\":%.6f,\"bytes\":%lld}\n", secs, bytes);
  return 0;
}

// ---- loopback floor: sendfile → TCP loopback → read/write with 1 MiB buffers ----

double loopback_once(const char* src, const char* dst) {
  int lst = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lst < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(lst, 1) != 0) die("listen");
  socklen_t len = sizeof addr;
  ::getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len);
  int in = ::open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) die(src);
  struct stat st {};
  ::fstat(in, &st);
  int out = ::open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) die(dst);
  auto t0 = Clock::now();
  std::thread sender([&] {
    int c = ::accept4(lst, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) die("accept");
    off_t off = 0;
    while (off < st.st_size) {
      ssize_t n = ::sendfile(c, in, &off, static_cast<std::size_t>(st.st_size - off));
      if (n <= 0) die("sendfile");
    }
    ::close(c);
  });
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(s, buf.data(), buf.size());
    if (n < 0) die("read");
    if (n == 0) break;
    write_all(out, buf.data(), static_cast<std::size_t>(n));
  }
  sender.join();
  double secs = since_us(t0) / 1e6;
  ::close(s);
  ::close(in);
  ::close(out);
  ::close(lst);
  return secs;
}

int cmd_loopback(const Options& o) {
  std::vector<double> secs;
  for (int i = 0; i < o.runs; ++i) secs.push_back(loopback_once(o.src.c_str(), o.dst.c_str()));
  struct stat st {};
  ::stat(o.src.c_str(), &st);
  std::printf("{\"best_seconds\":%.6f,\"seconds\":%s,\"bytes\":%lld}\n", *std::min_element(secs.begin(), secs.end()),
              json_list(secs).c_str(), static_cast<long long>(st.st_size));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s unary|stream|upload|download|streams|idle|coldstart|exec|pipe|loopback ...\n",
                 argv[0]);
    return 2;
  }
  std::string cmd = argv[1];
  Options o = parse(argc, argv);
  if (cmd == "unary") return cmd_unary(o);
  if (cmd == "stream") return cmd_stream(o);
  if (cmd == "upload") return cmd_transfer(o, true);
  if (cmd == "download") return cmd_transfer(o, false);
  if (cmd == "streams") return cmd_streams(o);
  if (cmd == "idle") return cmd_idle(o);
  if (cmd == "coldstart") return cmd_coldstart(o);
  if (cmd == "exec") return cmd_exec(o);
  if (cmd == "pipe") return cmd_pipe(o);
  if (cmd == "loopback") return cmd_loopback(o);
  fail("unknown command " + cmd);
}
