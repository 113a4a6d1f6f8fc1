#!/usr/bin/env bash
# run-main-job.sh -- the main job (`make run`): sets up a configuration the way a new user would,
# shows it with secrets masked, validates it, and shows a broken edit being caught.
set -euo pipefail

build_dir=${1:?usage: scripts/run-main-job.sh BUILD_DIR}
bin=$(cd "$build_dir" && pwd)/services/cli/mindroom
if [ ! -x "$bin" ]; then
    echo "run-main-job: $bin is missing; build first (make build)" >&2
    exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mindroom-main-job.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
config_dir=$scratch/mindroom
# A user's own settings must not leak into the demo: no lookup override, a scratch HOME.
unset MINDROOM_CONFIG_PATH
export HOME=$scratch/home
mkdir -p "$HOME" "$config_dir"

step=0
heading() {
    step=$((step + 1))
    printf '\n== %d. %s\n\n' "$step" "$*"
}

# Shows the command, then runs it as `mindroom`, its diagnostics in line with its output.
run() {
    printf '$ mindroom %s\n' "$*"
    "$bin" "$@" 2>&1
}

# Values of variables whose names say they are secret are replaced; commented lines stay.
mask_secrets() {
    sed -E 's/^([[:space:]]*(export[[:space:]]+)?[A-Za-z0-9_]*(KEY|SECRET|TOKEN|PASSWORD)[A-Za-z0-9_]*[[:space:]]*=)(.+)$/\1********/'
}

heading "The mindroom command"
run --version

heading "A new user sets up a config for the hosted Matrix server"
run config init --profile public --path "$config_dir"

heading "config.yaml as written"
cat -n "$config_dir/config.yaml"

heading ".env as written (secret values masked; mode 0$(stat -c %a "$config_dir/.env"))"
mask_secrets < "$config_dir/.env"

heading "The written config passes validation"
run config validate "$config_dir/config.yaml"
echo "(the warnings point at the owner placeholder, which \`mindroom connect\` fills in)"

heading "A broken edit: 'tools' typed as 'toolz', a room access mode misspelled"
broken=$config_dir/broken.yaml
sed -e 's/^    tools:$/    toolz:/' -e 's/^  mode: single_user_private$/  mode: single_user_privat/' \
    "$config_dir/config.yaml" > "$broken"
diff -u --label config.yaml --label broken.yaml "$config_dir/config.yaml" "$broken" || true
echo
status=0
report=$(run config validate "$broken") || status=$?
printf '%s\n' "$report"
if [ "$status" -ne 1 ]; then
    echo "run-main-job: expected 'config validate' to exit 1 on the broken file, got $status" >&2
    exit 1
fi
for field in agents.mind.toolz matrix_room_access.mode; do
    if ! grep -Eq "broken\.yaml:[0-9]+:[0-9]+: $field: " <<<"$report"; then
        echo "run-main-job: the report does not name $field with file:line:column" >&2
        exit 1
    fi
done
echo "(exit code $status: each mistake above is reported with file:line:column)"

heading "Done: the config was written, validated, and the broken edit was caught"
