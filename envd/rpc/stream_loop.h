#pragma once
// The loop every long-lived server stream runs (process Start/Connect, filesystem WatchDir): send
// what the source has, a keepalive whenever one falls due in a quiet spell (contract §1.4), and
// sleep on the source's wake-up event otherwise. One loop, so the streams cannot drift apart in
// how they treat keepalives, a client that went away, or a source that ended.
//
// A source is any type with
//   asio::awaitable<Pull> pull(Resp& msg)   // fill `msg` and say what to do with it
//   void keepalive(Resp& msg)               // fill `msg` as a keepalive message
// It owns the `ready` event the loop sleeps on; the keepalive timer sets it too. `pull` may
// suspend (e.g. to stat entries on the blocking pool) but must not wait for new data: it answers
// `idle` instead, and sets `ready` when data arrives.
#include <boost/asio/awaitable.hpp>
#include <utility>

#include "envd/event.h"
#include "envd/rpc/keepalive.h"
#include "envd/rpc/service.h"
#include "envd/rpc/status.h"

namespace envd::rpc {

struct Pull {
  enum class Kind {
    message,  // send `msg`, then pull again
    last,     // send `msg`, then end the stream with `status`
    idle,     // nothing to send now: keepalive if due, else sleep until `ready`
    end,      // end the stream with `status` without sending anything
  };
  Kind kind = Kind::idle;
  Status status;

  static Pull message() { return {Kind::message, {}}; }
  static Pull last(Status st = {}) { return {Kind::last, std::move(st)}; }
  static Pull idle() { return {Kind::idle, {}}; }
  static Pull end(Status st) { return {Kind::end, std::move(st)}; }
};

inline Status client_gone() { return error(Code::canceled, "client disconnected"); }

// Runs until the source ends the stream or the client goes (`canceled`). The RPC layer cancels
// the coroutine itself when the call's deadline passes or the daemon shuts down.
template <class Resp, class Source>
asio::awaitable<Status> run_stream(Writer<Resp>& out, Source& src, Event& ready, KeepaliveTimer& ka) {
  Resp msg;
  ka.start([&ready] { ready.set(); });
  for (;;) {
    Pull p = co_await src.pull(msg);
    switch (p.kind) {
      case Pull::Kind::message:
      case Pull::Kind::last:
        if (!co_await out.send(msg)) co_return client_gone();
        if (p.kind == Pull::Kind::last) co_return std::move(p.status);
        ka.reset();
        continue;
      case Pull::Kind::end: co_return std::move(p.status);
      case Pull::Kind::idle: break;
    }
    if (ka.take_due()) {
      src.keepalive(msg);
      if (!co_await out.send(msg)) co_return client_gone();
      continue;
    }
    ready.reset();
    co_await ready.wait();
  }
}

}  // namespace envd::rpc
