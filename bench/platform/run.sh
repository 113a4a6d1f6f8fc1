#!/bin/sh
# run.sh -- mindroom-platform against mr-test-kube-api with the real helm: request -> instance
# ready, and 100 instances created one after another and at once (time, platform peak RSS),
# beside one bare `helm template` of the same chart, all in this run; then request -> ready with
# the peer running each instance's services as processes (--deployments run), beside the first.
# Usage: bench/platform/run.sh [N]   (N instances, default 100; BUILD=dir to reuse a build tree;
# default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree mindroom-platform mr-test-kube-api mindroom-gateway mindroom-crypto mindroom-authz \
    mindroom-agent mindroom-upstream-auth mr-test-homeserver -- -DMR_WERROR=OFF
n=${1:-100}
helm=${HELM:-$root/build/tools/bin/helm}
[ -x "$helm" ] || helm=$(command -v helm) || { echo "run.sh: no helm; run make helm" >&2; exit 1; }
exec python3 "$root/bench/platform/bench_platform.py" --platform "$build/services/platform/mindroom-platform" \
    --kube-api "$build/tests/peers/kube_api/mr-test-kube-api" --helm "$helm" --charts "$root/charts" -n "$n" \
    --bin-dir "$build"
