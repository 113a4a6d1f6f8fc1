#!/bin/sh
# run.sh -- bench/pipeline in each shape: MindRoom's time per message from the sync response in
# to the reply send out (p50/p99), messages/s, and peak RSS per process, beside the baseline of
# one model call and one Matrix send measured in the same run. See bench_pipeline.c.
# Usage: bench/pipeline/run.sh [BUILD_DIR] [MODES...]   (BUILD_DIR defaults to build; MODES to
# embedded redis kafka; crash, concurrent and replicas run too when named). SEQUENTIAL and BURST
# in the environment set the message counts (default 300 each; on the Kafka mock 60 and 300, see
# the README for why); CRASHES (5) and ANSWERS (100) those of crash and concurrent, with ANSWER_SECONDS
# (60) and CHARS_PER_SECOND (80) the length of each concurrent answer; REPLICAS (4), MESSAGES
# (32 per replica), ROOMS (128) and PARTITIONS (8) those of replicas; AGENTS the number of
# agents (1).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
build=${1:-$root/build}
[ $# -gt 0 ] && shift
modes=${*:-embedded redis kafka}
bench_build "$build" bench_pipeline
for mode in $modes; do
    case $mode in
    crash) "$build/bench/pipeline/bench_pipeline" crash "${CRASHES:-5}" ;;
    concurrent) "$build/bench/pipeline/bench_pipeline" concurrent "${ANSWERS:-100}" ;;
    replicas)
        replicas=${REPLICAS:-4}
        ROOMS=${ROOMS:-128} "$build/bench/pipeline/bench_pipeline" replicas "$replicas" "${MESSAGES:-$((32 * replicas))}" ;;
    *)
        sequential=${SEQUENTIAL:-300}
        [ "$mode" = kafka ] && sequential=${SEQUENTIAL:-60}
        "$build/bench/pipeline/bench_pipeline" "$mode" "$sequential" "${BURST:-300}" ;;
    esac
    echo
done
