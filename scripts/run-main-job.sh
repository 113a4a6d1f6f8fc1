#!/usr/bin/env bash
# run-main-job.sh -- the main job (`make run`): the local demo. With no homeserver or model key at
# hand, it starts the test homeserver and the model stub, writes a config for them, runs
# `mindroom run`, and lets a scripted user (a matrix-nio client) talk to the agents, printing the
# conversation as it happens. Set MINDROOM_DEMO_REAL_MODEL=1 to have OpenAI answer instead of
# the stub (needs OPENAI_API_KEY; MINDROOM_DEMO_MODEL_ID picks the model, default gpt-5.6).
set -euo pipefail

build_dir=${1:?usage: scripts/run-main-job.sh BUILD_DIR}
build_dir=$(cd "$build_dir" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
mindroom=$build_dir/services/cli/mindroom
homeserver=$build_dir/tests/peers/homeserver/mr-test-homeserver
stub=$build_dir/tests/peers/model_stub/mr-model-stub
python=/usr/bin/python3
for bin in "$mindroom" "$homeserver" "$stub"; do
    if [ ! -x "$bin" ]; then
        echo "run-main-job: $bin is missing; build first (make build)" >&2
        exit 1
    fi
done
real_model=${MINDROOM_DEMO_REAL_MODEL:-0}
if [ "$real_model" = 1 ] && [ -z "${OPENAI_API_KEY:-}" ]; then
    echo "run-main-job: MINDROOM_DEMO_REAL_MODEL=1 needs OPENAI_API_KEY" >&2
    exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mindroom-demo.XXXXXX")
pids=()
cleanup() {
    local status=$?
    # Newest first: mindroom run before the peers it talks to.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    rm -rf "$scratch"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A user's own settings must not leak into the demo.
unset MINDROOM_CONFIG_PATH MINDROOM_STORAGE_PATH MINDROOM_BUS_URL MINDROOM_STORE_URL \
    MINDROOM_NAMESPACE MATRIX_HOMESERVER MATRIX_SERVER_NAME MATRIX_REGISTRATION_TOKEN
export HOME=$scratch/home
config_dir=$scratch/mindroom
mkdir -p "$HOME" "$config_dir"

heading() { printf '\n== %s\n\n' "$*"; }

# Starts a peer that prints "listening on URL" first; sets $url.
start_peer() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        url=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "run-main-job: $1 did not start; its log:" >&2
    cat "$log" >&2
    exit 1
}

heading "1. A Matrix homeserver and a model for the demo"
registration_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
start_peer "$scratch/homeserver.log" "$homeserver" --listen 127.0.0.1:0 \
    --registration-token "$registration_token" --open-registration
hs_url=$url
echo "test homeserver (mr-test-homeserver) at $hs_url"
stub_key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
if [ "$real_model" = 1 ]; then
    model_lines="    id: ${MINDROOM_DEMO_MODEL_ID:-gpt-5.6}"
    echo "model: OpenAI ${MINDROOM_DEMO_MODEL_ID:-gpt-5.6} (MINDROOM_DEMO_REAL_MODEL=1)"
    script_args=()
else
    start_peer "$scratch/model-stub.log" "$stub" --listen 127.0.0.1:0 --api-key "$stub_key"
    # The stub's own key variable: a real OPENAI_API_KEY in the environment never reaches it.
    model_lines="    id: stub-model
    host: $url
    api_key_env: MINDROOM_DEMO_MODEL_KEY"
    echo "model stub (mr-model-stub, OpenAI-compatible, scripted answers) at $url"
    script_args=(--script "$url")
fi

heading "2. config.yaml and .env for it"
cat >"$config_dir/config.yaml" <<EOF
# Written by the demo: two agents, a personal room and a shared one, the router, and you.
models:
  default:
    provider: openai
$model_lines
agents:
  mind:
    display_name: Mind
    role: Your personal assistant.
    rooms: [personal, lobby]
  coder:
    display_name: Coder
    role: Writes and explains code.
    rooms: [lobby]
router:
  model: default
authorization:
  global_users: ["@you:localhost"]
EOF
cat >"$config_dir/.env" <<EOF
MATRIX_HOMESERVER=$hs_url
MATRIX_SERVER_NAME=localhost
MATRIX_REGISTRATION_TOKEN=$registration_token
MINDROOM_DEMO_MODEL_KEY=$stub_key
EOF
chmod 600 "$config_dir/.env"
sed 's/^/  /' "$config_dir/config.yaml"
echo
"$mindroom" config validate "$config_dir/config.yaml"

heading "3. You sign up on the homeserver"
password=demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
"$python" "$here/demo_user.py" register "$hs_url" you "$password"

heading "4. mindroom run (its start-up log)"
run_log=$scratch/mindroom.log
"$mindroom" run --config "$config_dir/config.yaml" >"$run_log" 2>&1 &
pids+=($!)
for _ in $(seq 1200); do
    grep -q ' run: ready: ' "$run_log" && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
        cat "$run_log" >&2
        echo "run-main-job: mindroom run exited during start-up" >&2
        exit 1
    fi
    sleep 0.1
done
sed 's/^/  /' "$run_log"
grep -q ' run: ready: ' "$run_log" || { echo "run-main-job: mindroom run not ready after 120 s" >&2; exit 1; }

heading "5. The conversation"
"$python" "$here/demo_user.py" chat "$hs_url" you "$password" "${script_args[@]}"

heading "6. Ctrl-C for mindroom run (SIGINT): it stops cleanly"
kill -INT "${pids[-1]}"
status=0
wait "${pids[-1]}" || status=$?
unset 'pids[-1]'
sed -n '/ run: stopping$/,$p' "$run_log" | sed 's/^/  /'
if [ "$status" -ne 0 ]; then
    echo "run-main-job: mindroom run exited with $status" >&2
    exit 1
fi
heading "Done: every message got its answer"
