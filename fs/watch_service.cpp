// Directory watching (contract §5.7, §5.8, issue 9): WatchDir streams and polling watchers, each a
// Watcher listening to the daemon's one InotifyHub. A Watcher owns its directories (root and, when
// recursive, every subdirectory), a bounded event queue, and ends loudly (data_loss) rather than
// drop events silently.
#include "fs/watch_service.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "envd/blocking.h"
#include "envd/event.h"
#include "envd/os_error.h"
#include "envd/paths.h"
#include "envd/rpc/keepalive.h"
#include "envd/rpc/stream_loop.h"
#include "filesystem.pb.h"
#include "fs/entry_info.h"
#include "fs/inotify_hub.h"

namespace envd::fs {

namespace {

namespace asio = boost::asio;
using rpc::Code;
namespace pb = ::filesystem;

constexpr std::string_view kService = "filesystem.Filesystem";

std::string join_rel(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out = dir;
  out += '/';
  out += name;
  return out;
}

std::string abs_path(const std::string& root, const std::string& rel) {
  if (rel.empty()) return root;
  return root == "/" ? "/" + rel : root + "/" + rel;
}

}  // namespace

bool is_network_filesystem(unsigned long f_type) {
  switch (f_type) {
    case 0x6969:      // NFS
    case 0xFF534D42:  // CIFS
    case 0x517B:      // SMB
    case 0xFE534D42:  // SMB2
    case 0x65735546:  // FUSE
      return true;
    default: return false;
  }
}

namespace {

// §5.7 validation, on the pool: stat, directory, network filesystem.
rpc::Status validate_dir(const std::string& path, bool allow_network) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT)
      return rpc::error(Code::not_found, "path " + path + " not found: " + path_error("stat", path, err));
    return rpc::error(Code::internal, "error statting path " + path + ": " + path_error("stat", path, err));
  }
  // [QUIRK] envd wraps a nil error here: the literal Go formatting artefact is what clients see.
  if (!S_ISDIR(st.st_mode)) return rpc::error(Code::invalid_argument, "path " + path + " not a directory: %!w(<nil>)");
  if (!allow_network) {
    struct statfs sf {};
    if (::statfs(path.c_str(), &sf) != 0) {
      int err = errno;
      return rpc::error(Code::internal, "error checking if path " + path +
                                            " is on a network filesystem: " + path_error("statfs", path, err));
    }
    if (is_network_filesystem(static_cast<unsigned long>(sf.f_type)))
      return rpc::error(Code::invalid_argument, "cannot watch path on network filesystem: " + path);
  }
  return {};
}

// One directory a pool job added to the hub, with (for directories that appeared after the
// watch started) the names found in it right after the add.
struct ArmedDir {
  std::string rel;
  int wd = -1;
  std::vector<std::pair<std::string, bool>> entries;  // name, is a directory
};

struct ArmOutcome {
  std::vector<ArmedDir> dirs;  // parents before children
  std::optional<AddResult> failure;
  std::string failed_path;
};

// Pool thread: adds `start_rel` (and, if recursive, every directory below it; symlinks are not
// followed) to the hub. With `scan`, each directory is read right after its watch is added, so
// entries created before the watch landed are reported (the "never twice" rule then suppresses
// the kernel's own CREATE for them).
ArmOutcome arm_tree(InotifyHub& hub, const std::string& root, const std::string& start_rel, bool recursive, bool scan,
                    const CancelToken& cancel) {
  ArmOutcome out;
  std::vector<std::string> todo{start_rel};
  bool first = true;
  while (!todo.empty()) {
    if (is_cancelled(cancel)) break;
    std::string rel = std::move(todo.back());
    todo.pop_back();
    std::string path = abs_path(root, rel);
    AddResult r = hub.add(path);
    if (r.wd < 0) {
      // A subdirectory that vanished (or was replaced by a file) in the meantime is not an error.
      if (!first && (r.err == ENOENT || r.err == ENOTDIR)) continue;
      out.failure = r;
      out.failed_path = path;
      break;
    }
    first = false;
    ArmedDir d;
    d.rel = rel;
    d.wd = r.wd;
    if (recursive || scan) {
      if (DIR* dir = ::opendir(path.c_str())) {
        std::vector<std::string> subdirs;
        while (dirent* de = ::readdir(dir)) {
          std::string_view n = de->d_name;
          if (n == "." || n == "..") continue;
          bool is_dir = de->d_type == DT_DIR;
          if (de->d_type == DT_UNKNOWN) {
            struct stat st {};
            is_dir = ::fstatat(::dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
          }
          if (scan) d.entries.emplace_back(std::string(n), is_dir);
          if (recursive && is_dir) subdirs.push_back(join_rel(rel, n));
        }
        ::closedir(dir);
        // Depth first, children in directory order (a stack: push in reverse).
        for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) todo.push_back(std::move(*it));
      }
    }
    out.dirs.push_back(std::move(d));
  }
  return out;
}

struct QueuedEvent {
  std::string name;
  pb::EventType type;
};

class Watcher;
using WatcherPtr = std::shared_ptr<Watcher>;

struct WatcherLimits {
  std::size_t max_events;
  std::size_t max_bytes;
  const char* flag;  // the flag that sets max_events, for the error text
};

class Watcher : public HubListener, public std::enable_shared_from_this<Watcher> {
 public:
  Watcher(const asio::any_io_executor& ex, InotifyHub& hub, std::string root, bool recursive, bool include_entry,
          WatcherLimits limits)
      : ready(ex),
        ex_(ex),
        hub_(hub),
        root_(std::move(root)),
        recursive_(recursive),
        include_entry_(include_entry),
        limits_(limits) {}
  ~Watcher() override { close(); }

  Event ready;  // set when events are queued or the watcher failed

  const std::string& root() const { return root_; }
  bool include_entry() const { return include_entry_; }
  const std::optional<rpc::Status>& error() const { return error_; }
  bool has_events() const { return !queue_.empty(); }

  // Takes up to `max` queued events.
  std::vector<QueuedEvent> take(std::size_t max) {
    std::vector<QueuedEvent> out;
    while (!queue_.empty() && out.size() < max) {
      bytes_ -= queue_.front().name.size() + sizeof(QueuedEvent);
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (queue_.empty()) queue_ = {};
    return out;
  }

  // Adds the watch (the whole tree when recursive) before the stream's start event.
  asio::awaitable<rpc::Status> arm_initial() {
    auto self = shared_from_this();
    hub_.begin_adds();
    auto job = [hub = &hub_, root = root_, recursive = recursive_, cancel = cancel_] {
      return arm_tree(*hub, root, "", recursive, false, cancel);
    };
    ArmOutcome out;
    try {
      out = co_await run_blocking(WorkClass::walk, job);
    } catch (...) {
      hub_.end_adds();
      throw;
    }
    rpc::Status st;
    if (out.failure) {
      for (auto& d : out.dirs) hub_.release_unattached(d.wd);
      st = rpc::error(Code::internal, hub_.add_error_text(out.failed_path, *out.failure));
    } else {
      apply(out, false);
    }
    hub_.end_adds();
    co_return st;
  }

  // Detaches from the hub; no more events. Idempotent.
  void close() {
    if (closed_) return;
    closed_ = true;
    cancel_->store(true);
    for (auto& [wd, rel] : dirs_) hub_.detach(wd, this);
    dirs_.clear();
    by_rel_.clear();
    suppress_.clear();
  }

  void fail(Code code, std::string why) {
    if (error_) return;
    error_ = rpc::error(code, std::move(why));
    queue_ = {};
    bytes_ = 0;
    close();
    ready.set();
  }

  void on_lost(const std::string& why) override { fail(Code::data_loss, why); }

  void on_inotify(int wd, const RawEvent& ev) override {
    auto it = dirs_.find(wd);
    if (it == dirs_.end()) return;
    const std::string rel = it->second;
    if (ev.mask & IN_IGNORED) {
      forget(wd);
      return;
    }
    const bool self_event = ev.name.empty();
    // A subdirectory's own DELETE_SELF/MOVE_SELF: its parent's watch reports it (as fsnotify).
    if (self_event && !rel.empty()) return;
    std::string name = self_event ? "." : join_rel(rel, ev.name);
    if (!self_event) {
      if (ev.mask & (IN_CREATE | IN_MOVED_TO)) {
        if (auto s = suppress_.find(rel); s != suppress_.end()) {
          if (s->second.erase(std::string(ev.name))) {
            if (s->second.empty()) suppress_.erase(s);
            return;  // already reported by the scan of a new directory
          }
        }
      }
      if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) {
        if (auto s = suppress_.find(rel); s != suppress_.end()) {
          s->second.erase(std::string(ev.name));
          if (s->second.empty()) suppress_.erase(s);
        }
      }
    }
    if (ev.mask & (IN_CREATE | IN_MOVED_TO)) push(name, pb::EVENT_TYPE_CREATE);
    if (ev.mask & (IN_MOVED_FROM | IN_MOVE_SELF)) push(name, pb::EVENT_TYPE_RENAME);
    if (ev.mask & IN_ATTRIB) push(name, pb::EVENT_TYPE_CHMOD);
    if (ev.mask & IN_MODIFY) push(name, pb::EVENT_TYPE_WRITE);
    if (ev.mask & (IN_DELETE | IN_DELETE_SELF)) push(name, pb::EVENT_TYPE_REMOVE);
    if (!recursive_ || self_event || !(ev.mask & IN_ISDIR) || closed_) return;
    if (ev.mask & IN_MOVED_FROM) drop_subtree(name);  // it now lives elsewhere: its watches would lie
    if (ev.mask & (IN_CREATE | IN_MOVED_TO)) arm_later(name);
  }

 private:
  void push(std::string name, pb::EventType type) {
    if (error_ || closed_) return;
    if (queue_.size() >= limits_.max_events || bytes_ + name.size() + sizeof(QueuedEvent) > limits_.max_bytes) {
      fail(Code::data_loss, "events were lost: the watcher's queue is full (" + std::to_string(limits_.max_events) +
                                " events or " + std::to_string(limits_.max_bytes) +
                                " bytes; the client did not take them fast enough; " + limits_.flag + ")");
      return;
    }
    bytes_ += name.size() + sizeof(QueuedEvent);
    queue_.push_back(QueuedEvent{std::move(name), type});
    ready.set();
  }

  void forget(int wd) {
    auto it = dirs_.find(wd);
    if (it == dirs_.end()) return;
    by_rel_.erase(it->second);
    suppress_.erase(it->second);
    dirs_.erase(it);
  }

  void drop_subtree(const std::string& rel) {
    std::vector<int> gone;
    for (auto& [wd, r] : dirs_) {
      if (r == rel || (r.size() > rel.size() && r.compare(0, rel.size(), rel) == 0 && r[rel.size()] == '/'))
        gone.push_back(wd);
    }
    for (int wd : gone) {
      forget(wd);
      hub_.detach(wd, this);
    }
  }

  // A directory appeared inside the tree: add it (and what is below it) on the pool, then report
  // what was created inside before its watch landed.
  void arm_later(const std::string& rel) {
    if (by_rel_.count(rel)) return;
    hub_.begin_adds();
    ++arming_;
    asio::co_spawn(ex_, arm_later_job(shared_from_this(), rel), asio::detached);
  }

  static asio::awaitable<void> arm_later_job(WatcherPtr self, std::string rel) {
    auto job = [hub = &self->hub_, root = self->root_, rel, cancel = self->cancel_] {
      return arm_tree(*hub, root, rel, true, true, cancel);
    };
    ArmOutcome out;
    bool ok = true;
    try {
      out = co_await run_blocking(WorkClass::walk, job);
    } catch (...) {
      ok = false;
    }
    --self->arming_;
    if (!ok || self->closed_) {
      for (auto& d : out.dirs) self->hub_.release_unattached(d.wd);
    } else {
      self->apply(out, true);
      if (out.failure && !(out.failure->err == ENOENT || out.failure->err == ENOTDIR)) {
        self->fail(Code::data_loss, "events were lost: " + self->hub_.add_error_text(out.failed_path, *out.failure));
      }
    }
    self->hub_.end_adds();
  }

  // Loop: takes over the watches a job added; for new directories, reports the scan first (and
  // remembers its names), then attaches, which replays the events held meanwhile.
  void apply(ArmOutcome& out, bool scan) {
    for (auto& d : out.dirs) {
      if (closed_ || by_rel_.count(d.rel)) {
        hub_.release_unattached(d.wd);
        continue;
      }
      if (dirs_.count(d.wd)) {  // the same directory under a new name: one attachment, the new name
        forget(d.wd);
        hub_.detach(d.wd, this);  // deferred while adds are pending, so attach() below revives it
      }
      if (scan) {
        auto& names = suppress_[d.rel];
        for (auto& [name, is_dir] : d.entries) {
          push(join_rel(d.rel, name), pb::EVENT_TYPE_CREATE);
          names.insert(name);
        }
        if (names.empty()) suppress_.erase(d.rel);
      }
      dirs_[d.wd] = d.rel;
      by_rel_[d.rel] = d.wd;
      if (!hub_.attach(d.wd, this)) forget(d.wd);
    }
  }

  asio::any_io_executor ex_;
  InotifyHub& hub_;
  std::string root_;
  bool recursive_;
  bool include_entry_;
  WatcherLimits limits_;
  std::unordered_map<int, std::string> dirs_;  // wd → path relative to the root ("" = root)
  std::unordered_map<std::string, int> by_rel_;
  // Per directory (relative path): names reported by a scan whose kernel CREATE is still due.
  std::unordered_map<std::string, std::unordered_set<std::string>> suppress_;
  std::deque<QueuedEvent> queue_;
  std::size_t bytes_ = 0;
  std::optional<rpc::Status> error_;
  bool closed_ = false;
  int arming_ = 0;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
};

// Pool thread: the EntryInfo of each CREATE/WRITE/CHMOD event, if stat succeeds now (§5.7).
struct EntryJobResult {
  std::vector<std::optional<pb::EntryInfo>> entries;
};

asio::awaitable<EntryJobResult> stat_entries(const std::string& root, const std::vector<QueuedEvent>& evs) {
  std::vector<std::string> paths;
  paths.reserve(evs.size());
  for (const auto& e : evs) {
    bool wants = e.type == pb::EVENT_TYPE_CREATE || e.type == pb::EVENT_TYPE_WRITE || e.type == pb::EVENT_TYPE_CHMOD;
    paths.push_back(wants ? abs_path(root, e.name == "." ? std::string() : e.name) : std::string());
  }
  auto job = [paths = std::move(paths)] {
    EntryJobResult r;
    r.entries.resize(paths.size());
    IdNames names;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      if (paths[i].empty()) continue;
      pb::EntryInfo info;
      if (entry_info_at(paths[i], names, info) == 0) r.entries[i] = std::move(info);
    }
    return r;
  };
  co_return co_await run_blocking(WorkClass::meta, job);
}

bool legacy_client(const rpc::CallContext& ctx) {
  auto ua = ctx.header("user-agent");
  return ua && *ua == "connect-python";  // §5.10: FilesystemEvent keeps only name and type
}

void fill_events(const std::vector<QueuedEvent>& evs, EntryJobResult* entries, bool legacy,
                 google::protobuf::RepeatedPtrField<pb::FilesystemEvent>& out) {
  for (std::size_t i = 0; i < evs.size(); ++i) {
    auto* e = out.Add();
    e->set_name(evs[i].name);
    e->set_type(evs[i].type);
    if (entries && !legacy && entries->entries[i]) *e->mutable_entry() = std::move(*entries->entries[i]);
  }
}

class WatchService {
 public:
  WatchService(SandboxState& state, const asio::any_io_executor& ex, const WatchConfig& cfg)
      : state_(state), ex_(ex), cfg_(cfg), hub_(ex, HubConfig{cfg.max_inotify_watches}), idle_timer_(ex) {}

  asio::awaitable<rpc::Status> watch_dir(rpc::CallContext& ctx, const pb::WatchDirRequest& req,
                                         rpc::Writer<pb::WatchDirResponse>& out) {
    WatcherPtr w;
    if (auto st = co_await create(ctx, req.path(), req.recursive(), req.include_entry(), req.allow_network_mounts(),
                                  WatcherLimits{cfg_.stream_queue_events, cfg_.stream_queue_bytes,
                                                "--watch-queue-events / --watch-queue-bytes"},
                                  w);
        !st.ok())
      co_return st;
    struct Closer {
      WatcherPtr w;
      ~Closer() { w->close(); }
    } closer{w};
    const bool legacy = legacy_client(ctx);
    rpc::KeepaliveTimer ka(ctx.executor(), ctx.keepalive_interval);
    pb::WatchDirResponse msg;
    msg.mutable_start();
    if (!co_await out.send(msg)) co_return rpc::error(Code::canceled, "client disconnected");
    EventSource src{*w, legacy, {}, {}, 0};
    co_return co_await rpc::run_stream(out, src, w->ready, ka);
  }

  asio::awaitable<rpc::Status> create_watcher(rpc::CallContext& ctx, const pb::CreateWatcherRequest& req,
                                              pb::CreateWatcherResponse& resp) {
    evict_under_pressure();
    WatcherPtr w;
    if (auto st = co_await create(ctx, req.path(), req.recursive(), req.include_entry(), req.allow_network_mounts(),
                                  WatcherLimits{cfg_.poll_queue_events, cfg_.poll_queue_bytes,
                                                "--watcher-queue-events / --watcher-queue-bytes"},
                                  w);
        !st.ok())
      co_return st;
    std::string id = new_id();
    lru_.push_back(id);
    polled_[id] = Polled{w, std::chrono::steady_clock::now(), std::prev(lru_.end())};
    resp.set_watcher_id(id);
    arm_idle_timer();
    co_return rpc::Status{};
  }

  asio::awaitable<rpc::Status> get_events(rpc::CallContext& ctx, const pb::GetWatcherEventsRequest& req,
                                          pb::GetWatcherEventsResponse& resp) {
    auto it = polled_.find(req.watcher_id());
    if (it == polled_.end()) co_return unknown(req.watcher_id());
    WatcherPtr w = it->second.watcher;
    it->second.last_poll = std::chrono::steady_clock::now();
    lru_.splice(lru_.end(), lru_, it->second.lru_pos);
    if (w->error()) co_return *w->error();
    auto evs = w->take(SIZE_MAX);
    if (w->include_entry() && !evs.empty()) {
      EntryJobResult entries = co_await stat_entries(w->root(), evs);
      fill_events(evs, &entries, legacy_client(ctx), *resp.mutable_events());
    } else {
      fill_events(evs, nullptr, false, *resp.mutable_events());
    }
    co_return rpc::Status{};
  }

  asio::awaitable<rpc::Status> remove_watcher(rpc::CallContext&, const pb::RemoveWatcherRequest& req,
                                              pb::RemoveWatcherResponse&) {
    auto it = polled_.find(req.watcher_id());
    if (it == polled_.end()) co_return unknown(req.watcher_id());
    it->second.watcher->close();
    lru_.erase(it->second.lru_pos);
    polled_.erase(it);
    co_return rpc::Status{};
  }

 private:
  struct Polled {
    WatcherPtr watcher;
    std::chrono::steady_clock::time_point last_poll;
    std::list<std::string>::iterator lru_pos;
  };

  asio::awaitable<rpc::Status> create(rpc::CallContext& ctx, const std::string& in_path, bool recursive,
                                      bool include_entry, bool allow_network, WatcherLimits limits, WatcherPtr& out) {
    ResolvedPath r = expand_and_resolve(in_path, ctx.user, state_.default_workdir);
    if (!r.ok()) co_return rpc::error(Code::invalid_argument, r.error);
    std::string path =
        r.path.empty() ? (ctx.user.home.empty() ? std::string("/") : clean_path(ctx.user.home)) : std::move(r.path);
    auto check = [path, allow_network] { return validate_dir(path, allow_network); };
    rpc::Status st = co_await run_blocking(WorkClass::meta, check);
    if (!st.ok()) co_return st;
    if (int err = hub_.open(); err != 0)
      co_return rpc::error(Code::internal, "error creating watcher: " + syscall_error("inotify_init1", err));
    auto w = std::make_shared<Watcher>(ex_, hub_, path, recursive, include_entry, limits);
    st = co_await w->arm_initial();
    if (!st.ok()) {
      w->close();
      co_return st;
    }
    out = std::move(w);
    co_return rpc::Status{};
  }

  // A watcher as a stream source (envd/rpc/stream_loop.h): its events, in batches whose entries
  // are stat'ed together, until the client goes, the deadline passes (the RPC layer cancels the
  // call) or the watcher fails.
  struct EventSource {
    Watcher& w;
    bool legacy;
    std::vector<QueuedEvent> batch;
    std::optional<EntryJobResult> entries;
    std::size_t next = 0;

    asio::awaitable<rpc::Pull> pull(pb::WatchDirResponse& msg) {
      if (w.error()) co_return rpc::Pull::end(*w.error());
      if (next == batch.size()) {
        if (!w.has_events()) co_return rpc::Pull::idle();
        batch = w.take(256);
        next = 0;
        entries.reset();
        if (w.include_entry() && !legacy) entries = co_await stat_entries(w.root(), batch);
      }
      const std::size_t i = next++;
      msg.Clear();
      auto* e = msg.mutable_filesystem();
      e->set_name(std::move(batch[i].name));
      e->set_type(batch[i].type);
      if (entries && entries->entries[i]) *e->mutable_entry() = std::move(*entries->entries[i]);
      co_return rpc::Pull::message();
    }
    void keepalive(pb::WatchDirResponse& msg) {
      msg.Clear();
      msg.mutable_keepalive();
    }
  };

  rpc::Status unknown(const std::string& id) {
    if (auto it = evicted_.find(id); it != evicted_.end()) {
      return rpc::error(Code::failed_precondition, "watcher " + id + " was evicted after " +
                                                       std::to_string(it->second) + " s without GetWatcherEvents");
    }
    return rpc::error(Code::not_found, "watcher with id " + id + " not found");
  }

  std::string new_id() {
    static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<int> pick(0, 35);
    for (;;) {
      std::string id = "w";
      for (int i = 0; i < 20; ++i) id += kChars[pick(rng_)];
      if (!polled_.count(id) && !evicted_.count(id)) return id;
    }
  }

  void evict(std::string id) {  // by value: callers pass lru_.front(), which this erases
    auto it = polled_.find(id);
    if (it == polled_.end()) return;
    auto idle =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - it->second.last_poll);
    it->second.watcher->close();
    lru_.erase(it->second.lru_pos);
    polled_.erase(it);
    evicted_[id] = idle.count();
    evicted_order_.push_back(id);
    while (evicted_order_.size() > 4096) {
      evicted_.erase(evicted_order_.front());
      evicted_order_.pop_front();
    }
  }

  // Under pressure (too many polling watchers, or the watch budget nearly used up), the least
  // recently polled watchers go first.
  void evict_under_pressure() {
    while (!lru_.empty() && polled_.size() >= cfg_.max_poll_watchers) evict(lru_.front());
    while (!lru_.empty() && hub_.watches_in_use() * 10 >= hub_.max_watches() * 9) evict(lru_.front());
  }

  void arm_idle_timer() {
    if (idle_armed_ || polled_.empty()) return;
    idle_armed_ = true;
    auto period = std::clamp<std::chrono::milliseconds>(cfg_.poll_idle_timeout / 4, std::chrono::milliseconds(50),
                                                        std::chrono::milliseconds(60'000));
    idle_timer_.expires_after(period);
    idle_timer_.async_wait([this](const boost::system::error_code& ec) {
      idle_armed_ = false;
      if (ec) return;
      auto now = std::chrono::steady_clock::now();
      while (!lru_.empty()) {
        auto& p = polled_.at(lru_.front());
        if (now - p.last_poll < cfg_.poll_idle_timeout) break;
        evict(lru_.front());
      }
      arm_idle_timer();
    });
  }

  SandboxState& state_;
  asio::any_io_executor ex_;
  WatchConfig cfg_;
  InotifyHub hub_;
  std::unordered_map<std::string, Polled> polled_;
  std::list<std::string> lru_;  // least recently polled first
  std::unordered_map<std::string, long long> evicted_;
  std::deque<std::string> evicted_order_;
  asio::steady_timer idle_timer_;
  bool idle_armed_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace

void register_watch_service(rpc::Registry& registry, SandboxState& state, const asio::any_io_executor& ex,
                            const WatchConfig& config) {
  // Lives as long as the registry's handlers (the daemon's life).
  auto svc = std::make_shared<WatchService>(state, ex, config);
  registry.server_stream<pb::WatchDirRequest, pb::WatchDirResponse>(
      kService, "WatchDir", [svc](auto& ctx, const auto& req, auto& out) { return svc->watch_dir(ctx, req, out); });
  registry.unary<pb::CreateWatcherRequest, pb::CreateWatcherResponse>(
      kService, "CreateWatcher",
      [svc](auto& ctx, const auto& req, auto& resp) { return svc->create_watcher(ctx, req, resp); });
  registry.unary<pb::GetWatcherEventsRequest, pb::GetWatcherEventsResponse>(
      kService, "GetWatcherEvents",
      [svc](auto& ctx, const auto& req, auto& resp) { return svc->get_events(ctx, req, resp); });
  registry.unary<pb::RemoveWatcherRequest, pb::RemoveWatcherResponse>(
      kService, "RemoveWatcher",
      [svc](auto& ctx, const auto& req, auto& resp) { return svc->remove_watcher(ctx, req, resp); });
}

}  // namespace envd::fs
