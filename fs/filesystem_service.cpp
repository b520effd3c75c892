// filesystem.Filesystem (contract §5): Stat, ListDir, MakeDir, Move, Remove. Handlers resolve the
// user and paths on the loop (§3.2), then run every syscall on the blocking pool (fs_ops.h does
// the work and words the errors); all filesystem work is done as root (§2.3 [QUIRK]).
#include "fs/filesystem_service.h"

#include <google/protobuf/descriptor.h>

#include <memory>
#include <string>

#include "envd/blocking.h"
#include "envd/paths.h"
#include "filesystem.pb.h"
#include "fs/fs_ops.h"

namespace envd::fs {

namespace {

namespace asio = boost::asio;
using rpc::Code;
namespace pb = ::filesystem;

constexpr std::string_view kService = "filesystem.Filesystem";

// §5.10: the ancient Python SDK (User-Agent exactly `connect-python`) gets EntryInfo with only
// name, type and path. (envd also adds `X-E2B-Legacy-SDK: true`; handlers cannot set response
// headers in our RPC layer, so that header is not sent.)
bool legacy_client(const rpc::CallContext& ctx) {
  auto ua = ctx.header("user-agent");
  return ua && *ua == "connect-python";
}

void shape_legacy(pb::EntryInfo& e) {
  std::string name = std::move(*e.mutable_name());
  std::string path = std::move(*e.mutable_path());
  auto type = e.type();
  e.Clear();
  e.set_name(std::move(name));
  e.set_type(type);
  e.set_path(std::move(path));
}

class FilesystemService {
 public:
  explicit FilesystemService(SandboxState& state) : state_(state) {}

  asio::awaitable<rpc::Status> stat(rpc::CallContext& ctx, const pb::StatRequest& req, pb::StatResponse& resp) {
    std::string path;
    if (auto st = resolve(ctx, req.path(), path); !st.ok()) co_return st;
    // `resp` lives in the caller's frame, which stays suspended until the job has run.
    auto job = [path = std::move(path), entry = resp.mutable_entry()] {
      IdNames names;
      return stat_entry(path, names, *entry);
    };
    rpc::Status st = co_await run_blocking(WorkClass::meta, job);
    if (st.ok() && legacy_client(ctx)) shape_legacy(*resp.mutable_entry());
    co_return st;
  }

  asio::awaitable<rpc::Status> list_dir(rpc::CallContext& ctx, const pb::ListDirRequest& req,
                                        pb::ListDirResponse& resp) {
    std::string path;
    if (auto st = resolve(ctx, req.path(), path); !st.ok()) co_return st;
    auto job = [path = std::move(path), depth = req.depth(), out = &resp, cancel = ctx.cancel_token] {
      IdNames names;
      rpc::Status st = fs::list_dir(path, depth, names, *out, cancel);
      if (!st.ok()) out->Clear();
      return st;
    };
    rpc::Status st = co_await run_blocking(WorkClass::walk, job);
    if (st.ok() && legacy_client(ctx)) {
      for (auto& e : *resp.mutable_entries()) shape_legacy(e);
    }
    co_return st;
  }

  asio::awaitable<rpc::Status> make_dir(rpc::CallContext& ctx, const pb::MakeDirRequest& req,
                                        pb::MakeDirResponse& resp) {
    std::string path;
    if (auto st = resolve(ctx, req.path(), path); !st.ok()) co_return st;
    auto job = [path = std::move(path), uid = ctx.user.uid, gid = ctx.user.gid, entry = resp.mutable_entry()] {
      IdNames names;
      return fs::make_dir(path, uid, gid, names, *entry);
    };
    rpc::Status st = co_await run_blocking(WorkClass::meta, job);
    if (st.ok() && legacy_client(ctx)) shape_legacy(*resp.mutable_entry());
    co_return st;
  }

  asio::awaitable<rpc::Status> move(rpc::CallContext& ctx, const pb::MoveRequest& req, pb::MoveResponse& resp) {
    std::string src, dst;
    if (auto st = resolve(ctx, req.source(), src); !st.ok()) co_return st;
    if (auto st = resolve(ctx, req.destination(), dst); !st.ok()) co_return st;
    // `walk`: across devices a move is a copy of a whole tree.
    auto job = [src = std::move(src), dst = std::move(dst), uid = ctx.user.uid, gid = ctx.user.gid,
                entry = resp.mutable_entry(), cancel = ctx.cancel_token] {
      IdNames names;
      return fs::move(src, dst, uid, gid, names, *entry, cancel);
    };
    rpc::Status st = co_await run_blocking(WorkClass::walk, job);
    if (st.ok() && legacy_client(ctx)) shape_legacy(*resp.mutable_entry());
    co_return st;
  }

  asio::awaitable<rpc::Status> remove(rpc::CallContext& ctx, const pb::RemoveRequest& req, pb::RemoveResponse&) {
    std::string path;
    if (auto st = resolve(ctx, req.path(), path); !st.ok()) co_return st;
    auto job = [path = std::move(path), cancel = ctx.cancel_token] { return fs::remove(path, cancel); };
    co_return co_await run_blocking(WorkClass::walk, job);
  }

 private:
  // §3.2 for the call's user: "" → the default workdir, else the user's home.
  rpc::Status resolve(const rpc::CallContext& ctx, const std::string& in, std::string& out) const {
    ResolvedPath r = expand_and_resolve(in, ctx.user, state_.default_workdir);
    if (!r.ok()) return rpc::error(Code::invalid_argument, r.error);
    out = r.path.empty() ? (ctx.user.home.empty() ? std::string() : clean_path(ctx.user.home)) : std::move(r.path);
    return {};
  }

  SandboxState& state_;
};

}  // namespace

void register_service(rpc::Registry& registry, SandboxState& state) {
  registry.add_service(std::string(kService),
                       [] { return pb::StatRequest::descriptor()->file()->FindServiceByName("Filesystem"); });
  auto svc = std::make_shared<FilesystemService>(state);
  registry.unary<pb::StatRequest, pb::StatResponse>(
      kService, "Stat", [svc](auto& ctx, const auto& req, auto& resp) { return svc->stat(ctx, req, resp); });
  registry.unary<pb::ListDirRequest, pb::ListDirResponse>(
      kService, "ListDir", [svc](auto& ctx, const auto& req, auto& resp) { return svc->list_dir(ctx, req, resp); });
  registry.unary<pb::MakeDirRequest, pb::MakeDirResponse>(
      kService, "MakeDir", [svc](auto& ctx, const auto& req, auto& resp) { return svc->make_dir(ctx, req, resp); });
  registry.unary<pb::MoveRequest, pb::MoveResponse>(
      kService, "Move", [svc](auto& ctx, const auto& req, auto& resp) { return svc->move(ctx, req, resp); });
  registry.unary<pb::RemoveRequest, pb::RemoveResponse>(
      kService, "Remove", [svc](auto& ctx, const auto& req, auto& resp) { return svc->remove(ctx, req, resp); });
}

}  // namespace envd::fs
