#!/bin/sh
# run.sh -- bus messages/s and publish-to-handle latency per backend (1 KiB messages), beside
# kcat on the same Kafka broker set, redis-benchmark (XADD) on the same redis-server, and plain
# SQLite inserts on the same disk for the inproc journal.
# Usage: bench/bus/run.sh [BUILD_DIR] [MESSAGES]   (BUILD_DIR defaults to build, MESSAGES to 20000)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
build=${1:-$root/build}
n=${2:-20000}
bench_build "$build" bench_bus mr-kafka-mock
bin=$build/bench/bus/bench_bus
mock=$build/tests/peers/mr-kafka-mock

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-bench-bus-XXXXXX")
redis_pid=
mock_pid=
cleanup() {
    [ -n "$mock_pid" ] && { echo quit >&3; wait "$mock_pid" 2>/dev/null || true; }
    stop "$redis_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

# redis-server as the tests run it (append-only, fsync always), on a free loopback port.
bench_redis "$tmp" --appendonly yes --appendfsync always --save '' --protected-mode no
port=$redis_port

# Three mock Kafka brokers; commands go to the program's stdin through a FIFO.
mkfifo "$tmp/ctl"
"$mock" <"$tmp/ctl" >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
exec 3>"$tmp/ctl"
until [ -s "$tmp/mock.out" ]; do sleep 0.05; done
bootstrap=$(head -n 1 "$tmp/mock.out")
printf 'topic bench 8\ntopic kcat-bench 8\n' >&3

payload=$(head -c 1000 /dev/zero | tr '\0' x)
awk -v n="$n" -v p="$payload" 'BEGIN { for (i = 0; i < n; i++) printf "!room%d:example.org|{\"v\":1,\"seq\":%d,\"pad\":\"%s\"}\n", i % 64, i, p }' \
    >"$tmp/messages"

a=$(now)
kcat -b "$bootstrap" -P -t kcat-bench -K '|' -X partitioner=murmur2_random <"$tmp/messages"
b=$(now)
kcat -b "$bootstrap" -C -e -q -t kcat-bench -o beginning >/dev/null
c=$(now)
kcat_produce=$(rate "$n" "$a" "$b")
kcat_consume=$(rate "$n" "$b" "$c")

value=$(head -c 1024 /dev/zero | tr '\0' x)
rb_pipe=$(redis-benchmark -p "$port" -c 1 -n "$n" -P 64 --csv XADD rb-bench '*' v "$value" |
    tail -n 1 | awk -F'","' '{ printf "%.0f", $2 }')
rb_single=$(redis-benchmark -p "$port" -c 1 -n "$n" --csv XADD rb-bench '*' v "$value" |
    tail -n 1 | awk -F'","' '{ printf "%.0f", $2 }')

# What the journal does per message, without the bus: SQLite in WAL mode with synchronous=FULL,
# one 1 KiB row per commit (an fsync each) and 500 rows per commit.
sqlite_rate() {
    python3 - "$tmp/sqlite-$1.db" "$n" "$1" <<'PY'
import sqlite3, sys, time
path, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("CREATE TABLE m (seq INTEGER PRIMARY KEY, value BLOB)")
value = b"x" * 1024
n = min(n, 2000) if per == 1 else n
t = time.monotonic()
for first in range(0, n, per):
    db.execute("BEGIN")
    db.executemany("INSERT INTO m VALUES (?, ?)", ((s, value) for s in range(first, min(first + per, n))))
    db.execute("COMMIT")
print("%.0f" % (n / (time.monotonic() - t)))
PY
}
sqlite_single=$(sqlite_rate 1)
sqlite_batch=$(sqlite_rate 500)

inproc=$("$bin" inproc: bench "$n")
journal=$("$bin" "inproc://$tmp/journal/bus.db" bench "$n")
journal_size=$(du -k "$tmp/journal/bus.db" | cut -f1)
redis=$("$bin" "redis://127.0.0.1:$port/0" bench "$n")
kafka=$("$bin" "kafka://$bootstrap" bench "$n")

echo "bus: $n messages of 1 KiB as fast as publish allows (messages/s, first publish to last"
echo "handled), then 2000 at 1 per ms (publish-to-handle latency), then 500 one at a time, each"
echo "flushed and handled before the next (hop: one service to the next); one producer, one consumer"
printf '%-8s %12s %10s %10s %10s %10s\n' backend msgs/s p50_ms p99_ms hop_p50 hop_p99
for row in "inproc,$inproc" "journal,$journal" "redis,$redis" "kafka,$kafka"; do
    echo "$row" | awk -F, '{ printf "%-8s %12s %10s %10s %10s %10s\n", $1, $2, $3, $4, $5, $6 }'
done
echo "(journal: inproc:///path, a message is handled once its group commit is on disk; the file"
echo " was ${journal_size} KiB after the run. The Kafka mock's relays answer a waiting fetch when"
echo " data arrives, as a real broker does; mr-kafka-mock --hold-fetches leaves them out, and then"
echo " each hop waits out the bus's fetch.wait.max.ms, 10 ms)"
echo
echo "baselines measured in the same run (messages/s)"
printf '%-44s %12s\n' "kcat -P (produce, until all acknowledged)" "$kcat_produce"
printf '%-44s %12s\n' "kcat -C -e (consume from the start)" "$kcat_consume"
printf '%-44s %12s\n' "redis-benchmark XADD 1 KiB, pipeline 64" "$rb_pipe"
printf '%-44s %12s\n' "redis-benchmark XADD 1 KiB, no pipeline" "$rb_single"
printf '%-44s %12s\n' "SQLite WAL+FULL 1 KiB, 500 rows per commit" "$sqlite_batch"
printf '%-44s %12s\n' "SQLite WAL+FULL 1 KiB, 1 row per commit" "$sqlite_single"
redis_rate=$(echo "$redis" | cut -d, -f1)
kafka_rate=$(echo "$kafka" | cut -d, -f1)
inproc_rate=$(echo "$inproc" | cut -d, -f1)
journal_rate=$(echo "$journal" | cut -d, -f1)
awk -v r="$redis_rate" -v rb="$rb_pipe" -v k="$kafka_rate" -v kc="$kcat_consume" \
    'BEGIN { printf "ratios: redis bus / redis-benchmark (pipelined) %.2f; kafka bus / kcat -C %.2f\n", r / rb, k / kc }'
awk -v j="$journal_rate" -v i="$inproc_rate" -v sb="$sqlite_batch" \
    'BEGIN { printf "ratios: journal / inproc %.2f; journal / SQLite 500 rows per commit %.2f\n", j / i, j / sb }'
