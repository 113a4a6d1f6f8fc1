#!/bin/sh
# run.sh -- builds bench_authz optimised and prints decisions/s against the hash-lookup baseline.
# Usage: bench/authz/run.sh [iterations]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree bench_authz
exec "$build/bench/authz/bench_authz" "$@"
