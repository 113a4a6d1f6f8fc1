#!/bin/sh
# run.sh -- mindroom-provisioning requests/s over loopback HTTP with Redis as its store, the
# service pinned to one core (taskset -c 0), wrk on the other; beside redis-benchmark SET/GET and
# the service's /healthz in the same run:
#   pair/complete        each request redeems a fresh code (seeded through pair/start), from its
#                        own address: rate limit, code claim by compare-and-set, new connection
#   register-agent 403   a name outside the namespace: credentials, per-connection limit, namespace
#   register-agent 200   a new account each time: the test homeserver's registration included
# Usage: bench/provisioning/run.sh [SECONDS] [CODES]   (BUILD=dir to reuse a build tree; default
# build-bench; CODES, default 5000 a second of the run, must outlast SECONDS of completes or the
# rate is a floor)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree mindroom-provisioning mr-test-homeserver -- -DMR_WERROR=OFF
secs=${1:-2}
# pair/complete ran at 4,300/s on the idle machine: 4,000 codes lasted under a second.
ncodes=${2:-$((secs * 5000))}
service=$build/services/provisioning/mindroom-provisioning
hsbin=$build/tests/peers/homeserver/mr-test-homeserver
token=bench-registration-token

bench_stop="svc_pid hs_pid"
bench_tmp prov

bench_redis "$tmp" --save '' --appendonly no
rport=$redis_port

"$hsbin" --listen 127.0.0.1:0 --server-name localhost --registration-token "$token" >"$tmp/hs.log" 2>&1 &
hs_pid=$!
until grep -q '^listening on ' "$tmp/hs.log"; do sleep 0.05; done
hs=$(awk '/^listening on / { print $3; exit }' "$tmp/hs.log")

port=$(free_port)
# Trusting loopback as a proxy lets each request name its own client address.
env MINDROOM_STORE_URL="redis://127.0.0.1:$rport/0" MATRIX_HOMESERVER="$hs" MATRIX_SERVER_NAME=localhost \
    MATRIX_REGISTRATION_TOKEN="$token" MINDROOM_PROVISIONING_TRUSTED_PROXIES=127.0.0.1 LOG_LEVEL=warn \
    taskset -c 0 "$service" --listen "127.0.0.1:$port" >"$tmp/service.log" 2>&1 &
svc_pid=$!
base=http://127.0.0.1:$port
until curl -sf "$base/healthz" >/dev/null 2>&1; do sleep 0.05; done

echo "seeding $ncodes pair codes (users on the test homeserver, pair/start each)..." >&2
python3 "$here/seed.py" "$hs" "$token" "$base" "$ncodes" "$tmp/codes"

# CPU time (user + system, clock ticks) of a process so far, from /proc.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# Microseconds of CPU a request: ticks from $1 to $2 over $3 requests.
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) * 1e6 / hz / n }'; }
# A wrk run; the service's CPU a request over it is left in $cpu. The CPU a request follows the
# service's cost; requests/s also follow the share of its core other work on the machine leaves it.
wrk_run() {
    t0=$(ticks "$svc_pid")
    taskset -c 1 wrk -t 1 -c 16 -d "${secs}s" "$@" >"$tmp/wrk.txt"
    cpu=$(cpu_us "$t0" "$(ticks "$svc_pid")" "$(awk '/ requests in / { print $1 }' "$tmp/wrk.txt")")
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.txt"; }
# "<expected> <others>" of a Lua script's count file; refuses a run with unexpected answers.
expected_rate() {
    read -r ok other <"$1"
    if [ "$other" != 0 ] && [ "$ok" -lt "$2" ]; then
        echo "run.sh: $3 had $other unexpected answers; see $tmp/service.log" >&2; cat "$tmp/wrk.txt" >&2; exit 1
    fi
    awk -v ok="$ok" -v s="$secs" -v floor="$([ "$ok" -ge "$2" ] && echo '>=' || echo '')" \
        'BEGIN { printf "%s%.0f", floor, ok / s }'
}

t0=$(ticks "$redis_pid")
taskset -c 1 redis-benchmark -p "$rport" --csv -t set,get -n 200000 -c 16 >"$tmp/rb.csv" 2>/dev/null
rb_cpu=$(cpu_us "$t0" "$(ticks "$redis_pid")" 400000)
rb_set=$(awk -F'"' '$2 == "SET" { printf "%.0f", $4 }' "$tmp/rb.csv")
rb_get=$(awk -F'"' '$2 == "GET" { printf "%.0f", $4 }' "$tmp/rb.csv")

wrk_run "$base/healthz"
healthz=$(rps) healthz_cpu=$cpu

CODES=$tmp/codes CREDS=$tmp/creds wrk_run -s "$here/complete.lua" "$base"
complete=$(expected_rate "$tmp/creds.count" "$ncodes" pair/complete) complete_cpu=$cpu
nconn=$(wc -l <"$tmp/creds")

CREDS=$tmp/creds OUT=$tmp/outside.count MODE=outside HS=$hs wrk_run -s "$here/register.lua" "$base"
outside=$(expected_rate "$tmp/outside.count" $((nconn * 60)) "register-agent (403)") outside_cpu=$cpu
CREDS=$tmp/creds OUT=$tmp/create.count MODE=create HS=$hs wrk_run -s "$here/register.lua" "$base"
create=$(expected_rate "$tmp/create.count" $((nconn * 60)) "register-agent (200)") create_cpu=$cpu

printf '%-44s %12s %12s\n' "what (service on one core, $secs s each)" "per second" "CPU us each"
printf '%-44s %12s %12s\n' "redis-benchmark SET (-c 16)" "$rb_set" "$rb_cpu"
printf '%-44s %12s\n' "redis-benchmark GET (-c 16)" "$rb_get"
printf '%-44s %12s %12s\n' "GET /healthz (HTTP alone)" "$(printf '%.0f' "$healthz")" "$healthz_cpu"
printf '%-44s %12s %12s\n' "pair/complete, each a new connection" "$complete" "$complete_cpu"
printf '%-44s %12s %12s\n' "register-agent, refused 403 (service path)" "$outside" "$outside_cpu"
printf '%-44s %12s %12s\n' "register-agent, 200 (homeserver included)" "$create" "$create_cpu"
echo "(CPU us each: the service's user + system time a request, from /proc; for redis-benchmark, the"
echo " redis-server's a SET or GET, both runs together)"
