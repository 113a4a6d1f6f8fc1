#!/bin/sh
# run.sh -- start-up cost of N agents: `mindroom run` against mr-test-homeserver with N agents
# sharing #lobby (size "N"), or each in a room of its own with the router (size "N:own", how 1,000
# accounts are measured: in one shared room every device list change is news to every account,
# N² by the Matrix protocol itself). N + 1 accounts with the router. For each size it prints the seconds until
# /readyz answers 200 and until the gateway has published everything start-up brings, how many
# events went onto matrix.inbound, and, once settled, the process's threads (/proc/<pid>/status
# Threads), open file descriptors (/proc/<pid>/fd) and peak RSS (VmHWM, what /usr/bin/time -v
# reports as its maximum resident set size). The other sizes print their time and events ratio
# to the first, so a cost that grows with N shows near N/first, one with N² near (N/first)².
# BASE_REF=<git ref> measures that revision's `mindroom` too, in the same run, as the baseline
# (built from `git archive` into $BUILD-base; the homeserver is always this tree's, so it is not
# the limit of either), at BASE_SIZES (default the same sizes: a baseline whose cost
# grows with N² may take minutes at 200 and hours at 1,000).
# Usage: bench/scale/run.sh [N[:own]...]   (default 50 100 200 1000:own; BUILD=dir to reuse a
# build tree, default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
build=${BUILD:-$root/build-bench}
[ $# -gt 0 ] || set -- 50 100 200 1000:own
sizes="$*"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-bench-scale-XXXXXX")
hs_pid=
run_pid=
stop_run() {
    [ -n "$run_pid" ] && kill -INT "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
    [ -n "$hs_pid" ] && kill "$hs_pid" 2>/dev/null && wait "$hs_pid" 2>/dev/null || true
    run_pid= hs_pid=
}
cleanup() { stop_run; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

# build SRC DIR TARGETS: what the bench runs, in Release.
build_tree() {
    if [ ! -f "$2/CMakeCache.txt" ]; then
        cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$2" --target $3 -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
}

now() { date +%s.%N; }
published() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '/^mindroom_gateway_events_published_total\{topic="matrix.inbound"\}/ { print $2; f=1 } END { if (!f) print 0 }'
}
status_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# One size ("N" or "N:own") with the binaries of build tree $1: prints "N ready_s settled_s events
# threads fds rss_mib".
measure() {
    bin=$1 n=${2%%:*} shape=${2#*:}
    dir=$tmp/$(basename "$bin")-n$n$([ "$shape" = own ] && echo -own || true)
    mkdir -p "$dir/storage"
    "$build/tests/peers/homeserver/mr-test-homeserver" --registration-token bench-token >"$dir/hs.log" 2>&1 &
    hs_pid=$!
    until grep -q '^listening on ' "$dir/hs.log" 2>/dev/null; do sleep 0.05; done
    hs_url=$(sed -n 's/^listening on //p' "$dir/hs.log" | head -n 1)
    {
        printf 'models:\n  default: {provider: openai, id: gpt-5.6}\nagents:\n'
        i=0
        while [ "$i" -lt "$n" ]; do
            if [ "$shape" = own ]; then room=r$i; else room=lobby; fi
            printf '  a%04d: {rooms: [%s]}\n' "$i" "$room"
            i=$((i + 1))
        done
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
    (cd "$dir" && exec "$bin/services/cli/mindroom" run --config "$dir/config.yaml" \
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
    threads=$(status_field "$run_pid" Threads)
    fds=$(ls "/proc/$run_pid/fd" | wc -l)
    hwm=$(status_field "$run_pid" VmHWM)
    stop_run
    awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" -v e="$last" -v t="$threads" -v f="$fds" -v r="$hwm" \
        'BEGIN { printf "%d %.1f %.1f %d %d %d %.1f\n", n, b - a, c - a, e, t, f, r / 1024 }'
}

# The table for the binaries of build tree $1, labelled $2, at sizes $3.
table() {
    tbin=$1 tlabel=$2 tsizes=$3
    printf '%-9s %9s %8s %10s %8s %8s %6s %8s %11s %12s\n' build agents ready_s settled_s events threads fds rss_mib time_ratio events_ratio
    base=
    for spec in $tsizes; do
        set -- $(measure "$tbin" "$spec")
        if [ -z "$base" ]; then base="$1 $3 $4"; fi
        echo "$tlabel $base $spec $2 $3 $4 $5 $6 $7" | awk '{ printf "%-9s %9s %8.1f %10.1f %8d %8d %6d %8.1f %11.2f %12.2f\n", $1, $5, $6, $7,
            $8, $9, $10, $11, ($3 > 0 ? $7 / $3 : 0), ($4 > 0 ? $8 / $4 : 0) }'
    done
}

build_tree "$root" "$build" "mindroom mr-test-homeserver"
if [ -n "${BASE_REF:-}" ]; then
    mkdir -p "$tmp/base-src"
    git -C "$root" archive "$BASE_REF" | tar -x -C "$tmp/base-src"
    build_tree "$tmp/base-src" "$build-base" mindroom
    table "$build-base" "$BASE_REF" "${BASE_SIZES:-$sizes}"
fi
table "$build" current "$sizes"
