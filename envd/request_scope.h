#pragma once
// One request's cancellation, the same for REST and RPC: the client going away, an RPC deadline,
// or envd shutting down cancels it once. What runs for the request listens to it:
// - pool jobs poll token() (envd/blocking.h) between chunks of work;
// - callbacks registered with on_cancel() run once, on the loop, in a handler of their own (never
//   inside the session code that noticed the client going away);
// - the router and the RPC layer also cancel the handler's coroutine (asio terminal cancellation).
// Routes that must always finish (thaw: /fsthaw, /unfreeze, the /init thaw) are created with
// run_to_completion: nothing cancels them.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "envd/blocking.h"

namespace envd {

enum class CancelReason { none, client_gone, deadline, shutdown };

class RequestScope : public std::enable_shared_from_this<RequestScope> {
 public:
  explicit RequestScope(boost::asio::any_io_executor ex, bool run_to_completion = false)
      : ex_(std::move(ex)), flag_(std::make_shared<std::atomic<bool>>(false)), run_to_completion_(run_to_completion) {}

  bool cancelled() const { return reason_ != CancelReason::none; }
  CancelReason reason() const { return reason_; }
  // For pool jobs: set (on the loop) the moment the scope is cancelled.
  CancelToken token() const { return flag_; }
  bool run_to_completion() const { return run_to_completion_; }

  // Calls `fn` once on the loop when the scope is cancelled (soon, if it already is). Returns an
  // id for forget(). Callbacks are dropped, uncalled, when the request ends (finish()).
  std::uint64_t on_cancel(std::function<void()> fn);
  void forget(std::uint64_t id);

  // First reason wins; ignored once finished or for run_to_completion scopes.
  void cancel(CancelReason why);
  // The request is over: drop the callbacks; later cancellations are ignored.
  void finish();
  bool finished() const { return finished_; }

 private:
  void run_callbacks();

  boost::asio::any_io_executor ex_;
  std::shared_ptr<std::atomic<bool>> flag_;
  // Most requests register one callback (the RPC layer's, the REST router's): kept inline.
  boost::container::small_vector<std::pair<std::uint64_t, std::function<void()>>, 1> callbacks_;
  std::uint64_t next_id_ = 0;
  CancelReason reason_ = CancelReason::none;
  bool run_to_completion_ = false;
  bool finished_ = false;
  bool posted_ = false;
};

}  // namespace envd
