#include "process/process.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "envd/log.h"
#include "envd/os_error.h"
#include "pty/pty.h"

namespace envd::process {

namespace {
using asio::posix::stream_descriptor;

std::unique_ptr<stream_descriptor> adopt(const asio::any_io_executor& ex, int fd) {
  if (fd < 0) return nullptr;
  return std::make_unique<stream_descriptor>(ex, fd);
}
}  // namespace

Process::Process(const asio::any_io_executor& ex, ProcessTable& table, Options opts, const ProcessLimits& limits)
    : ex_(ex),
      table_(table),
      opts_(std::move(opts)),
      limits_(limits),
      stdin_space_(ex),
      fanout_(ex, limits.fanout),
      started_(ex),
      deadline_timer_(ex) {}

Process::~Process() = default;

std::shared_ptr<Process> Process::launch(const asio::any_io_executor& ex, ProcessTable& table, SpawnedChild child,
                                         int pty_master, Options opts, const ProcessLimits& limits) {
  std::shared_ptr<Process> p(new Process(ex, table, std::move(opts), limits));
  p->pid_ = child.pid;
  p->retains_output_ = p->opts_.ring != nullptr;  // output retention (issue 13)
  p->pidfd_ = adopt(ex, child.pidfd);
  p->status_fd_ = adopt(ex, child.status_fd);
  auto add_reader = [&](int fd, OutputStream stream) {
    if (fd < 0) return;
    auto r = std::make_unique<OutputReader>(ex);
    r->fd = adopt(ex, fd);
    r->stream = stream;
    p->readers_.push_back(std::move(r));
  };
  if (pty_master >= 0) {
    // Input goes through a duplicate of the master so that reads and writes wait independently.
    int in = ::fcntl(pty_master, F_DUPFD_CLOEXEC, 3);
    add_reader(pty_master, OutputStream::pty_stream);
    p->input_ = adopt(ex, in);
  } else {
    add_reader(child.stdout_fd, OutputStream::stdout_stream);
    add_reader(child.stderr_fd, OutputStream::stderr_stream);
    p->input_ = adopt(ex, child.stdin_fd);
  }
  if (!p->input_) p->input_closed_ = true;
  return p;
}

void Process::begin() {
  // co_spawn dispatches: run() may start reading output right here, so callers subscribe first.
  asio::co_spawn(ex_, run_process(shared_from_this()), asio::detached);
}

asio::awaitable<void> Process::run_process(std::shared_ptr<Process> self) { co_await self->run(); }

asio::awaitable<void> Process::wait_started() {
  if (!started_.is_set()) co_await started_.wait();
}

asio::awaitable<void> Process::run() {
  // The Start deadline counts from the spawn: a child that never gets to exec (or never reports
  // it) is killed on time like any other.
  if (opts_.deadline) {
    deadline_timer_.expires_at(*opts_.deadline);
    deadline_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->reaped_) self->deadline_reached();
    });
  }
  // 1. Did the child reach exec? Its status pipe closes on exec; a record means set-up failed.
  ChildFailure failure;
  int st = -1;
  while (status_fd_) {
    st = read_child_status(status_fd_->native_handle(), failure);
    if (st >= 0) break;
    boost::system::error_code ec;
    co_await status_fd_->async_wait(stream_descriptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));
  }
  status_fd_.reset();
  if (st == 1) {
    start_error_ = opts_.start_error_prefix + ": " + describe_child_failure(failure, opts_.cwd);
    // The child exits right after reporting; reaping it cannot block for long.
    ::kill(pid_, SIGKILL);
    int ws = 0;
    while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    if (!opts_.cgroup.empty()) CgroupManager::release_group(opts_.cgroup_releaser, opts_.cgroup);
    deadline_timer_.cancel();
    readers_.clear();
    input_.reset();
    pidfd_.reset();
    started_.set();
    co_return;
  }

  // 2. Registered from now on: List, Connect, SendInput... see it.
  table_.add(shared_from_this());
  started_.set();
  for (auto& r : readers_) pump_output(shared_from_this(), r.get());
  // Reaping is a callback chain on the pidfd, not a coroutine: no frame for the process's life.
  wait_exit(shared_from_this());
}

void Process::deadline_reached() {
  // Contract §4.2: Connect-Timeout-Ms on Start is the process lifetime. envd kills the leader
  // only; we kill the whole group so nothing it started survives (E2B#1031).
  timed_out_ = true;
  log::debug("process", "pid " + std::to_string(pid_) + " reached its Start timeout: killing its group");
  kill_group(SIGKILL);
}

void Process::kill_group(int sig) {
  if (::kill(-pid_, sig) != 0 && errno == ESRCH) ::kill(pid_, sig);
}

// Reads one output pipe (or the PTY master) as a callback chain: on while there is data and the
// fan-out takes it; otherwise wait for readability or for room. No coroutine frame per pipe.
void Process::pump_output(const std::shared_ptr<Process>& self, OutputReader* r) {
  for (;;) {
    ChunkRef c = Chunk::acquire();
    ssize_t n = ::read(r->fd->native_handle(), c->data(), Chunk::kCapacity);
    if (n > 0) {
      c->size = static_cast<std::size_t>(n);
      c->stream = r->stream;
      if (c->size < Chunk::kSmall) c = Chunk::copy_of(c->data(), c->size, r->stream);
      c->offset = r->written;
      r->written += c->size;
      // Into the ring before the fan-out: a Connect that subscribes now finds every byte up to
      // here in the ring and every later one in its queue (issue 13, no gap, no duplicate).
      // After the end the fan-out discards what background children still write; so does the ring.
      if (self->opts_.ring && !self->end_) self->opts_.ring->append(r->stream, c->data(), c->size);
      if (r->drain_pending) r->drain_remaining -= std::min(r->drain_remaining, c->size);
      r->in_publish = true;
      bool go_on = self->fanout_.offer(std::move(c), r->room, [self, r] {
        r->in_publish = false;
        self->check_drained(*r);
        pump_output(self, r);
      });
      if (!go_on) return;
      r->in_publish = false;
      self->check_drained(*r);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      c = ChunkRef();  // don't hold a buffer while idle
      if (r->drain_pending) {
        r->drain_remaining = 0;
        self->check_drained(*r);
      }
      r->fd->async_wait(stream_descriptor::wait_read, [self, r](const boost::system::error_code& ec) {
        if ((ec && ec != asio::error::operation_aborted) || !r->fd->is_open()) return finish_output(self, r);
        pump_output(self, r);
      });
      return;
    }
    break;  // EOF, or EIO on a PTY master whose slave side is gone
  }
  finish_output(self, r);
}

// Kept open until EOF even after the end event: a background child that still logs to the pipe
// never gets EPIPE/SIGPIPE ("end does not hang on background children").
void Process::finish_output(const std::shared_ptr<Process>& self, OutputReader* r) {
  r->eof = true;
  self->check_drained(*r);
  boost::system::error_code ignored;
  r->fd->close(ignored);
}

void Process::check_drained(OutputReader& r) {
  if (r.drain_pending && (r.eof || (r.drain_remaining == 0 && !r.in_publish))) {
    r.drain_pending = false;
    maybe_end();
  }
}

void Process::wait_exit(std::shared_ptr<Process> self) {
  Process& p = *self;
  p.pidfd_->async_wait(stream_descriptor::wait_read,
                       [self = std::move(self)](const boost::system::error_code&) { self->on_exit_ready(); });
}

void Process::on_exit_ready() {
  pid_t r = ::waitpid(pid_, &wait_status_, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return wait_exit(shared_from_this());
  if (r < 0) {
    log::warn("process", "waitpid " + std::to_string(pid_) + ": " + std::strerror(errno));
    wait_status_ = 0;
  }
  reaped_ = true;
  deadline_timer_.cancel();
  pidfd_.reset();

  // Bounded drain: deliver what is in the pipes now (the leader's last output), not whatever a
  // background child may write later. Its size is what FIONREAD reports at reap time; a sole slow
  // subscriber still back-pressures this (nothing is dropped for it). The end follows in
  // maybe_end() once every reader has delivered its share.
  for (auto& rd : readers_) {
    if (rd->eof) continue;
    int avail = 0;
    if (::ioctl(rd->fd->native_handle(), FIONREAD, &avail) != 0) avail = 0;
    rd->drain_pending = true;
    rd->drain_remaining = static_cast<std::size_t>(std::max(avail, 0));
  }
  for (auto& rd : readers_) check_drained(*rd);
  maybe_end();
}

void Process::maybe_end() {
  if (!reaped_ || end_) return;
  for (auto& rd : readers_)
    if (rd->drain_pending) return;
  end_ = describe_wait_status(wait_status_);
  ExitContext ctx;
  ctx.sent_signals = sent_signals_;
  ctx.start_deadline = timed_out_;
  if (!opts_.cgroup.empty()) {
    GroupEvents ev = read_group_events(opts_.cgroup);
    ctx.oom_kills = ev.oom_kills;
    ctx.pids_max_hits = ev.pids_max_hits;
    CgroupManager::release_group(opts_.cgroup_releaser, opts_.cgroup);
  }
  end_->cause = derive_exit_cause(wait_status_, ctx);
  close_input();
  fanout_.close();
  table_.finished(*this);
  // Output retention: no more output, so the budget is charged what the ring holds. The table keeps
  // the ring if it is to be replayable; a background child holding the pipes must not keep it (and
  // its share of the retention budget) alive.
  if (opts_.ring) opts_.ring->settle();
  opts_.ring.reset();
}

void Process::close_input() {
  input_closed_ = true;
  if (input_ && input_->is_open()) {
    boost::system::error_code ignored;
    input_->close(ignored);  // wakes a writer blocked on a full pipe (it then reports EPIPE)
  }
  if (!stdin_writer_running_) fail_pending_stdin(EPIPE);
}

void Process::fail_pending_stdin(int err) {
  while (!stdin_queue_.empty()) {
    auto w = stdin_queue_.front();
    stdin_queue_.pop_front();
    stdin_queued_bytes_ -= w->data.size();
    if (!w->close) w->err = err;
    w->done.set();
  }
  stdin_space_.set();
}

asio::awaitable<rpc::Status> Process::write_input(std::string data, bool pty) {
  using rpc::Code;
  if (pty && !opts_.pty)
    co_return rpc::error(Code::internal,
                         "error writing to tty: tty not assigned to process — input should be written to the stdin, "
                         "not the tty");
  if (!pty && opts_.pty)
    co_return rpc::error(Code::internal,
                         "error writing to stdin: tty assigned to process — input should be written to the pty, not "
                         "the stdin");
  const std::string prefix = pty ? "error writing to tty" : "error writing to stdin";
  if (input_closed_) {
    if (pty || end_) co_return rpc::error(Code::internal, prefix + ": " + "write: broken pipe");
    co_return rpc::error(Code::internal, "error writing to stdin: stdin not enabled or closed");
  }
  if (data.empty()) co_return rpc::Status{};
  // Bounded queue: wait for room (never buffer without limit for a child that does not read).
  while (stdin_queued_bytes_ > 0 && stdin_queued_bytes_ + data.size() > limits_.stdin_queue_bytes && !input_closed_) {
    stdin_space_.reset();
    co_await stdin_space_.wait();
  }
  if (input_closed_) co_return rpc::error(Code::internal, prefix + ": write: broken pipe");
  auto w = std::make_shared<StdinWrite>(ex_);
  w->data = std::move(data);
  stdin_queued_bytes_ += w->data.size();
  stdin_queue_.push_back(w);
  if (!stdin_writer_running_) asio::co_spawn(ex_, feed_stdin(shared_from_this()), asio::detached);
  co_await w->done.wait();
  if (w->err != 0) {
    if (pty) co_return rpc::error(Code::internal, prefix + ": write /dev/ptmx: " + errno_text(w->err));
    co_return rpc::error(Code::internal, "error writing to stdin: error writing to stdin of process '" +
                                             std::to_string(pid_) + "': write |1: " + errno_text(w->err));
  }
  co_return rpc::Status{};
}

rpc::Status Process::close_stdin() {
  if (opts_.pty)
    return rpc::error(rpc::Code::unknown,
                      "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead");
  if (input_closed_) return rpc::Status{};  // idempotent; also when stdin was never enabled
  input_closed_ = true;
  // Ordered after the writes already queued: they reach the child before it sees EOF.
  auto w = std::make_shared<StdinWrite>(ex_);
  w->close = true;
  stdin_queue_.push_back(w);
  if (!stdin_writer_running_) asio::co_spawn(ex_, feed_stdin(shared_from_this()), asio::detached);
  return rpc::Status{};
}

asio::awaitable<void> Process::feed_stdin(std::shared_ptr<Process> self) {
  self->stdin_writer_running_ = true;
  while (!self->stdin_queue_.empty()) {
    auto w = self->stdin_queue_.front();
    auto& in = self->input_;
    if (w->close) {
      if (in && in->is_open()) {
        boost::system::error_code ignored;
        in->close(ignored);
      }
    } else {
      while (w->offset < w->data.size()) {
        if (!in || !in->is_open()) {
          w->err = EPIPE;
          break;
        }
        ssize_t n = ::write(in->native_handle(), w->data.data() + w->offset, w->data.size() - w->offset);
        if (n > 0) {
          w->offset += static_cast<std::size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
          // The child is not reading: wait for room without blocking the loop.
          boost::system::error_code ec;
          co_await in->async_wait(stream_descriptor::wait_write, asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        w->err = n < 0 ? errno : EPIPE;
        break;
      }
    }
    if (!self->stdin_queue_.empty() && self->stdin_queue_.front() == w) {
      self->stdin_queue_.pop_front();
      self->stdin_queued_bytes_ -= w->data.size();
    }
    self->stdin_space_.set();
    w->done.set();
  }
  self->stdin_writer_running_ = false;
  if (self->end_) self->fail_pending_stdin(EPIPE);
}

rpc::Status Process::send_signal(int sig) {
  // Contract §4.8 delivers to the leader only; we signal the whole process group ("kill means
  // gone"): a PTY's session leader leads its own group too.
  // Delivered signals are remembered for the exit cause (issue 13.2: sent_by SendSignal).
  auto delivered = [&] {
    if (sig > 0 && sig < 64 && !end_) sent_signals_ |= std::uint64_t{1} << sig;
    return rpc::Status{};
  };
  if (::kill(-pid_, sig) == 0) return delivered();
  int e = errno;
  if (e == ESRCH && ::kill(pid_, sig) == 0) return delivered();
  if (e == ESRCH && reaped_) return rpc::Status{};  // already gone; the end event is on its way
  return rpc::error(rpc::Code::internal, "error sending signal: " + errno_text(e));
}

rpc::Status Process::resize(std::uint32_t cols, std::uint32_t rows) {
  if (!opts_.pty) return rpc::error(rpc::Code::internal, "error resizing tty: tty not assigned to process");
  int fd = -1;
  if (input_ && input_->is_open()) fd = input_->native_handle();
  if (fd < 0 && !readers_.empty() && readers_[0]->fd && readers_[0]->fd->is_open())
    fd = readers_[0]->fd->native_handle();
  if (fd < 0) return rpc::error(rpc::Code::internal, "error resizing tty: tty closed");
  if (int e = pty::resize(fd, static_cast<std::uint16_t>(std::min<std::uint32_t>(cols, 0xFFFF)),
                          static_cast<std::uint16_t>(std::min<std::uint32_t>(rows, 0xFFFF)));
      e != 0) {
    return rpc::error(rpc::Code::internal, "error resizing tty: " + errno_text(e));
  }
  return rpc::Status{};
}

// ---------------------------------------------------------------------------------------------

void ProcessTable::add(const std::shared_ptr<Process>& p) {
  prune();
  live_[p->pid()] = p;
  // A reused pid or tag clears the old retained end (contract §4.3).
  retained_.erase(p->pid());
  if (const auto& tag = p->options().tag) {
    std::erase_if(retained_, [&](const auto& kv) { return kv.second.tag == tag; });
  }
}

void ProcessTable::finished(Process& p) {
  auto it = live_.find(p.pid());
  if (it != live_.end() && it->second.get() == &p) live_.erase(it);
  if (retention_.count() > 0 && p.end()) {
    retained_[p.pid()] = Retained{p.pid(), p.options().tag, *p.end(), std::chrono::steady_clock::now() + retention_};
  }
  // --- output retention (issue 13) ---
  if (p.ring() && p.end()) {
    auto now = std::chrono::steady_clock::now();
    auto [it2, fresh] = retained_.try_emplace(p.pid());
    Retained& r = it2->second;
    if (fresh) r = Retained{p.pid(), p.options().tag, *p.end(), now, {}, {}, {}, {}};
    r.had_ring = true;
    r.written = p.ring()->written();
    if (output_retention_.keep.count() > 0) {
      r.ring = p.ring();
      r.ring_expires = now + output_retention_.keep;
      r.expires = std::max(r.expires, r.ring_expires);
    }
    bound_ended_rings();
    if (r.expires <= now) retained_.erase(p.pid());
  }
  // --- end output retention ---
}

// --- output retention (issue 13) ---
void ProcessTable::bound_ended_rings() {
  std::size_t n = 0;
  for (auto& [pid, r] : retained_) n += r.ring != nullptr;
  while (n > output_retention_.max_ended) {
    Retained* oldest = nullptr;
    for (auto& [pid, r] : retained_)
      if (r.ring && (!oldest || r.ring_expires < oldest->ring_expires)) oldest = &r;
    oldest->ring.reset();
    --n;
  }
}

bool ProcessTable::make_room(std::size_t bytes) {
  prune();
  if (!budget_) return false;
  while (budget_->used + bytes > budget_->total) {
    Retained* oldest = nullptr;
    for (auto& [pid, r] : retained_)
      if (r.ring && (!oldest || r.ring_expires < oldest->ring_expires)) oldest = &r;
    if (!oldest) return false;
    oldest->ring.reset();
  }
  return true;
}
// --- end output retention ---

void ProcessTable::prune() {
  auto now = std::chrono::steady_clock::now();
  std::erase_if(retained_, [&](const auto& kv) { return kv.second.expires <= now; });
  for (auto& [pid, r] : retained_)
    if (r.ring && r.ring_expires <= now) r.ring.reset();  // output retention (issue 13)
}

ProcessTable::Found ProcessTable::by_pid(pid_t pid) {
  prune();
  if (auto it = live_.find(pid); it != live_.end()) return it->second;
  if (auto it = retained_.find(pid); it != retained_.end()) return it->second;
  return std::monostate{};
}

ProcessTable::Found ProcessTable::by_tag(const std::string& tag) {
  prune();
  for (auto& [pid, p] : live_) {
    if (p->options().tag == tag) return p;
  }
  for (auto& [pid, r] : retained_) {
    if (r.tag == tag) return r;
  }
  return std::monostate{};
}

std::vector<std::shared_ptr<Process>> ProcessTable::live() const {
  std::vector<std::shared_ptr<Process>> out;
  for (const auto& [pid, p] : live_) {
    if (!p->leader_reaped()) out.push_back(p);
  }
  return out;
}

}  // namespace envd::process
