#!/bin/sh
# memory.sh -- Redis memory (INFO used_memory) and the entries of the bus's streams while
# MESSAGES (default 1,000,000) 1 KiB messages go through the Redis bus with a consumer keeping
# up, beside redis-benchmark's XADD rate on the same redis-server as the throughput baseline.
# See bench_bus_memory.c. Redis runs without persistence here: memory is what is measured, and
# a million fsynced appends would measure the shared disk instead.
# Usage: bench/bus/memory.sh [BUILD_DIR] [MESSAGES]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_build "${1:-$root/build}" bench_bus_memory
n=${2:-1000000}

bench_tmp bus-memory

bench_redis "$tmp" --appendonly no --save '' --protected-mode no
port=$redis_port

# The baseline: bare XADDs of the same size, one connection, without and with pipelining; its
# stream is deleted before the bus runs, so only the bus's streams are in the memory figures.
value=$(head -c 1024 /dev/zero | tr '\0' x)
rb() {
    redis-benchmark -p "$port" -c 1 -n 100000 "$@" --csv XADD rb-bench '*' v "$value" |
        tail -n 1 | awk -F'","' '{ printf "%.0f", $2 }'
}
rb_single=$(rb)
rb_pipe=$(rb -P 64)
redis-cli -p "$port" DEL rb-bench >/dev/null

echo "bus/memory: $n messages of 1 KiB through the Redis bus, one producer, one consumer keeping up"
"$build/bench/bus/bench_bus_memory" "$port" "$n" | tee "$tmp/out"
echo
echo "baseline measured in the same run, same redis-server (messages/s)"
printf '%-44s %12s\n' "redis-benchmark XADD 1 KiB, no pipeline" "$rb_single"
printf '%-44s %12s\n' "redis-benchmark XADD 1 KiB, pipeline 64" "$rb_pipe"
awk -v rs="$rb_single" -v rp="$rb_pipe" '
    /^throughput:/ { bus = $2 }
    /^ *[0-9]+ / { if (first == "") first = $2; last = $2 }
    END { printf "ratios: bus / redis-benchmark (no pipeline) %.2f, (pipeline 64) %.2f; used_memory at the end / at the start %.2f\n",
          bus / rs, bus / rp, last / first }' "$tmp/out"
