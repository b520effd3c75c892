#pragma once
// One inotify instance for the whole daemon (contract §5.7, issue 9). Its fd is drained on the
// loop by a callback chain (an asio stream_descriptor waiting for readability), so a busy
// watcher cannot keep the kernel's queue from being read. Watch descriptors are shared between
// watchers of the same directory and reference-counted; the last watcher to let go removes it.
//
// inotify_add_watch resolves a client-supplied path, so it runs on the blocking pool (arm());
// events for a watch descriptor that a pool job has added but the loop has not attached yet are
// held (bounded) and replayed on attach, so nothing between "armed" and "attached" is lost.
#include <sys/inotify.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace envd::fs {

// What the hub tells a listener about one inotify event on a directory it attached to.
struct RawEvent {
  std::uint32_t mask = 0;
  std::string_view name;  // empty for events on the directory itself
};

class HubListener {
 public:
  virtual ~HubListener() = default;
  // An event on watch descriptor `wd`.
  virtual void on_inotify(int wd, const RawEvent& ev) = 0;
  // The kernel or the hub lost events (IN_Q_OVERFLOW, hold buffer full): `why` says which.
  virtual void on_lost(const std::string& why) = 0;
};

// The kernel's inotify watch limit for envd's user: fs.inotify.max_user_watches, or the user
// namespace's user.max_inotify_watches when lower (in a container).
std::size_t kernel_watch_limit();
// "error creating watcher: inotify_init1: …" for an errno of InotifyHub::open(); EMFILE names the
// limits that may be reached (the open files limit, the inotify instance limits).
std::string init_error_text(int err);

struct HubConfig {
  std::size_t max_watches = 0;        // 0: half of /proc/sys/fs/inotify/max_user_watches
  std::size_t hold_bytes = 8u << 20;  // events held for watch descriptors being attached
};

// Result of adding watches on a pool thread.
struct AddResult {
  int wd = -1;
  int err = 0;          // errno of inotify_add_watch, or ENOSPC with `budget` for our own limit
  bool budget = false;  // refused by --max-inotify-watches
};

class InotifyHub {
 public:
  static constexpr std::uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_DELETE | IN_DELETE_SELF |
                                         IN_MOVED_FROM | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR | IN_DONT_FOLLOW;

  InotifyHub(const boost::asio::any_io_executor& ex, HubConfig cfg);
  ~InotifyHub();
  InotifyHub(const InotifyHub&) = delete;
  InotifyHub& operator=(const InotifyHub&) = delete;

  // Opens the inotify fd on first use (again after a failure). Returns 0 or the errno of
  // inotify_init1; init_error_text() words it for the client.
  int open();

  // --- called on the loop around a pool job that calls add() ---
  void begin_adds() { ++pending_adds_; }
  void end_adds();

  // Pool thread: inotify_add_watch within the budget. Every successful add must be attach()ed or
  // release()d on the loop afterwards.
  AddResult add(const std::string& path);

  // Loop: `l` receives the events of `wd` from now on (held ones first). Returns false if the
  // watch is gone already (the directory was removed before attach).
  bool attach(int wd, HubListener* l);
  // Loop: the add of `wd` was not attached (job cancelled, watcher gone).
  void release_unattached(int wd);
  // Loop: `l` stops receiving `wd`'s events; the last listener removes the watch.
  void detach(int wd, HubListener* l);

  std::size_t watches_in_use() const { return used_.load(); }
  std::size_t max_watches() const { return max_watches_; }
  std::size_t kernel_max_user_watches() const { return kernel_max_; }
  // "error adding path <p> to watcher: ..." text for an AddResult failure.
  std::string add_error_text(const std::string& path, const AddResult& r) const;

 private:
  struct Watch {
    std::vector<HubListener*> listeners;
    int refs = 0;  // attached listeners + adds not attached yet
  };
  void read_some();
  void drain();
  void dispatch(const inotify_event& ev);
  void unref(int wd);

  boost::asio::any_io_executor ex_;
  HubConfig cfg_;
  std::size_t max_watches_ = 0;
  std::size_t kernel_max_ = 0;
  int fd_ = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool reading_ = false;
  std::unordered_map<int, Watch> watches_;
  std::atomic<std::size_t> used_{0};  // distinct watches counted against the budget (+ reservations)
  int pending_adds_ = 0;
  std::vector<char> held_;  // raw events for wds not known yet while adds are pending
  bool held_overflow_ = false;
  std::vector<int> deferred_rm_;  // wds whose last ref went while adds were pending
  std::vector<char> buf_;
};

}  // namespace envd::fs
