#!/usr/bin/env bash
# stack.sh -- the distributed shape on one machine: redis-server (the store) and the Kafka mock
# cluster (the bus) on loopback, then mindroom-gateway, -crypto, -authz and -agent as processes,
# each with its log and pidfile under a state directory. See deploy/README.md.
#
# usage: deploy/local/stack.sh up|down|status
#
# Settings (environment):
#   MINDROOM_CONFIG       config.yaml every service reads; the .env beside it fills in what the
#                         environment leaves unset (default ./config.yaml)
#   MINDROOM_STACK_DIR    logs, pidfiles, Redis data, the generated instance secret
#                         (default deploy/local/state)
#   MINDROOM_STACK_BUILD  the CMake build tree holding the binaries (default <repo>/build)
#   MINDROOM_STACK_PORT   the first of five loopback ports: Redis, then the --listen port of
#                         gateway, crypto, authz and agent (default 17300)
#   MINDROOM_STACK_BUS    kafka (default: the Kafka mock cluster) or redis (Redis Streams)
#   MINDROOM_STACK_WAIT   seconds each process may take to answer (default 60)
# Exit status: 0 done (status: everything up), 1 failed (status: partly up), 2 usage,
# 3 status: nothing running.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
state=$(readlink -m "${MINDROOM_STACK_DIR:-$here/state}")
build=${MINDROOM_STACK_BUILD:-$repo/build}
config=${MINDROOM_CONFIG:-$PWD/config.yaml}
port_base=${MINDROOM_STACK_PORT:-17300}
bus=${MINDROOM_STACK_BUS:-kafka}
wait_s=${MINDROOM_STACK_WAIT:-60}
services=(gateway crypto authz agent)
run=$state/run
logs=$state/logs

die() {
    echo "stack.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}

redis_port() { echo "$port_base"; }

service_port() {
    local i
    for i in "${!services[@]}"; do
        if [ "${services[i]}" = "$1" ]; then
            echo $((port_base + 1 + i))
            return
        fi
    done
}

# ---- pidfiles: "<pid> <executable>", so a reused pid is never taken for ours -----------------

pidfile() { echo "$run/$1.pid"; }

# Prints the pid of a process of the stack when it still runs, else nothing.
alive_pid() {
    local f pid exe
    f=$(pidfile "$1")
    [ -f "$f" ] || return 0
    read -r pid exe < "$f" || true
    if [ -n "${pid:-}" ] && [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
        echo "$pid"
    fi
}

# Records the background process just started ($!) as running executable $2.
record() { echo "$! $(readlink -f "$(command -v "$2")")" > "$(pidfile "$1")"; }

# Starts a detached process (its own session, so a closed terminal sends it no SIGHUP, which the
# services take as "reload") with its output in logs/<name>.log, and records it.
launch() {
    local name=$1
    shift
    setsid "$@" >> "$logs/$name.log" 2>&1 < /dev/null &
    record "$name" "$1"
}

# Waits, up to $wait_s, until "$@" succeeds; fails early when process $1 has exited. (Just
# after the fork the pid may still run the shell about to exec, so this checks the pid only.)
wait_until() {
    local name=$1 what=$2 pid
    shift 2
    local deadline=$((SECONDS + wait_s))
    read -r pid _ < "$(pidfile "$name")"
    until "$@"; do
        if ! kill -0 "$pid" 2> /dev/null; then
            echo "stack.sh: $name exited while starting; the end of $logs/$name.log:" >&2
            tail -n 20 "$logs/$name.log" >&2 || true
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "stack.sh: $name did not $what within ${wait_s} s; see $logs/$name.log" >&2
            return 1
        fi
        sleep 0.2
    done
}

# HTTP status of a GET, or 000 when nothing answers.
http_status() {
    /usr/bin/python3 - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print("000")
EOF
}

healthy() { [ "$(http_status "http://127.0.0.1:$(service_port "$1")/healthz")" = 200 ]; }

redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$(redis_port)" ping 2>/dev/null)" = PONG ]; }

kafka_bootstrap() { head -n 1 "$logs/kafka-mock.log" 2>/dev/null | grep -E '^[0-9.:,]+$' || true; }

has_bootstrap() { [ -n "$(kafka_bootstrap)" ]; }

# The mock answers each command with "ok" or "error: <why>" (its log also holds librdkafka's).
has_answers() { [ "$(grep -cE '^(ok|error: .*)$' "$logs/kafka-mock.log")" -ge "$1" ]; }

# ---- up ----------------------------------------------------------------------------------------

start_redis() {
    mkdir -p "$state/redis"
    launch redis redis-server --bind 127.0.0.1 --port "$(redis_port)" --dir "$state/redis" \
        --save "" --appendonly yes
    wait_until redis "answer PING" redis_pong
}

# The mock quits at the end of its input: a holder process keeps a FIFO open for writing, and
# down ends the mock by ending the holder.
start_kafka() {
    local mock=$build/tests/peers/mr-kafka-mock topic answers
    rm -f "$run/kafka.in" "$logs/kafka-mock.log"
    mkfifo -m 0600 "$run/kafka.in"
    setsid sleep infinity > "$run/kafka.in" 2> /dev/null < /dev/null &
    record kafka-holder sleep
    setsid "$mock" < "$run/kafka.in" >> "$logs/kafka-mock.log" 2>&1 &
    record kafka-mock "$mock"
    wait_until kafka-mock "print its bootstrap list" has_bootstrap
    # The mock answers no CreateTopics: every topic of proto/topics.yaml exists before use.
    answers=0
    while read -r topic; do
        echo "topic $topic 8" > "$run/kafka.in"
        answers=$((answers + 1))
    done < <(sed -n 's/^  \([a-z][a-z0-9._-]*\):$/\1/p' "$repo/proto/topics.yaml")
    wait_until kafka-mock "create the topics" has_answers "$answers"
    if grep '^error: ' "$logs/kafka-mock.log" >&2; then
        die "mr-kafka-mock refused a topic; see $logs/kafka-mock.log"
    fi
}

start_service() {
    local name=$1 bin=$build/services/$1/mindroom-$1
    launch "$name" "$bin" --config "$config" --listen "127.0.0.1:$(service_port "$name")"
    wait_until "$name" "answer /healthz" healthy "$name"
}

# A shared secret lets the separate processes open each other's sealed values; it is made once
# unless the environment or the .env beside config.yaml already sets one.
instance_secret() {
    local dotenv
    dotenv=$(dirname "$config")/.env
    if [ -n "${MINDROOM_INSTANCE_SECRET:-}" ] ||
        { [ -f "$dotenv" ] && grep -q '^MINDROOM_INSTANCE_SECRET=' "$dotenv"; }; then
        return
    fi
    if [ ! -s "$state/instance_secret" ]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$state/instance_secret")
    fi
    MINDROOM_INSTANCE_SECRET=$(cat "$state/instance_secret")
    export MINDROOM_INSTANCE_SECRET
}

check_setup() {
    case $bus in kafka | redis) ;; *) die "MINDROOM_STACK_BUS is \"$bus\"; use kafka or redis" ;; esac
    if ! [[ $port_base =~ ^[0-9]+$ ]] || [ "$port_base" -lt 1024 ] || [ "$port_base" -gt 65530 ]; then
        die "MINDROOM_STACK_PORT is \"$port_base\"; use a port from 1024 to 65530"
    fi
    [[ $wait_s =~ ^[0-9]+$ ]] || die "MINDROOM_STACK_WAIT is \"$wait_s\"; use a number of seconds"
    [ -f "$config" ] || die "no config at $config (set MINDROOM_CONFIG; \`mindroom config init\` writes one)"
    if ! command -v redis-server > /dev/null || ! command -v redis-cli > /dev/null; then
        die "redis-server and redis-cli are missing (make deps)"
    fi
    local name bin
    for name in "${services[@]}" kafka-mock; do
        bin=$build/services/$name/mindroom-$name
        [ "$name" != kafka-mock ] || bin=$build/tests/peers/mr-kafka-mock
        [ -x "$bin" ] || die "$bin is missing; build first (make build)"
    done
}

# On a failed start (a process that exits or never answers, or any other error) nothing of the
# half-started stack is left running.
up_failed() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "stack.sh: up failed; stopping what had started" >&2
        down > /dev/null
    fi
    exit "$status"
}

up() {
    check_setup
    config=$(readlink -f "$config")
    if [ "$(status_quiet)" != none ]; then
        die "the stack in $state is already (partly) up; run \`stack.sh down\` first"
    fi
    mkdir -p "$run" "$logs"
    chmod 0700 "$state"
    # Every process carries it: a leftover one can be found by its environment.
    export MINDROOM_STACK_DIR=$state
    trap up_failed EXIT
    instance_secret
    start_redis
    MINDROOM_STORE_URL=redis://127.0.0.1:$(redis_port)/1
    if [ "$bus" = kafka ]; then
        start_kafka
        MINDROOM_BUS_URL=kafka://$(kafka_bootstrap)
    else
        MINDROOM_BUS_URL=redis://127.0.0.1:$(redis_port)/0
    fi
    export MINDROOM_STORE_URL MINDROOM_BUS_URL
    local name
    for name in "${services[@]}"; do
        start_service "$name"
    done
    trap - EXIT
    echo "stack up: store $MINDROOM_STORE_URL, bus $MINDROOM_BUS_URL, logs in $logs"
}

# ---- down --------------------------------------------------------------------------------------

# Asks a process to end with the command "${@:2}" (default: SIGTERM), then sends SIGKILL after
# $wait_s; the pidfile goes either way.
stop() {
    local name=$1 pid deadline
    shift
    pid=$(alive_pid "$name")
    if [ -n "$pid" ]; then
        if [ $# -gt 0 ]; then "$@"; else kill -TERM "$pid" 2> /dev/null || true; fi
        deadline=$((SECONDS + wait_s))
        while [ -n "$(alive_pid "$name")" ] && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if [ -n "$(alive_pid "$name")" ]; then
            echo "stack.sh: $name (pid $pid) did not end within ${wait_s} s; killing it" >&2
            kill -KILL "$pid" 2> /dev/null || true
        fi
        echo "stopped $name"
    fi
    rm -f "$(pidfile "$name")"
}

down() {
    local i
    # Consumers first, the bus and the store last; the mock quits when its input ends.
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do
        stop "${services[i]}"
    done
    stop kafka-mock stop kafka-holder
    stop kafka-holder
    stop redis
    rm -f "$run/kafka.in"
}

# ---- status ------------------------------------------------------------------------------------

all_names() { echo redis kafka-holder kafka-mock "${services[@]}"; }

# "all", "none" or "some": which of the recorded processes run.
status_quiet() {
    local name up=0 recorded=0
    for name in $(all_names); do
        [ -f "$(pidfile "$name")" ] || continue
        recorded=$((recorded + 1))
        [ -z "$(alive_pid "$name")" ] || up=$((up + 1))
    done
    if [ "$up" -eq 0 ]; then echo none; elif [ "$up" -eq "$recorded" ]; then echo all; else echo some; fi
}

status() {
    local name pid detail
    for name in $(all_names); do
        [ -f "$(pidfile "$name")" ] || continue
        pid=$(alive_pid "$name")
        case $name in
            redis) detail="redis://127.0.0.1:$(redis_port)" ;;
            kafka-mock) detail="kafka://$(kafka_bootstrap)" ;;
            kafka-holder) detail="keeps the mock's input open" ;;
            *) detail="http://127.0.0.1:$(service_port "$name") healthz $(http_status \
                "http://127.0.0.1:$(service_port "$name")/healthz") readyz $(http_status \
                "http://127.0.0.1:$(service_port "$name")/readyz")" ;;
        esac
        printf '%-13s %-5s pid %-8s %s\n' "$name" "$([ -n "$pid" ] && echo up || echo down)" \
            "$(cut -d' ' -f1 "$(pidfile "$name")")" "$detail"
    done
    case $(status_quiet) in
        all) return 0 ;;
        none) echo "stack is down ($state)"; return 3 ;;
        *) return 1 ;;
    esac
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) usage ;;
esac
