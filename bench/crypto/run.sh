#!/bin/sh
# run.sh -- builds bench_crypto optimised and prints mr_olm rates beside bare libolm in the same run.
# Usage: bench/crypto/run.sh [SECONDS]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-bench}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_crypto -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
exec "$build/bench/crypto/bench_crypto" "$@"
