#pragma once
// POST /files/compose (contract §6.7): concatenate regular files into a destination. The request
// parsing is plain; compose_files() is blocking and runs on the pool.
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/file_writer.h"

namespace envd::fs {

struct ComposeRequest {
  std::vector<std::string> source_paths;
  std::string destination;
  std::optional<std::string> username;
};

// The JSON body; `failure` gets the 400 for bad JSON, empty sources or no destination.
std::optional<ComposeRequest> parse_compose_request(std::string_view body, WriteFailure& failure);

struct ComposeSource {
  std::string raw;       // as the request named it (error messages say this)
  std::string resolved;  // after §3.2 resolution
};

// Checks the sources (each regular, none the destination), writes
// `<dest>.e2b-compose.<uuid>.tmp` next to the destination (owned by uid:gid, 0666 &^ umask),
// concatenates the sources into it with copy_file_range, renames it over the destination and
// deletes the sources (errors there ignored, as envd does). The destination's parent exists
// (EnsureDirs ran). `cancel` (the request's CancelToken, may be null) is polled between chunks. On failure or
// cancellation the temporary file is removed and the sources stay. `final_stat` gets the new file's stat.
std::optional<WriteFailure> compose_files(const std::vector<ComposeSource>& sources, const std::string& destination,
                                          uid_t uid, gid_t gid, const std::atomic<bool>* cancel,
                                          struct stat* final_stat);

// The checks of compose_files that need no filesystem access (source == destination).
std::optional<WriteFailure> check_compose_paths(const std::vector<ComposeSource>& sources,
                                                const std::string& destination);
// Stats each source: 404 when missing, 400 when not a regular file (contract §6.7 wording).
std::optional<WriteFailure> check_compose_sources(const std::vector<ComposeSource>& sources);

std::string random_uuid();

}  // namespace envd::fs
