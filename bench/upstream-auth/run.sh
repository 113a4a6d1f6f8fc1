#!/bin/sh
# run.sh -- strict JWT mode requests/s of mindroom-upstream-auth (GET /auth/verify under wrk over
# loopback), with and without the verified-token cache, beside `openssl speed` verify/s for the same
# key type and /healthz (the HTTP path without auth), all in this run.
# Usage: bench/upstream-auth/run.sh [SECONDS]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
# -O2 brings maybe-uninitialized warnings the Debug builds of CI do not see; they must not stop a
# measurement, so this optimised tree does not treat them as errors.
bench_release_tree mindroom-upstream-auth bench_ua_jwks -- -DMR_WERROR=OFF
secs=${1:-5}
service=$build/services/upstream-auth/mindroom-upstream-auth
jwks=$build/bench/upstream-auth/bench_ua_jwks

bench_stop="svc_pid jwks_pid"
bench_tmp ua

# The service's store (connect tokens, OAuth state) is a throwaway redis-server.
bench_redis "$tmp" --save '' --appendonly no
rport=$redis_port

# The service's CPU time so far (user + system, clock ticks), from /proc.
svc_ticks() { awk '{ print $14 + $15 }' "/proc/$svc_pid/stat"; }
hz=$(getconf CLK_TCK)

# wrk's requests/s for a path with extra headers (the "Requests/sec:" line), and the service's
# CPU microseconds a request over the run: on a machine other work also loads, requests/s drop
# with the share of the cores the service gets, the CPU a request costs much less.
wrk_rps() {
    path=$1; shift
    t0=$(svc_ticks)
    wrk -t 2 -c 16 -d "${secs}s" "$@" "http://127.0.0.1:$port$path" >"$tmp/wrk.txt"
    t1=$(svc_ticks)
    if grep -q 'Non-2xx' "$tmp/wrk.txt"; then
        echo "run.sh: $path answered errors:" >&2; cat "$tmp/wrk.txt" >&2; exit 1
    fi
    n=$(awk '/ requests in / { print $1 }' "$tmp/wrk.txt")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.txt")
    echo "$rps $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')"
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
        MINDROOM_UPSTREAM_AUTH_JWT_CACHE="$1" \
        "$service" --listen "127.0.0.1:$port" >>"$tmp/service.log" 2>&1 &
    svc_pid=$!
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.05; done
}

openssl speed -seconds "$secs" rsa2048 ecdsap256 2>/dev/null >"$tmp/speed.txt"
: >"$tmp/results.txt"
for alg in RS256 ES256; do
    rm -f "$tmp/token"
    "$jwks" "$alg" "$tmp/token" &
    jwks_pid=$!
    until [ -s "$tmp/token" ]; do sleep 0.05; done
    read -r url token <"$tmp/token"
    for cache in 0 4096; do
        start_service "$cache"
        # One request first, so the JWKS fetch is not part of the measurement.
        curl -sf -H "X-MindRoom-User-Id: alice@example.com" -H "X-Trusted-Jwt: $token" \
            "http://127.0.0.1:$port/auth/verify" >/dev/null
        rps=$(wrk_rps /auth/verify -H "X-MindRoom-User-Id: alice@example.com" -H "X-Trusted-Jwt: $token")
        [ "$cache" = 0 ] && echo "$alg nocache $rps" >>"$tmp/results.txt" || echo "$alg cache $rps" >>"$tmp/results.txt"
        if [ "$alg" = ES256 ] && [ "$cache" = 0 ]; then
            echo "any healthz $(wrk_rps /healthz)" >>"$tmp/results.txt"
        fi
        stop "$svc_pid"; svc_pid=
    done
    stop "$jwks_pid"; jwks_pid=
done

rsa=$(awk '/^rsa 2048 bits/ { print $NF }' "$tmp/speed.txt")
ec=$(awk '/ecdsa \(nistp256\)/ { print $NF }' "$tmp/speed.txt")
healthz=$(awk '$1 == "any" { print $3 }' "$tmp/results.txt")
healthz_cpu=$(awk '$1 == "any" { print $4 }' "$tmp/results.txt")
echo "GET /auth/verify in strict JWT mode, wrk -t2 -c16 for ${secs} s each, on $(nproc) cores shared with wrk"
printf '%-6s %14s %14s %12s %14s %12s\n' alg openssl-verify no-cache vs-openssl cache vs-openssl
for alg in RS256 ES256; do
    base=$rsa
    [ "$alg" = ES256 ] && base=$ec
    off=$(awk -v a="$alg" '$1 == a && $2 == "nocache" { print $3 }' "$tmp/results.txt")
    on=$(awk -v a="$alg" '$1 == a && $2 == "cache" { print $3 }' "$tmp/results.txt")
    printf '%-6s %14.0f %14.0f %12s %14.0f %12s\n' "$alg" "$base" "$off" \
        "$(ratio "$off" "$base")" "$on" "$(ratio "$on" "$base")"
done
echo "GET /healthz (same server, no auth): $healthz requests/s"
echo
echo "service CPU a request (user + system, /proc), beside openssl-verify's CPU a verify"
printf '%-6s %14s %14s %12s\n' alg openssl-us no-cache-us cache-us
for alg in RS256 ES256; do
    base=$rsa
    [ "$alg" = ES256 ] && base=$ec
    off=$(awk -v a="$alg" '$1 == a && $2 == "nocache" { print $4 }' "$tmp/results.txt")
    on=$(awk -v a="$alg" '$1 == a && $2 == "cache" { print $4 }' "$tmp/results.txt")
    printf '%-6s %14.1f %14s %12s\n' "$alg" "$(awk -v b="$base" 'BEGIN { print 1e6 / b }')" "$off" "$on"
done
echo "/healthz: $healthz_cpu us"
echo "(openssl-verify: one thread of raw signature verifies; no-cache: every request checks the token in"
echo " full, the signature with OpenSSL on the key parsed at JWKS fetch; cache: the token's claims come"
echo " from the verified-token cache)"
