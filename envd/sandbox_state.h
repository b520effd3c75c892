#pragma once
// What the control plane sets at run time (/init) and every service reads: the default user and
// workdir, global environment variables, the access token. Owned by main; lives for the process.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "envd/users.h"

namespace envd {

struct SandboxState {
  UserDb users;
  std::string default_user = "root";                // envd's boot default; /init defaultUser replaces it
  std::string default_workdir;                      // empty: none (paths fall back to the user's home)
  std::map<std::string, std::string> user_env;      // /init envVars (replace semantics)
  std::map<std::string, std::string> internal_env;  // E2B_SANDBOX etc.; /init cannot overwrite these
  std::optional<std::string> access_token;          // set by /init; never logged
  std::optional<std::int64_t> last_init_time_ns;    // newest /init timestamp applied (unix ns)
  bool initialized = false;                         // a /init has succeeded

  // Environment every process gets (before its own request envs): user vars, then internal ones.
  std::map<std::string, std::string> global_env() const {
    auto env = user_env;
    for (const auto& [k, v] : internal_env) env[k] = v;
    return env;
  }
};

}  // namespace envd
