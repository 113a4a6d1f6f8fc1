#!/bin/sh
# run.sh -- start-up cost of N agents sharing one room: `mindroom run` against mr-test-homeserver
# with N agents in #lobby, the seconds until /readyz answers 200 and until the gateway has
# published everything start-up brings, and how many events went onto matrix.inbound. The
# baseline in the same run is N = the first size: the other sizes print their ratio to it, so a
# cost that grows with N shows as time and events ratios near N/first, one with N² near (N/first)².
# Usage: bench/scale/run.sh [N...]   (default 50 100 200; BUILD=dir to reuse a build tree, default
# build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-bench}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target mindroom mr-test-homeserver -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
[ $# -gt 0 ] || set -- 50 100 200

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-bench-scale-XXXXXX")
hs_pid=
run_pid=
stop() {
    [ -n "$run_pid" ] && kill -INT "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
    [ -n "$hs_pid" ] && kill "$hs_pid" 2>/dev/null && wait "$hs_pid" 2>/dev/null || true
    run_pid= hs_pid=
}
cleanup() { stop; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
published() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '/^mindroom_gateway_events_published_total\{topic="matrix.inbound"\}/ { print $2; f=1 } END { if (!f) print 0 }'
}

# One size: prints "N ready_s settled_s events".
measure() {
    n=$1
    dir=$tmp/n$n
    mkdir -p "$dir/storage"
    "$build/tests/peers/homeserver/mr-test-homeserver" --registration-token bench-token >"$dir/hs.log" 2>&1 &
    hs_pid=$!
    until grep -q '^listening on ' "$dir/hs.log" 2>/dev/null; do sleep 0.05; done
    hs_url=$(sed -n 's/^listening on //p' "$dir/hs.log" | head -n 1)
    {
        printf 'models:\n  default: {provider: openai, id: gpt-5.6}\nagents:\n'
        i=0
        while [ "$i" -lt "$n" ]; do printf '  a%03d: {rooms: [lobby]}\n' "$i"; i=$((i + 1)); done
    } >"$dir/config.yaml"
    cat >"$dir/.env" <<ENV
MATRIX_HOMESERVER=$hs_url
MATRIX_SERVER_NAME=localhost
MATRIX_REGISTRATION_TOKEN=bench-token
OPENAI_API_KEY=stub
LOG_LEVEL=warn
MINDROOM_INSTANCE_SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
ENV
    port=$(free_port)
    t0=$(now)
    (cd "$dir" && exec "$build/services/cli/mindroom" run --config "$dir/config.yaml" \
        --storage-path "$dir/storage" --listen "127.0.0.1:$port" >"$dir/run.log" 2>&1) &
    run_pid=$!
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; do
        kill -0 "$run_pid" 2>/dev/null || { echo "mindroom run ended early; see $dir/run.log" >&2; exit 1; }
        sleep 0.2
    done
    t1=$(now)
    # Settled: the count has not moved for 3 s.
    last=-1 same=0
    while [ "$same" -lt 15 ]; do
        cur=$(published "$port")
        if [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0 last=$cur t2=$(now); fi
        sleep 0.2
    done
    stop
    awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" -v e="$last" 'BEGIN { printf "%d %.1f %.1f %d\n", n, b - a, c - a, e }'
}

printf '%6s %10s %12s %10s %12s %12s\n' agents ready_s settled_s events time_ratio events_ratio
base=
for n in "$@"; do
    set -- $(measure "$n")
    if [ -z "$base" ]; then base="$1 $3 $4"; fi
    echo "$base $1 $2 $3 $4" | awk '{ printf "%6d %10.1f %12.1f %10d %12.2f %12.2f\n", $4, $5, $6, $7,
        ($2 > 0 ? $6 / $2 : 0), ($3 > 0 ? $7 / $3 : 0) }'
done
