#!/usr/bin/env bash
# Every C++ file in the repository is clang-formatted (config: .clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.h')
clang-format --dry-run -Werror $files
echo "clang-format: $(wc -w <<<"$files") files formatted"
