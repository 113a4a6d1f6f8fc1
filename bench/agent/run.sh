#!/bin/sh
# run.sh -- microseconds of one share_steal over a busy worker's 256 in-flight turns, the room in
# the fields beside fields without it (the turns parsed), on SQLite and on a throwaway Redis.
# Usage: bench/agent/run.sh [ROUNDS]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree bench_share_scan
rounds=${1:-200}
bin=$build/bench/agent/bench_share_scan

bench_tmp agent
bench_redis "$tmp" --save '' --appendonly no --protected-mode no

echo "one look over 256 in-flight turns, $rounds rounds, microseconds"
printf '%-8s %16s %14s %8s\n' store "fields w/o room" "with room" ratio
for url in "sqlite://$tmp/state.db" "redis://127.0.0.1:$redis_port/0"; do
    set -- $("$bin" "$url" "$rounds")
    printf '%-8s %16s %14s %8s\n' "${url%%:*}" "$1" "$2" "$3"
done
