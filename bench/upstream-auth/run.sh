#!/bin/sh
# run.sh -- strict JWT mode requests/s of mindroom-upstream-auth (GET /auth/verify under wrk over
# loopback), with and without the verified-token cache, beside `openssl speed` verify/s for the same
# key type and /healthz (the HTTP path without auth), all in this run.
# Usage: bench/upstream-auth/run.sh [SECONDS]
#   BUILD=dir       the build tree (default build-bench)
#   BASE_BUILD=dir  another build tree of this project (the revision before a change), measured
#                   right after BUILD for every case, so the two compare under the same load
#   PIN=1           the service and openssl speed on core 0, wrk on core 1: one core each
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
# -O2 brings maybe-uninitialized warnings the Debug builds of CI do not see; they must not stop a
# measurement, so this optimised tree does not treat them as errors.
bench_release_tree mindroom-upstream-auth bench_ua_jwks bench_http_floor -- -DMR_WERROR=OFF
base_build=${BASE_BUILD:-}
secs=${1:-5}
jwks=$build/bench/upstream-auth/bench_ua_jwks
trees="new"
[ -n "$base_build" ] && trees="new base"
tree_service() {
    [ "$1" = base ] && echo "$base_build/services/upstream-auth/mindroom-upstream-auth" ||
        echo "$build/services/upstream-auth/mindroom-upstream-auth"
}
if [ -n "$base_build" ] && [ ! -x "$(tree_service base)" ]; then
    echo "run.sh: BASE_BUILD has no services/upstream-auth/mindroom-upstream-auth" >&2
    exit 1
fi
svc_pin= wrk_pin=
if [ "${PIN:-0}" = 1 ]; then
    svc_pin="taskset -c 0"
    wrk_pin="taskset -c 1"
fi

bench_stop="svc_pid jwks_pid floor_pid"
bench_tmp ua

# The service's store (connect tokens, OAuth state) is a throwaway redis-server.
bench_redis "$tmp" --save '' --appendonly no
rport=$redis_port

# The service's CPU time so far (user + system, clock ticks), from /proc.
svc_ticks() { awk '{ print $14 + $15 }' "/proc/$svc_pid/stat"; }
hz=$(getconf CLK_TCK)

# wrk's requests/s for a path with extra headers (the "Requests/sec:" line), the service's CPU
# microseconds a request over the run and wrk's own (user + system, when /usr/bin/time is there).
wrk_rps() {
    path=$1; shift
    timer=
    [ -x /usr/bin/time ] && timer="/usr/bin/time -f %U+%S -o $tmp/wrk.cpu"
    rm -f "$tmp/wrk.cpu"
    t0=$(svc_ticks)
    $timer $wrk_pin wrk -t 2 -c 16 -d "${secs}s" "$@" "http://127.0.0.1:$port$path" >"$tmp/wrk.txt"
    t1=$(svc_ticks)
    if grep -q 'Non-2xx' "$tmp/wrk.txt"; then
        echo "run.sh: $path answered errors:" >&2; cat "$tmp/wrk.txt" >&2; exit 1
    fi
    n=$(awk '/ requests in / { print $1 }' "$tmp/wrk.txt")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.txt")
    wrk_cpu=-
    [ -s "$tmp/wrk.cpu" ] && wrk_cpu=$(awk -F+ -v n="$n" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$tmp/wrk.cpu")
    echo "$rps $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }') $wrk_cpu"
}

start_service() {
    port=$(free_port)
    env MINDROOM_STORAGE_PATH="$tmp/data" MINDROOM_STORE_URL="redis://127.0.0.1:$rport/0" LOG_LEVEL=warn \
        MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED=true MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT=true \
        MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER=X-MindRoom-User-Id \
        MINDROOM_TRUSTED_UPSTREAM_JWT_HEADER=X-Trusted-Jwt MINDROOM_TRUSTED_UPSTREAM_JWKS_URL="$url" \
        MINDROOM_TRUSTED_UPSTREAM_JWT_AUDIENCE=mindroom-dashboard \
        MINDROOM_TRUSTED_UPSTREAM_JWT_ISSUER=https://gateway.example.com \
        MINDROOM_TRUSTED_UPSTREAM_EMAIL_TO_MATRIX_USER_ID_TEMPLATE='@{localpart}:example.org' \
        MINDROOM_UPSTREAM_AUTH_JWT_CACHE="$2" \
        $svc_pin "$(tree_service "$1")" --listen "127.0.0.1:$port" >>"$tmp/service.log" 2>&1 &
    svc_pid=$!
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.05; done
}

# openssl speed verify/s for alg: by CPU time (its default divisor) and by wall clock (-elapsed),
# taken just before the service runs of that alg, under the same load.
openssl_speed() {
    test_name=rsa2048
    [ "$1" = ES256 ] && test_name=ecdsap256
    for mode in cpu wall; do
        flag=
        [ "$mode" = wall ] && flag=-elapsed
        $svc_pin openssl speed $flag -seconds "$secs" "$test_name" 2>/dev/null >"$tmp/speed.txt"
        # The last column of the result line is verify/s.
        echo "$1 openssl-$mode $(awk '/^rsa 2048 bits|ecdsa \(nistp256\)/ { print $NF }' "$tmp/speed.txt")" \
            >>"$tmp/results.txt"
    done
}

: >"$tmp/results.txt"
for alg in RS256 ES256; do
    rm -f "$tmp/token"
    "$jwks" "$alg" "$tmp/token" &
    jwks_pid=$!
    until [ -s "$tmp/token" ]; do sleep 0.05; done
    read -r url token <"$tmp/token"
    openssl_speed "$alg"
    for cache in 0 4096; do
        for tree in $trees; do
            start_service "$tree" "$cache"
            # One request first, so the JWKS fetch is not part of the measurement.
            curl -sf -H "X-MindRoom-User-Id: alice@example.com" -H "X-Trusted-Jwt: $token" \
                "http://127.0.0.1:$port/auth/verify" >/dev/null
            mode=nocache
            [ "$cache" = 0 ] || mode=cache
            echo "$tree $alg $mode $(wrk_rps /auth/verify -H "X-MindRoom-User-Id: alice@example.com" \
                -H "X-Trusted-Jwt: $token")" >>"$tmp/results.txt"
            if [ "$alg" = ES256 ] && [ "$cache" = 0 ]; then
                echo "$tree any healthz $(wrk_rps /healthz)" >>"$tmp/results.txt"
            fi
            stop "$svc_pid"; svc_pid=
        done
    done
    stop "$jwks_pid"; jwks_pid=
done

# The floor: bench_http_floor (epoll, one recv and one send a request, a fixed answer) under the
# same wrk, so /healthz can be read against what any HTTP server costs a request here.
$svc_pin "$build/bench/upstream-auth/bench_http_floor" "$tmp/floor.port" &
floor_pid=$!
until [ -s "$tmp/floor.port" ]; do sleep 0.05; done
port=$(cat "$tmp/floor.port")
svc_pid=$floor_pid
echo "floor any healthz $(wrk_rps /healthz)" >>"$tmp/results.txt"
svc_pid=
stop "$floor_pid"; floor_pid=

# field: 4 requests/s, 5 service CPU us a request, 6 wrk CPU us a request
get() { awk -v t="$1" -v a="$2" -v m="$3" -v f="$4" '$1 == t && $2 == a && $3 == m { print $f }' "$tmp/results.txt"; }
speed() { awk -v a="$1" -v m="openssl-$2" '$1 == a && $2 == m { print $3 }' "$tmp/results.txt"; }

pinned="on $(nproc) cores shared with wrk"
[ "${PIN:-0}" = 1 ] && pinned="the service and openssl on core 0, wrk on core 1"
echo "GET /auth/verify in strict JWT mode, wrk -t2 -c16 for ${secs} s each, $pinned"
echo
echo "requests/s (wall clock) beside openssl speed -elapsed verify/s (one thread, wall clock)"
printf '%-5s %-6s %14s %10s %11s %10s %11s %10s\n' tree alg openssl-wall no-cache vs-openssl cache vs-openssl /healthz
for tree in $trees; do
    for alg in RS256 ES256; do
        base=$(speed "$alg" wall)
        off=$(get "$tree" "$alg" nocache 4)
        on=$(get "$tree" "$alg" cache 4)
        hz_rps=
        [ "$alg" = RS256 ] && hz_rps=$(printf '%.0f' "$(get "$tree" any healthz 4)")
        printf '%-5s %-6s %14.0f %10.0f %11s %10.0f %11s %10s\n' "$tree" "$alg" "$base" "$off" "$(ratio "$off" "$base")" \
            "$on" "$(ratio "$on" "$base")" "$hz_rps"
    done
done
echo
echo "CPU a request (service: user + system from /proc) beside openssl speed's CPU a verify (its default)"
printf '%-5s %-6s %11s %12s %11s %9s %11s %10s %9s\n' tree alg openssl-us no-cache-us vs-openssl cache-us vs-openssl \
    /healthz wrk-us
for tree in $trees; do
    for alg in RS256 ES256; do
        base_us=$(awk -v b="$(speed "$alg" cpu)" 'BEGIN { printf "%.1f", 1e6 / b }')
        off=$(get "$tree" "$alg" nocache 5)
        on=$(get "$tree" "$alg" cache 5)
        hz_us=
        [ "$alg" = RS256 ] && hz_us=$(get "$tree" any healthz 5)
        printf '%-5s %-6s %11s %12s %11s %9s %11s %10s %9s\n' "$tree" "$alg" "$base_us" "$off" "$(ratio "$base_us" "$off")" \
            "$on" "$(ratio "$base_us" "$on")" "$hz_us" "$(get "$tree" "$alg" nocache 6)"
    done
done
printf 'floor: a minimal epoll HTTP server (bench_http_floor), GET /healthz: %.0f requests/s, %s us CPU a request, wrk %s us\n' \
    "$(get floor any healthz 4)" "$(get floor any healthz 5)" "$(get floor any healthz 6)"
echo "(openssl: one thread of raw signature verifies; no-cache: every request checks the token in full, the"
echo " signature with OpenSSL on the key parsed at JWKS fetch; cache: the claims come from the verified-token"
echo " cache; wrk-us: the load generator's own CPU a no-cache request. openssl speed divides by CPU time unless"
echo " -elapsed: compare requests/s with the wall-clock figure, CPU a request with the CPU one)"
