#!/bin/sh
# run.sh -- builds bench_crypto optimised and prints mr_olm and crypto service rates beside bare
# libolm in the same run; `run.sh latency` instead prints the first answer's latency in a new
# encrypted room beside a new plain room (`mindroom run`, test homeserver, model stub, nio).
# Usage: bench/crypto/run.sh [SECONDS] | latency [embedded|redis]
#        (BUILD=dir to reuse a build tree; default build-bench; ROOMS=n room pairs, default 3)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
build=${BUILD:-$root/build-bench}
bench_configure "$build"
if [ "${1:-}" = latency ]; then
    bench_build "$build" mindroom mindroom-gateway mindroom-crypto mindroom-authz mindroom-agent \
        mr-test-homeserver mr-model-stub
    export MINDROOM_BIN="$build/services/cli/mindroom"
    for s in gateway crypto authz agent; do
        export "MINDROOM_$(echo $s | tr a-z A-Z)_BIN=$build/services/$s/mindroom-$s"
    done
    export MR_HS_BIN="$build/tests/peers/homeserver/mr-test-homeserver"
    export MR_MODEL_STUB_BIN="$build/tests/peers/model_stub/mr-model-stub"
    exec /usr/bin/python3 "$root/bench/crypto/first_answer.py" --mode "${2:-embedded}"
fi
bench_build "$build" bench_crypto
exec "$build/bench/crypto/bench_crypto" "$@"
