#!/bin/sh
# run.sh -- builds bench_authz optimised and prints decisions/s against the hash-lookup baseline.
# Usage: bench/authz/run.sh [iterations]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-bench}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_authz -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
exec "$build/bench/authz/bench_authz" "$@"
