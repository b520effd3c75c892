// process.Process (contract §4): Start, Connect, List, SendInput, StreamInput, CloseStdin,
// SendSignal, Update. Handlers stay straight-line; the Process object does the OS work.
#include "process/process_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include <google/protobuf/descriptor.h>

#include "envd/log.h"
#include "envd/os_error.h"
#include "envd/paths.h"
#include "envd/rpc/keepalive.h"
#include "envd/rpc/stream_loop.h"
#include "process.pb.h"
#include "process/cgroups.h"
#include "process/output_json.h"
#include "process/process.h"
#include "process/spawn_gate.h"
#include "pty/pty.h"

namespace envd::process {

namespace {

using rpc::Code;
namespace pb = ::process;

constexpr std::string_view kService = "process.Process";

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

class ProcessService {
 public:
  ProcessService(SandboxState& state, const ServiceConfig& cfg)
      : state_(state), cfg_(cfg), cgroups_(CgroupConfig{cfg.cgroups, cfg.cgroup_root}), table_(cfg.retention) {
    limits_.fanout.queue_bytes = cfg.subscriber_queue_bytes;
    limits_.fanout.stall_timeout = cfg.subscriber_stall;
    limits_.stdin_queue_bytes = cfg.stdin_queue_bytes;
    // --- output retention (issue 13 part 1) ---
    retention_budget_->total = cfg.output_retention_total_bytes;
    table_.set_output_retention({cfg.output_retention, cfg.output_retention_max_ended}, retention_budget_);
    // --- end output retention ---
    if (const char* path = std::getenv("PATH"); path && *path) envd_path_ = path;
  }

  // Everything up to the fork, as a plain function: its locals (argv, env, ...) do not live in
  // the Start coroutine's frame for the whole life of the stream (memory per stream).
  std::shared_ptr<Process> spawn(rpc::CallContext& ctx, const pb::StartRequest& req, rpc::Status& status) {
    const pb::ProcessConfig& cfg = req.process();
    const User& user = ctx.user;
    std::string cmdline = cfg.cmd();
    for (const auto& a : cfg.args()) cmdline += " " + a;
    const bool is_pty = req.has_pty();
    const std::uint32_t cols = is_pty ? req.pty().size().cols() : 0;
    const std::uint32_t rows = is_pty ? req.pty().size().rows() : 0;

    // cwd (§3.1, §3.2): checked here so that a bad one is an RPC error before any start event.
    auto resolved = expand_and_resolve(cfg.has_cwd() ? cfg.cwd() : "", user, state_.default_workdir);
    if (!resolved.ok()) return fail(status, rpc::error(Code::invalid_argument, resolved.error));
    std::string cwd = resolved.path.empty() ? user.home : resolved.path;
    if (cwd.empty()) cwd = "/";
    std::string prefix = is_pty ? "error starting pty with command '" + cmdline + "' in dir '" + cwd + "' with '" +
                                      std::to_string(cols) + "' cols and '" + std::to_string(rows) + "' rows"
                                : "error starting process '" + cmdline + "'";
    // A NUL byte would silently cut a C string short: refuse, as Go's exec does.
    if (has_nul(cfg.cmd()) || has_nul(cwd) ||
        std::any_of(cfg.args().begin(), cfg.args().end(), [](const std::string& a) { return has_nul(a); })) {
      return fail(status, rpc::error(Code::invalid_argument, prefix + ": fork/exec: invalid argument"));
    }
    struct stat st {};
    if (::stat(cwd.c_str(), &st) != 0) {
      if (errno == ENOENT) return fail(status, rpc::error(Code::invalid_argument, "cwd '" + cwd + "' does not exist"));
      return fail(status, rpc::error(Code::invalid_argument, prefix + ": chdir " + cwd + ": " + errno_text(errno)));
    }
    if (!S_ISDIR(st.st_mode))
      return fail(status, rpc::error(Code::invalid_argument, prefix + ": chdir " + cwd + ": not a directory"));

    // Extension (issue 13.2): per-command limits, checked before anything is created.
    CommandLimits limits = limits_of(req);
    if (limits.any()) {
      if (std::string bad = validate_limits(limits); !bad.empty())
        return fail(status, rpc::error(Code::invalid_argument, bad));
      if (req.has_tag() && req.tag() == "_system")
        return fail(status,
                    rpc::error(Code::invalid_argument, "limits do not apply to tag _system (envd's own cgroup)"));
      if (std::string why = cgroups_.limits_unavailable(limits); !why.empty())
        return fail(status, rpc::error(Code::failed_precondition, why));
    }

    SpawnRequest sr;
    sr.cmd = cfg.cmd();
    sr.args.assign(cfg.args().begin(), cfg.args().end());
    sr.env = build_env(user, cfg);
    if (std::any_of(sr.env.begin(), sr.env.end(), [](const std::string& kv) { return has_nul(kv); })) {
      return fail(status, rpc::error(Code::invalid_argument, prefix + ": exec: environment variable contains NUL"));
    }
    // --- output retention (issue 13 part 1): reserved before the fork, so a refusal starts nothing.
    std::shared_ptr<OutputRing> ring;
    if (req.has_output_retention_bytes() && req.output_retention_bytes() > 0) {
      std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(req.output_retention_bytes(), cfg_.output_retention_max_bytes));
      want = std::max(want, OutputRing::kMinCapacity);
      if (!table_.make_room(want)) {
        return fail(status, rpc::error(Code::resource_exhausted,
                                       "output retention: " + std::to_string(want) + " bytes asked, " +
                                           std::to_string(retention_budget_->used) + " of " +
                                           std::to_string(retention_budget_->total) +
                                           " in use by running processes (--output-retention-total-bytes)"));
      }
      ring = std::make_shared<OutputRing>(want, retention_budget_);
    }
    // --- end output retention ---
    sr.cwd = cwd;
    sr.uid = user.uid;
    sr.gid = user.gid;
    sr.groups.assign(user.groups.begin(), user.groups.end());
    if (sr.groups.empty()) sr.groups.push_back(user.gid);
    sr.stdin_mode = (!req.has_stdin() || req.stdin()) ? StdinMode::pipe : StdinMode::null;
    const bool system_tag = req.has_tag() && req.tag() == "_system";
    sr.cgroup_fd = cgroups_.fd(system_tag ? CgroupKind::system : is_pty ? CgroupKind::ptys : CgroupKind::user);

    pty::Pair pair;
    if (is_pty) {
      pair = pty::open_pair(static_cast<std::uint16_t>(std::min<std::uint32_t>(cols, 0xFFFF)),
                            static_cast<std::uint16_t>(std::min<std::uint32_t>(rows, 0xFFFF)));
      if (!pair.ok()) return fail(status, rpc::error(Code::invalid_argument, prefix + ": " + pair.error));
      sr.pty_slave = pair.slave;
    }
    std::optional<CommandGroup> group;  // issue 13.2: the limited command's own cgroup
    if (limits.any()) {
      std::string err;
      group = cgroups_.create_group(limits, err);
      if (!group) {
        if (pair.slave >= 0) ::close(pair.slave);
        if (pair.master >= 0) ::close(pair.master);
        return fail(status, rpc::error(Code::failed_precondition, prefix + ": " + err));
      }
      sr.cgroup_fd = group->fd;
      sr.cgroup_required = true;
    }
    SpawnedChild child = spawn_child(sr);
    if (pair.slave >= 0) ::close(pair.slave);
    if (group) {
      ::close(group->fd);
      if (!child.ok()) CgroupManager::release_group(cgroups_.releaser(), group->path);
    }
    if (!child.ok()) {
      if (pair.master >= 0) ::close(pair.master);
      if (child.cgroup_refused) return fail(status, rpc::error(Code::failed_precondition, prefix + ": " + child.error));
      // Out of fds and the like are envd's trouble (internal); the rest is the command's.
      return fail(status, rpc::error(child.internal_error ? Code::internal : Code::invalid_argument,
                                     prefix + ": " + child.error));
    }

    Process::Options opts;
    opts.config = cfg;
    if (req.has_tag()) opts.tag = req.tag();
    opts.pty = is_pty;
    opts.ring = std::move(ring);  // output retention (issue 13 part 1)
    // Connect-Timeout-Ms on Start bounds the process lifetime (§4.2); 0 or absent: no limit.
    if (ctx.timeout && ctx.timeout->count() > 0 && ctx.deadline) opts.deadline = ctx.deadline;
    opts.start_error_prefix = prefix;
    opts.cwd = cwd;
    if (group) {
      opts.cgroup = group->path;
      opts.cgroup_releaser = cgroups_.releaser();
    }
    return Process::launch(ctx.executor(), table_, child, pair.master, std::move(opts), limits_);
  }

  static CommandLimits limits_of(const pb::StartRequest& req) {
    CommandLimits l;
    if (!req.has_limits()) return l;
    const auto& in = req.limits();
    if (in.has_memory_bytes()) l.memory_bytes = in.memory_bytes();
    if (in.has_max_processes()) l.max_processes = in.max_processes();
    if (in.has_cpu_weight()) l.cpu_weight = in.cpu_weight();
    if (in.has_cpu_millicores()) l.cpu_millicores = in.cpu_millicores();
    return l;
  }

  static std::shared_ptr<Process> fail(rpc::Status& status, rpc::Status st) {
    status = std::move(st);
    return nullptr;
  }

  // One spawn per loop pass: a burst of Starts never holds the loop for more than one fork. Its own
  // coroutine, so that the gate's pass (and the wait for it) do not sit in start()'s frame, which
  // lives as long as the stream.
  asio::awaitable<std::shared_ptr<Process>> gated_spawn(rpc::CallContext& ctx, const pb::StartRequest& req,
                                                        rpc::Status& status) {
    SpawnGate::Pass pass = co_await gate_.enter(ctx.executor());
    co_return spawn(ctx, req, status);  // the pass hands the gate on as it goes out of scope
  }

  asio::awaitable<rpc::Status> start(rpc::CallContext& ctx, const pb::StartRequest& req,
                                     rpc::Writer<pb::StartResponse>& out) {
    rpc::Status status;
    auto p = co_await gated_spawn(ctx, req, status);
    if (!p) co_return status;
    // Subscribed before the process's output is read: nothing it prints can be missed.
    Subscription sub(p->fanout(), p->fanout().subscribe());
    sub->end_cause = req.exit_cause();  // issue 13.2 opt-in
    p->begin();
    co_await p->wait_started();
    if (p->start_error()) co_return rpc::error(Code::invalid_argument, *p->start_error());
    if (log::enabled(log::Level::debug))
      log::debug("process",
                 "started pid " + std::to_string(p->pid()) + " as " + ctx.user.name + ": " + p->options().config.cmd());

    rpc::KeepaliveTimer ka(ctx.executor(), ctx.keepalive_interval);
    pb::StartResponse msg;
    msg.mutable_event()->mutable_start()->set_pid(static_cast<std::uint32_t>(p->pid()));
    if (!co_await out.send(msg)) co_return rpc::error(Code::canceled, "client disconnected");
    co_return co_await stream_events(*p, *sub, out, ka, true);
  }

  asio::awaitable<rpc::Status> connect(rpc::CallContext& ctx, const pb::ConnectRequest& req,
                                       rpc::Writer<pb::ConnectResponse>& out) {
    ProcessTable::Found found;
    if (auto st = select(req.process(), found); !st.ok()) co_return st;
    if (req.has_replay_from()) co_return co_await connect_replay(ctx, req, std::move(found), out);
    rpc::KeepaliveTimer ka(ctx.executor(), ctx.keepalive_interval);
    pb::ConnectResponse msg;
    if (auto* r = std::get_if<ProcessTable::Retained>(&found)) {
      // Ended within the retention time: start, then the retained end (§4.3).
      ProcessTable::Retained retained = *r;
      msg.mutable_event()->mutable_start()->set_pid(static_cast<std::uint32_t>(retained.pid));
      if (!co_await out.send(msg)) co_return rpc::error(Code::canceled, "client disconnected");
      fill_end(msg, retained.end, req.exit_cause());
      co_await out.send(msg);
      co_return rpc::Status{};
    }
    auto p = std::get<std::shared_ptr<Process>>(found);
    Subscription sub(p->fanout(), p->fanout().subscribe());
    sub->end_cause = req.exit_cause();  // issue 13.2 opt-in
    msg.mutable_event()->mutable_start()->set_pid(static_cast<std::uint32_t>(p->pid()));
    if (!co_await out.send(msg)) co_return rpc::error(Code::canceled, "client disconnected");
    co_return co_await stream_events(*p, *sub, out, ka, false);
  }

  // --- output retention (issue 13 part 1) ---
  // Connect with replay_from: start, output_lost if some asked-for bytes are gone, the retained
  // bytes after replay_from, then live output (offsets on every DataEvent) and the end. The ring
  // snapshot and the subscription are taken with no suspension between them, and the pipe reader
  // appends to the ring and offers to the fan-out in one step: what is not in the snapshot is in
  // the queue, once.
  asio::awaitable<rpc::Status> connect_replay(rpc::CallContext& ctx, const pb::ConnectRequest& req,
                                              ProcessTable::Found found, rpc::Writer<pb::ConnectResponse>& out) {
    const auto& rf = req.replay_from();
    const StreamOffsets from{rf.stdout(), rf.stderr(), rf.pty()};
    pb::ConnectResponse msg;
    if (auto* r = std::get_if<ProcessTable::Retained>(&found)) {
      ProcessTable::Retained retained = std::move(*r);  // holds the ring while we send
      if (!retained.had_ring) co_return no_retention(retained.pid);
      if (auto st = check_replay_from(from, retained.written); !st.ok()) co_return st;
      ReplayState rs;
      if (retained.ring) {
        rs.replay.emplace(retained.ring->replay(from));
        rs.lost_pending = rs.replay->any_lost();
      } else {
        // The ring is gone (retention window or bounds): everything after replay_from is lost.
        rs.lost = {retained.written[0] - from[0], retained.written[1] - from[1], retained.written[2] - from[2]};
        rs.lost_pending = rs.lost[0] || rs.lost[1] || rs.lost[2];
      }
      msg.mutable_event()->mutable_start()->set_pid(static_cast<std::uint32_t>(retained.pid));
      if (!co_await out.send(msg)) co_return rpc::client_gone();
      while (rs.next(msg))
        if (!co_await out.send(msg)) co_return rpc::client_gone();
      fill_end(msg, retained.end, req.exit_cause());  // issue 13.2's opt-in holds here too
      if (!co_await out.send(msg)) co_return rpc::client_gone();
      co_return rpc::Status{};
    }
    auto p = std::get<std::shared_ptr<Process>>(found);
    if (!p->ring()) co_return no_retention(p->pid());
    if (auto st = check_replay_from(from, p->ring()->written()); !st.ok()) co_return st;
    Subscription sub(p->fanout(), p->fanout().subscribe());
    sub->end_cause = req.exit_cause();  // issue 13.2's opt-in holds here too
    auto rs = std::make_unique<ReplayState>();
    rs->replay.emplace(p->ring()->replay(from));
    rs->lost_pending = rs->replay->any_lost();
    rpc::KeepaliveTimer ka(ctx.executor(), ctx.keepalive_interval);
    msg.mutable_event()->mutable_start()->set_pid(static_cast<std::uint32_t>(p->pid()));
    if (!co_await out.send(msg)) co_return rpc::client_gone();
    OutputSource<pb::ConnectResponse> src{.p = *p,
                                          .sub = *sub,
                                          .is_start = false,
                                          .stall = cfg_.subscriber_stall,
                                          .offsets = true,
                                          .replay = std::move(rs)};
    co_return co_await rpc::run_stream(out, src, sub->ready, ka);
  }

  static rpc::Status no_retention(pid_t pid) {
    return rpc::error(Code::failed_precondition, "process with pid " + std::to_string(pid) +
                                                     " was started without output_retention_bytes: there is "
                                                     "no output to replay");
  }

  static rpc::Status check_replay_from(const StreamOffsets& from, const StreamOffsets& written) {
    static constexpr const char* kNames[] = {"stdout", "stderr", "pty"};
    for (std::size_t i = 0; i < 3; ++i) {
      if (from[i] > written[i])
        return rpc::error(Code::out_of_range, std::string("replay_from.") + kNames[i] + " is " +
                                                  std::to_string(from[i]) + " but the process has written " +
                                                  std::to_string(written[i]) + " bytes there");
    }
    return {};
  }

  // The replayed part of a stream: the lost counts once, then runs of retained bytes.
  struct ReplayState {
    std::optional<OutputRing::Replay> replay;
    StreamOffsets lost{};
    bool lost_pending = false;
    std::string scratch;

    template <class Resp>
    bool next(Resp& msg) {
      if (lost_pending) {
        lost_pending = false;
        const StreamOffsets& l = replay ? replay->lost() : lost;
        auto* e = msg.mutable_event()->mutable_output_lost();
        e->set_stdout(l[0]);
        e->set_stderr(l[1]);
        e->set_pty(l[2]);
        return true;
      }
      OutputStream s{};
      std::uint64_t offset = 0;
      if (!replay || !replay->next(s, offset, scratch, Chunk::kCapacity)) return false;
      auto* data = msg.mutable_event()->mutable_data();
      std::string* dst = s == OutputStream::stdout_stream   ? data->mutable_stdout()
                         : s == OutputStream::stderr_stream ? data->mutable_stderr()
                                                            : data->mutable_pty();
      dst->swap(scratch);  // the message's old buffer becomes the next scratch
      data->set_offset(offset);
      return true;
    }
  };
  // --- end output retention ---

  asio::awaitable<rpc::Status> list(rpc::CallContext&, const pb::ListRequest&, pb::ListResponse& resp) {
    for (const auto& p : table_.live()) {
      auto* info = resp.add_processes();
      *info->mutable_config() = p->options().config;
      info->set_pid(static_cast<std::uint32_t>(p->pid()));
      if (p->options().tag) info->set_tag(*p->options().tag);
    }
    co_return rpc::Status{};
  }

  asio::awaitable<rpc::Status> send_input(rpc::CallContext&, const pb::SendInputRequest& req, pb::SendInputResponse&) {
    std::shared_ptr<Process> p;
    if (auto st = select_live(req.process(), p); !st.ok()) co_return st;
    co_return co_await write(*p, req.input());
  }

  asio::awaitable<rpc::Status> stream_input(rpc::CallContext&, rpc::Reader<pb::StreamInputRequest>& in,
                                            pb::StreamInputResponse&) {
    pb::StreamInputRequest msg;
    std::shared_ptr<Process> p;
    for (;;) {
      msg.Clear();
      auto r = co_await in.read(msg);
      if (r == rpc::ReadResult::end) break;
      if (r == rpc::ReadResult::error) {
        if (in.status().code == Code::canceled) co_return in.status();
        co_return rpc::error(Code::unknown, "error streaming input: " + in.status().message);
      }
      switch (msg.event_case()) {
        case pb::StreamInputRequest::kStart: {
          if (auto st = select_live(msg.start().process(), p); !st.ok()) co_return st;
          break;
        }
        case pb::StreamInputRequest::kData: {
          // envd dereferences nil here and panics (§4.6 [QUIRK]); we answer instead.
          if (!p) co_return rpc::error(Code::invalid_argument, "data event before the start event");
          if (auto st = co_await write(*p, msg.data().input()); !st.ok()) co_return st;
          break;
        }
        default: break;  // keepalive
      }
    }
    co_return rpc::Status{};
  }

  asio::awaitable<rpc::Status> close_stdin(rpc::CallContext&, const pb::CloseStdinRequest& req,
                                           pb::CloseStdinResponse&) {
    std::shared_ptr<Process> p;
    if (auto st = select_live(req.process(), p); !st.ok()) co_return st;
    co_return p->close_stdin();
  }

  asio::awaitable<rpc::Status> send_signal(rpc::CallContext&, const pb::SendSignalRequest& req,
                                           pb::SendSignalResponse&) {
    std::shared_ptr<Process> p;
    if (auto st = select_live(req.process(), p); !st.ok()) co_return st;
    int sig = static_cast<int>(req.signal());
    switch (sig) {
      case SIGHUP:
      case SIGINT:
      case SIGQUIT:
      case SIGKILL:
      case SIGUSR1:
      case SIGUSR2:
      case SIGTERM:
      case SIGCONT:
      case SIGSTOP: break;
      default: {
        std::string name = pb::Signal_IsValid(sig) ? pb::Signal_Name(req.signal()) : std::to_string(sig);
        co_return rpc::error(Code::unimplemented, "invalid signal: " + name);
      }
    }
    co_return p->send_signal(sig);
  }

  asio::awaitable<rpc::Status> update(rpc::CallContext&, const pb::UpdateRequest& req, pb::UpdateResponse&) {
    std::shared_ptr<Process> p;
    if (auto st = select_live(req.process(), p); !st.ok()) co_return st;
    if (!req.has_pty()) co_return rpc::Status{};
    co_return p->resize(req.pty().size().cols(), req.pty().size().rows());
  }

 private:
  // PATH, HOME/USER/LOGNAME, global env (/init vars, then E2B_*), request envs: later wins (§3.1).
  std::vector<std::string> build_env(const User& user, const pb::ProcessConfig& cfg) const {
    std::vector<std::pair<std::string, std::string>> env;
    std::map<std::string, std::size_t, std::less<>> index;
    auto set = [&](const std::string& k, const std::string& v) {
      if (auto it = index.find(k); it != index.end()) {
        env[it->second].second = v;
        return;
      }
      index.emplace(k, env.size());
      env.emplace_back(k, v);
    };
    set("PATH", envd_path_);
    set("HOME", user.home);
    set("USER", user.name);
    set("LOGNAME", user.name);
    for (const auto& [k, v] : state_.global_env()) set(k, v);
    for (const auto& [k, v] : cfg.envs()) set(k, v);
    std::vector<std::string> out;
    out.reserve(env.size());
    for (auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
  }

  rpc::Status select(const pb::ProcessSelector& sel, ProcessTable::Found& out) {
    switch (sel.selector_case()) {
      case pb::ProcessSelector::kPid:
        out = table_.by_pid(static_cast<pid_t>(sel.pid()));
        if (std::holds_alternative<std::monostate>(out))
          return rpc::error(Code::not_found, "process with pid " + std::to_string(sel.pid()) + " not found");
        return {};
      case pb::ProcessSelector::kTag:
        out = table_.by_tag(sel.tag());
        if (std::holds_alternative<std::monostate>(out))
          return rpc::error(Code::not_found, "process with tag " + sel.tag() + " not found");
        return {};
      default: return rpc::error(Code::unimplemented, "invalid input type *process.ProcessSelector");
    }
  }

  // Input, signals and resize need a process that is still running: a retained end is not_found.
  rpc::Status select_live(const pb::ProcessSelector& sel, std::shared_ptr<Process>& out) {
    ProcessTable::Found found;
    if (auto st = select(sel, found); !st.ok()) return st;
    if (auto* p = std::get_if<std::shared_ptr<Process>>(&found)) {
      out = *p;
      return {};
    }
    if (sel.selector_case() == pb::ProcessSelector::kTag)
      return rpc::error(Code::not_found, "process with tag " + sel.tag() + " not found");
    return rpc::error(Code::not_found, "process with pid " + std::to_string(sel.pid()) + " not found");
  }

  asio::awaitable<rpc::Status> write(Process& p, const pb::ProcessInput& input) {
    switch (input.input_case()) {
      case pb::ProcessInput::kStdin: co_return co_await p.write_input(input.stdin(), false);
      case pb::ProcessInput::kPty: co_return co_await p.write_input(input.pty(), true);
      default: co_return rpc::error(Code::unimplemented, "invalid input type <nil>");
    }
  }

  template <class Resp>
  static void fill_end(Resp& msg, const ExitInfo& end, bool with_cause = false) {
    auto* e = msg.mutable_event()->mutable_end();
    e->set_exit_code(end.exit_code);
    e->set_exited(end.exited);
    e->set_status(end.status);
    if (end.error) e->set_error(*end.error);
    if (with_cause) fill_cause(*e->mutable_cause(), end.cause);  // issue 13.2, opt-in only
  }

  // Extension (issue 13.2): EndEvent.cause.
  static void fill_cause(pb::ExitCause& out, const ExitCause& c) {
    out.set_kind(static_cast<pb::ExitCause::Kind>(static_cast<int>(c.kind)));
    out.set_exit_code(c.exit_code);
    if (c.signal != 0) {
      out.set_signal(static_cast<std::uint32_t>(c.signal));
      out.set_signal_name(signal_abbrev(c.signal));
    }
    out.set_sent_by(static_cast<pb::ExitCause::Sender>(static_cast<int>(c.sent_by)));
    out.set_core_dumped(c.core_dumped);
    out.set_oom_kills(c.oom_kills);
    out.set_pids_max_hits(c.pids_max_hits);
  }

  // The output of one process as a stream source (envd/rpc/stream_loop.h): data until the end
  // event, which comes after every queued chunk.
  template <class Resp>
  struct OutputSource {
    Process& p;
    Subscriber& sub;
    bool is_start;
    std::chrono::milliseconds stall;

    asio::awaitable<rpc::Pull> pull(Resp& msg) {
      if (replay) {
        if (replay->next(msg)) co_return rpc::Pull::message();
        replay.reset();
      }
      if (sub.dropped()) {
        co_return rpc::Pull::end(rpc::error(Code::aborted, "stream dropped: it did not take output for " +
                                                               std::to_string(stall.count()) +
                                                               " ms while other streams of the process were waiting"));
      }
      if (ChunkRef c = sub.pop()) {
        auto* data = msg.mutable_event()->mutable_data();
        switch (c->stream) {
          case OutputStream::stdout_stream: data->set_stdout(c->data(), c->size); break;
          case OutputStream::stderr_stream: data->set_stderr(c->data(), c->size); break;
          case OutputStream::pty_stream: data->set_pty(c->data(), c->size); break;
        }
        if (offsets || (is_start && p.retains_output())) data->set_offset(c->offset);  // output retention
        co_return rpc::Pull::message();
      }
      if (p.fanout().closed() && p.end()) {
        fill_end(msg, *p.end(), sub.end_cause);
        // The Start deadline killed it: the stream ends as the RPC deadline says (§4.2).
        if (is_start && p.timed_out())
          co_return rpc::Pull::last(rpc::error(Code::deadline_exceeded, "context deadline exceeded"));
        co_return rpc::Pull::last();
      }
      co_return rpc::Pull::idle();
    }
    void keepalive(Resp& msg) { msg.mutable_event()->mutable_keepalive(); }

    // --- output retention (issue 13 part 1) ---
    bool offsets = false;                   // DataEvent.offset on this stream (a Start that asked: always)
    std::unique_ptr<ReplayState> replay{};  // sent before live output (Connect replay_from)
    // --- end output retention ---
  };

  template <class Resp>
  asio::awaitable<rpc::Status> stream_events(Process& p, Subscriber& sub, rpc::Writer<Resp>& out,
                                             rpc::KeepaliveTimer& ka, bool is_start) {
    OutputSource<Resp> src{p, sub, is_start, cfg_.subscriber_stall};
    co_return co_await rpc::run_stream(out, src, sub.ready, ka);
  }

  SandboxState& state_;
  ServiceConfig cfg_;
  CgroupManager cgroups_;
  SpawnGate gate_;
  ProcessTable table_;
  ProcessLimits limits_;
  std::shared_ptr<RetentionBudget> retention_budget_ = std::make_shared<RetentionBudget>();  // issue 13
  std::string envd_path_ = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
};

}  // namespace

void register_service(rpc::Registry& registry, SandboxState& state, const ServiceConfig& config) {
  registry.add_service(std::string(kService),
                       [] { return pb::StartRequest::descriptor()->file()->FindServiceByName("Process"); });
  auto svc = std::make_shared<ProcessService>(state, config);
  register_output_json_encoders();  // Start/Connect data events in Connect JSON, written directly
  registry.server_stream<pb::StartRequest, pb::StartResponse>(
      kService, "Start", [svc](auto& ctx, const auto& req, auto& out) { return svc->start(ctx, req, out); });
  registry.server_stream<pb::ConnectRequest, pb::ConnectResponse>(
      kService, "Connect", [svc](auto& ctx, const auto& req, auto& out) { return svc->connect(ctx, req, out); });
  registry.unary<pb::ListRequest, pb::ListResponse>(
      kService, "List", [svc](auto& ctx, const auto& req, auto& resp) { return svc->list(ctx, req, resp); });
  registry.unary<pb::SendInputRequest, pb::SendInputResponse>(
      kService, "SendInput", [svc](auto& ctx, const auto& req, auto& resp) { return svc->send_input(ctx, req, resp); });
  registry.client_stream<pb::StreamInputRequest, pb::StreamInputResponse>(
      kService, "StreamInput", [svc](auto& ctx, auto& in, auto& resp) { return svc->stream_input(ctx, in, resp); });
  registry.unary<pb::CloseStdinRequest, pb::CloseStdinResponse>(
      kService, "CloseStdin",
      [svc](auto& ctx, const auto& req, auto& resp) { return svc->close_stdin(ctx, req, resp); });
  registry.unary<pb::SendSignalRequest, pb::SendSignalResponse>(
      kService, "SendSignal",
      [svc](auto& ctx, const auto& req, auto& resp) { return svc->send_signal(ctx, req, resp); });
  registry.unary<pb::UpdateRequest, pb::UpdateResponse>(
      kService, "Update", [svc](auto& ctx, const auto& req, auto& resp) { return svc->update(ctx, req, resp); });
}

}  // namespace envd::process
