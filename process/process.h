#pragma once
// A running command and the table of them. A Process owns its child's fds and the coroutines
// that read its output, feed its stdin and reap it; it lives as long as any of those, so it
// outlives the client that started it (contract §4.2 "client disconnect").
#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "envd/event.h"
#include "envd/fifo.h"
#include "envd/rpc/status.h"
#include "process.pb.h"
#include "process/cgroups.h"
#include "process/exit_status.h"
#include "process/output_fanout.h"
#include "process/output_ring.h"
#include "process/spawn.h"

namespace envd::process {

class ProcessTable;

struct ProcessLimits {
  FanoutLimits fanout;
  std::size_t stdin_queue_bytes = 4u << 20;  // bytes waiting for a child's stdin, per process
};

class Process : public std::enable_shared_from_this<Process> {
 public:
  struct Options {
    ::process::ProcessConfig config;  // as requested (List shows it)
    std::optional<std::string> tag;
    bool pty = false;
    // Opt-in output retention (issue 13): every byte read is also kept here. Null: off.
    std::shared_ptr<OutputRing> ring;
    // Start's Connect-Timeout-Ms: the process lifetime (SIGKILL to the group on expiry).
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::string start_error_prefix;  // "error starting process '<cmd args>'"
    std::string cwd;
    // Limited commands (issue 13.2): their own cgroup, read for the exit cause and removed at the end.
    std::string cgroup;
    CgroupManager::Releaser cgroup_releaser;
  };

  // Takes ownership of every fd in `child` (and of `pty_master`, -1 if none).
  static std::shared_ptr<Process> launch(const asio::any_io_executor& ex, ProcessTable& table, SpawnedChild child,
                                         int pty_master, Options opts, const ProcessLimits& limits);
  // Starts the process's own coroutine: it waits for exec, registers in the table, then reads
  // output and reaps. Subscribe before calling this, or early output has nobody to go to.
  void begin();
  ~Process();

  pid_t pid() const { return pid_; }
  const Options& options() const { return opts_; }
  bool is_pty() const { return opts_.pty; }

  // Completes once the child has exec'd (or failed to set up: then start_error() is set).
  asio::awaitable<void> wait_started();
  const std::optional<std::string>& start_error() const { return start_error_; }

  OutputFanout& fanout() { return fanout_; }
  // Output retention (issue 13): the ring while the process runs (the table keeps it after the end);
  // retains_output() stays true after.
  const std::shared_ptr<OutputRing>& ring() const { return opts_.ring; }
  bool retains_output() const { return retains_output_; }
  // Set once every output that counts has been published; the fan-out is then closed.
  const std::optional<ExitInfo>& end() const { return end_; }
  bool leader_reaped() const { return reaped_; }
  // True when the end was caused by the Start deadline (the stream ends with deadline_exceeded).
  bool timed_out() const { return timed_out_; }

  // stdin pipe or PTY master, in order, through the bounded queue. `pty` says which the caller
  // meant (the contract's errors when it does not match).
  asio::awaitable<rpc::Status> write_input(std::string data, bool pty);
  rpc::Status close_stdin();
  rpc::Status send_signal(int sig);
  rpc::Status resize(std::uint32_t cols, std::uint32_t rows);

 private:
  struct OutputReader {
    explicit OutputReader(const asio::any_io_executor& ex) : room(ex) {}
    std::unique_ptr<asio::posix::stream_descriptor> fd;
    asio::steady_timer room;  // waits for room in the subscribers' queues (back-pressure)
    OutputStream stream = OutputStream::stdout_stream;
    bool eof = false;
    bool in_publish = false;
    bool drain_pending = false;       // after the leader is reaped: deliver what was in the pipe
    std::size_t drain_remaining = 0;  // bytes that were in the pipe when the leader was reaped
    std::uint64_t written = 0;        // bytes read so far: the next chunk's offset
  };
  struct StdinWrite {
    explicit StdinWrite(const asio::any_io_executor& ex) : done(ex) {}
    std::string data;
    std::size_t offset = 0;
    bool close = false;  // CloseStdin, ordered after earlier writes
    int err = 0;
    Event done;
  };

  Process(const asio::any_io_executor& ex, ProcessTable& table, Options opts, const ProcessLimits& limits);
  // Detached coroutines take a strong reference: the process lives while any of them runs.
  static asio::awaitable<void> run_process(std::shared_ptr<Process> self);
  static void pump_output(const std::shared_ptr<Process>& self, OutputReader* r);
  static void finish_output(const std::shared_ptr<Process>& self, OutputReader* r);
  void deadline_reached();
  static asio::awaitable<void> feed_stdin(std::shared_ptr<Process> self);
  asio::awaitable<void> run();
  static void wait_exit(std::shared_ptr<Process> self);
  void on_exit_ready();
  void check_drained(OutputReader& r);
  // Sends the end once the leader is reaped and every reader delivered its bounded drain.
  void maybe_end();
  void kill_group(int sig);
  void fail_pending_stdin(int err);
  void close_input();

  asio::any_io_executor ex_;
  ProcessTable& table_;
  Options opts_;
  ProcessLimits limits_;
  pid_t pid_ = -1;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd_;
  std::unique_ptr<asio::posix::stream_descriptor> status_fd_;
  // Output: stdout + stderr pipes, or the PTY master alone.
  std::vector<std::unique_ptr<OutputReader>> readers_;
  // stdin pipe (non-PTY) or a dup of the PTY master; null when disabled or closed.
  std::unique_ptr<asio::posix::stream_descriptor> input_;
  bool input_closed_ = false;
  Fifo<std::shared_ptr<StdinWrite>> stdin_queue_;
  std::size_t stdin_queued_bytes_ = 0;
  bool stdin_writer_running_ = false;
  Event stdin_space_;

  OutputFanout fanout_;
  Event started_;
  asio::steady_timer deadline_timer_;
  std::optional<std::string> start_error_;
  std::optional<ExitInfo> end_;
  bool reaped_ = false;
  bool timed_out_ = false;
  int wait_status_ = 0;
  bool retains_output_ = false;     // output retention (issue 13)
  std::uint64_t sent_signals_ = 0;  // bit n: SendSignal delivered signal n (for the exit cause)
};

// Live processes by pid, plus the end of each process that ended in the last `retention`
// (Connect serves start + retained end, contract §4.3).
class ProcessTable {
 public:
  struct Retained {
    pid_t pid = 0;
    std::optional<std::string> tag;
    ExitInfo end;
    std::chrono::steady_clock::time_point expires;
    // --- output retention (issue 13) ---
    bool had_ring = false;               // started with output_retention_bytes
    StreamOffsets written{};             // bytes each stream wrote (lost counts once the ring is gone)
    std::shared_ptr<OutputRing> ring{};  // until ring_expires, or evicted by the bounds
    std::chrono::steady_clock::time_point ring_expires{};
    // --- end output retention ---
  };
  // --- output retention (issue 13) ---
  struct OutputRetention {
    std::chrono::milliseconds keep{30'000};  // an ended process's ring is kept this long
    std::size_t max_ended = 16;              // ended processes whose ring is kept
  };
  void set_output_retention(OutputRetention r, std::shared_ptr<RetentionBudget> budget) {
    output_retention_ = r;
    budget_ = std::move(budget);
  }
  // Drops the rings of ended processes, oldest first, until `bytes` more fit in the budget.
  // False when they still do not (live rings hold the rest).
  bool make_room(std::size_t bytes);
  // --- end output retention ---
  using Found = std::variant<std::monostate, std::shared_ptr<Process>, Retained>;

  explicit ProcessTable(std::chrono::milliseconds retention) : retention_(retention) {}

  void add(const std::shared_ptr<Process>& p);
  void finished(Process& p);
  Found by_pid(pid_t pid);
  // Every live or retained process whose tag matches (fixes envd's early-exit tag walk, §4.10).
  Found by_tag(const std::string& tag);
  std::vector<std::shared_ptr<Process>> live() const;
  std::size_t retained_count() {
    prune();
    return retained_.size();
  }

 private:
  void prune();
  void bound_ended_rings();
  std::chrono::milliseconds retention_;
  OutputRetention output_retention_;
  std::shared_ptr<RetentionBudget> budget_;
  std::map<pid_t, std::shared_ptr<Process>> live_;
  std::map<pid_t, Retained> retained_;
};

}  // namespace envd::process
