#!/bin/sh
# run.sh -- store ops/s on SQLite and Redis, beside redis-benchmark on the same redis-server.
# Usage: bench/store/run.sh [BUILD_DIR] [OPS]   (BUILD_DIR defaults to build, OPS to 20000)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_build "${1:-$root/build}" bench_store
ops=${2:-20000}
bin=$build/bench/store/bench_store

bench_tmp store

# The same persistence the tests use (append-only, fsync always), on a free loopback port.
bench_redis "$tmp" --appendonly yes --appendfsync always --save '' --protected-mode no
port=$redis_port

# One client, no pipelining: what one store handle does.
redis-benchmark -p "$port" -c 1 -n "$ops" -t set,get --csv |
    sed -n 's/^"\([A-Z]*\)","\([0-9.]*\)".*/\1,\2/p' | tr 'A-Z' 'a-z' >"$tmp/baseline.csv"
redis-cli -p "$port" flushall >/dev/null
"$bin" "redis://127.0.0.1:$port/0" "$ops" >"$tmp/redis.csv"
"$bin" "sqlite://$tmp/bench.db" "$ops" >"$tmp/sqlite.csv"

echo "ops per second, $ops operations each, one client"
printf '%-8s %14s %14s %14s %10s\n' op redis-benchmark store-redis store-sqlite redis-ratio
for op in set get set_nx; do
    base=$(awk -F, -v op="$op" '$1 == op { print $2 }' "$tmp/baseline.csv")
    [ "$op" = set_nx ] && base=$(awk -F, '$1 == "set" { print $2 }' "$tmp/baseline.csv")
    r=$(awk -F, -v op="$op" '$1 == op { print $2 }' "$tmp/redis.csv")
    s=$(awk -F, -v op="$op" '$1 == op { print $2 }' "$tmp/sqlite.csv")
    printf '%-8s %14.0f %14.0f %14.0f %10s\n' "$op" "$base" "$r" "$s" "$(ratio "$r" "$base")"
done
echo "(set_nx is compared with redis-benchmark's SET; redis-ratio = store-redis / redis-benchmark)"
