# lib.sh -- what the bench scripts share, sourced by them once they have set root (the checkout)
# and `set -eu`: their optimised build tree, free loopback ports, a throwaway redis-server, and
# stopping what they started.

# The Release tree of the bench scripts that take BUILD (default build-bench) in build,
# configured unless it is there (more cmake arguments after the targets' "--"), and the targets
# built: bench_release_tree TARGETS... [-- CMAKE ARGS...].
bench_release_tree() {
    rt_build=${BUILD:-$root/build-bench}
    rt_targets=
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        rt_targets="$rt_targets $1"
        shift
    done
    [ $# -gt 0 ] && shift
    bench_configure "$rt_build" "$@"
    # shellcheck disable=SC2086 # the targets are words
    bench_build "$rt_build" $rt_targets
}

# Configures a Release tree at $1 (more cmake arguments after it) unless one is there.
bench_configure() {
    cfg_build=$1
    shift
    if [ ! -f "$cfg_build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$cfg_build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    fi
}

# Builds the targets after $1 in tree $1 (then in build) on every core; the build's output goes
# to the terminal only when it fails.
bench_build() {
    build=$1
    shift
    if ! cmake --build "$build" --target "$@" -j "$(nproc 2>/dev/null || echo 2)" >"$build/bench-build.log" 2>&1; then
        cat "$build/bench-build.log" >&2
        exit 1
    fi
}

# A free TCP port on 127.0.0.1, as the kernel picks it for a bind to port 0.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Stops process $1 (when set) and waits for it.
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }

# A temp dir for the run in tmp (mr-bench-$1-...), removed at exit once the processes whose pids
# the variables named in bench_stop hold (in that order) are stopped.
bench_stop=
bench_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-bench-$1-XXXXXX")
    trap bench_cleanup EXIT INT TERM
}
bench_cleanup() {
    for v in $bench_stop; do
        eval "stop \"\${$v:-}\""
    done
    rm -rf "$tmp"
}

# Starts redis-server on a free loopback port with its files in directory $1 and the options
# after it, and waits until it answers PING: its port in redis_port, its pid in redis_pid, which
# joins bench_stop.
bench_redis() {
    bench_stop="$bench_stop redis_pid"
    r_dir=$1
    shift
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$r_dir" "$@" >"$r_dir/redis.log" 2>&1 &
    redis_pid=$!
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
}

# $1 / $2 with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
