#include "fs/inotify_hub.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "envd/log.h"
#include "envd/os_error.h"

namespace envd::fs {

namespace asio = boost::asio;

namespace {

constexpr const char* kMaxUserWatches = "/proc/sys/fs/inotify/max_user_watches";
constexpr const char* kMaxUserInstances = "/proc/sys/fs/inotify/max_user_instances";
// The same limits for envd's user namespace (a container's): the kernel enforces both.
constexpr const char* kNsMaxWatches = "/proc/sys/user/max_inotify_watches";
constexpr const char* kNsMaxInstances = "/proc/sys/user/max_inotify_instances";

std::size_t read_proc_number(const char* path, std::size_t fallback) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fallback;
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return fallback;
  buf[n] = 0;
  unsigned long long v = std::strtoull(buf, nullptr, 10);
  return v ? static_cast<std::size_t>(v) : fallback;
}

// "fs.inotify.<name> = N", plus the user namespace's value when it is the lower one.
std::string limit_text(const char* global_path, const char* ns_path, const char* name, const char* ns_name) {
  std::size_t global = read_proc_number(global_path, 0);
  std::string text = std::string("fs.inotify.") + name + " = " + std::to_string(global);
  // A value of 0 reads as "unknown" (the fallback): check that the file is there.
  if (::access(ns_path, R_OK) == 0) {
    std::size_t ns = read_proc_number(ns_path, 0);
    if (ns < global)
      text += std::string(", user.") + ns_name + " = " + std::to_string(ns) + " in envd's user namespace";
  }
  return text;
}

}  // namespace

std::size_t kernel_watch_limit() {
  std::size_t global = read_proc_number(kMaxUserWatches, 8192);
  std::size_t ns = read_proc_number(kNsMaxWatches, global);
  return std::max<std::size_t>(1, std::min(global, ns));
}

std::string init_error_text(int err) {
  std::string text = "error creating watcher: inotify_init1: " + errno_text(err);
  if (err == EMFILE) {
    text += " (envd's open files limit, or the kernel's inotify instance limit: " +
            limit_text(kMaxUserInstances, kNsMaxInstances, "max_user_instances", "max_inotify_instances") + ")";
  }
  return text;
}

InotifyHub::InotifyHub(const asio::any_io_executor& ex, HubConfig cfg) : ex_(ex), cfg_(cfg) {
  kernel_max_ = kernel_watch_limit();
  // A share of the user's limit: the sandbox's own tools (IDEs, dev servers) watch as root too.
  max_watches_ = cfg_.max_watches ? cfg_.max_watches : std::max<std::size_t>(1, kernel_max_ / 2);
}

InotifyHub::~InotifyHub() {
  *alive_ = false;
  if (sd_) {
    boost::system::error_code ec;
    sd_->close(ec);  // closes fd_ and with it every watch
  }
}

int InotifyHub::open() {
  if (fd_ >= 0) return 0;
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return errno;
  fd_ = fd;
  sd_ = std::make_unique<asio::posix::stream_descriptor>(ex_, fd);
  buf_.resize(256 * 1024);
  read_some();
  return 0;
}

void InotifyHub::read_some() {
  if (reading_ || !sd_) return;
  reading_ = true;
  sd_->async_wait(asio::posix::stream_descriptor::wait_read,
                  [this, alive = alive_](const boost::system::error_code& ec) {
                    if (!*alive) return;
                    reading_ = false;
                    if (ec) {
                      if (ec != asio::error::operation_aborted) log::error("watch", "inotify wait: " + ec.message());
                      return;
                    }
                    drain();
                    read_some();
                  });
}

// Reads everything the kernel has queued now: the queue (max_queued_events) is emptied at every
// wake-up, and listeners only append to their own queues, so one wake-up costs little.
void InotifyHub::drain() {
  for (;;) {
    ssize_t n = ::read(fd_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) log::error("watch", "inotify read: " + errno_text(errno));
      return;
    }
    if (n == 0) return;
    for (ssize_t off = 0; off < n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf_.data() + off);
      std::size_t size = sizeof(inotify_event) + ev->len;
      if (ev->wd >= 0 && !watches_.count(ev->wd) && pending_adds_ > 0) {
        // A pool job may have just added this wd: hold the event for attach().
        if (held_.size() + size <= cfg_.hold_bytes) {
          held_.insert(held_.end(), buf_.data() + off, buf_.data() + off + size);
        } else {
          held_overflow_ = true;
        }
      } else {
        dispatch(*ev);
      }
      off += static_cast<ssize_t>(size);
    }
  }
}

void InotifyHub::dispatch(const inotify_event& ev) {
  if (ev.mask & IN_Q_OVERFLOW) {
    std::unordered_set<HubListener*> all;
    for (auto& [wd, w] : watches_) all.insert(w.listeners.begin(), w.listeners.end());
    std::string why = "events were lost: the kernel's inotify queue overflowed (fs.inotify.max_queued_events = " +
                      std::to_string(read_proc_number("/proc/sys/fs/inotify/max_queued_events", 0)) + ")";
    for (auto* l : all) l->on_lost(why);
    return;
  }
  auto it = watches_.find(ev.wd);
  if (it == watches_.end()) return;
  RawEvent re;
  re.mask = ev.mask;
  if (ev.len) re.name = std::string_view(ev.name, ::strnlen(ev.name, ev.len));
  // Listeners may detach (and so change the vector) from inside on_inotify: iterate a copy.
  auto listeners = it->second.listeners;
  for (auto* l : listeners) l->on_inotify(ev.wd, re);
  if (ev.mask & IN_IGNORED) {
    // The kernel removed the watch (directory gone or unmounted).
    it = watches_.find(ev.wd);
    if (it != watches_.end()) {
      watches_.erase(it);
      used_.fetch_sub(1);
    }
  }
}

AddResult InotifyHub::add(const std::string& path) {
  AddResult r;
  // Reserve one unit of the budget first; attach() hands it back when the wd was known already.
  std::size_t cur = used_.load();
  do {
    if (cur >= max_watches_) {
      r.err = ENOSPC;
      r.budget = true;
      return r;
    }
  } while (!used_.compare_exchange_weak(cur, cur + 1));
  int wd = ::inotify_add_watch(fd_, path.c_str(), kMask);
  if (wd < 0) {
    r.err = errno;
    used_.fetch_sub(1);
    return r;
  }
  r.wd = wd;
  return r;
}

bool InotifyHub::attach(int wd, HubListener* l) {
  auto [it, fresh] = watches_.try_emplace(wd);
  if (!fresh) used_.fetch_sub(1);  // shared with another watcher: the reservation goes back
  it->second.refs++;
  it->second.listeners.push_back(l);
  // Replay what arrived between the add and now. Copy first: a listener may add watches.
  if (!held_.empty()) {
    std::vector<char> mine;
    for (std::size_t off = 0; off < held_.size();) {
      auto* ev = reinterpret_cast<const inotify_event*>(held_.data() + off);
      std::size_t size = sizeof(inotify_event) + ev->len;
      if (ev->wd == wd) mine.insert(mine.end(), held_.data() + off, held_.data() + off + size);
      off += size;
    }
    for (std::size_t off = 0; off < mine.size();) {
      auto* ev = reinterpret_cast<const inotify_event*>(mine.data() + off);
      std::size_t size = sizeof(inotify_event) + ev->len;
      RawEvent re{ev->mask, ev->len ? std::string_view(ev->name, ::strnlen(ev->name, ev->len)) : std::string_view()};
      l->on_inotify(wd, re);
      if ((ev->mask & IN_IGNORED) && watches_.count(wd)) {
        watches_.erase(wd);
        used_.fetch_sub(1);
        return false;
      }
      off += size;
    }
  }
  if (held_overflow_) {
    l->on_lost("events were lost: more than " + std::to_string(cfg_.hold_bytes) +
               " bytes of events arrived while watches were being added");
  }
  return watches_.count(wd) != 0;
}

void InotifyHub::release_unattached(int wd) {
  auto [it, fresh] = watches_.try_emplace(wd);
  if (!fresh) used_.fetch_sub(1);
  it->second.refs++;
  unref(wd);
}

void InotifyHub::detach(int wd, HubListener* l) {
  auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  auto& ls = it->second.listeners;
  auto pos = std::find(ls.begin(), ls.end(), l);
  if (pos == ls.end()) return;
  ls.erase(pos);
  unref(wd);
}

void InotifyHub::unref(int wd) {
  auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  if (--it->second.refs > 0) return;
  if (pending_adds_ > 0) {
    // A pool job may be adding the same directory and get this wd back: remove it only once no
    // add is in flight (attach() revives it meanwhile).
    deferred_rm_.push_back(wd);
    return;
  }
  ::inotify_rm_watch(fd_, wd);
  watches_.erase(it);
  used_.fetch_sub(1);
}

void InotifyHub::end_adds() {
  if (--pending_adds_ > 0) return;
  held_.clear();
  held_.shrink_to_fit();
  held_overflow_ = false;
  auto rm = std::move(deferred_rm_);
  deferred_rm_.clear();
  for (int wd : rm) {
    auto it = watches_.find(wd);
    if (it == watches_.end() || it->second.refs > 0) continue;
    ::inotify_rm_watch(fd_, wd);
    watches_.erase(it);
    used_.fetch_sub(1);
  }
}

std::string InotifyHub::add_error_text(const std::string& path, const AddResult& r) const {
  std::string head = "error adding path " + path + " to watcher: ";
  if (r.budget) {
    return head + "envd's inotify watch budget of " + std::to_string(max_watches_) +
           " watches is used up (--max-inotify-watches; the kernel allows fs.inotify.max_user_watches = " +
           std::to_string(kernel_max_) + " per user)";
  }
  if (r.err == ENOSPC) {
    return head + "the kernel's inotify watch limit is reached (" +
           limit_text(kMaxUserWatches, kNsMaxWatches, "max_user_watches", "max_inotify_watches") +
           "; raise it with sysctl -w fs.inotify.max_user_watches=N)";
  }
  return head + errno_text(r.err);
}

}  // namespace envd::fs
