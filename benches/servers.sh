# Sourced by the benchmark scripts: builds what they need, starts a real
# redis-server and a Ferrite side by side on free loopback ports (each in
# its own temporary directory, no persistence) and stops both on exit.
#
# The caller sets BENCH_NAME (for messages) and BENCH_BIN (the benchmark
# binary's name), then calls `start_servers`, which sets redis_port,
# ferrite_port and bench_bin.
#
# Environment: REDIS_SERVER (default: redis-server on PATH),
# CARGO_TARGET_DIR (default: target/), SKIP_BUILD=1 to use existing binaries.

target="${CARGO_TARGET_DIR:-target}"
redis_server="${REDIS_SERVER:-redis-server}"

# A loopback port nobody listens on (bash's /dev/tcp connect fails).
free_port() {
    local p
    for p in $(seq "$1" $(($1 + 200))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "$BENCH_NAME: no free port from $1" >&2
    return 1
}

# Waits until something answers PING on the port (RESP, no redis-cli needed).
wait_ready() {
    local port=$1 pid=$2 reply
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { echo "$BENCH_NAME: server on port $port exited" >&2; return 1; }
        reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 \
            && read -r -t 2 line <&3 && echo "$line") 2>/dev/null || true)"
        [[ "$reply" == "+PONG"* ]] && return 0
        sleep 0.1
    done
    echo "$BENCH_NAME: server on port $port did not answer PING" >&2
    return 1
}

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "${workdir:-}" ]] && rm -rf "$workdir"
}

start_servers() {
    if ! command -v "$redis_server" >/dev/null 2>&1; then
        echo "$BENCH_NAME: $redis_server not found; install Redis 7.0 or set REDIS_SERVER" >&2
        exit 2
    fi
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        cargo build --release --quiet -p ferrite-server --bin ferrite-server -p ferrite-benches --bin "$BENCH_BIN"
    fi
    local ferrite_bin="$target/release/ferrite-server"
    bench_bin="$target/release/$BENCH_BIN"
    local b
    for b in "$ferrite_bin" "$bench_bin"; do
        [[ -x "$b" ]] || { echo "$BENCH_NAME: no binary at $b" >&2; exit 2; }
    done
    ferrite_bin="$(cd "$(dirname "$ferrite_bin")" && pwd)/$(basename "$ferrite_bin")"

    workdir="$(mktemp -d "${TMPDIR:-/tmp}/ferrite-$BENCH_BIN.XXXXXX")"
    trap cleanup EXIT INT TERM

    redis_port="$(free_port 7100)"
    mkdir -p "$workdir/redis"
    (cd "$workdir/redis" && exec "$redis_server" --port "$redis_port" --bind 127.0.0.1 \
        --save '' --appendonly no --logfile "$workdir/redis/redis.log") &
    pids+=("$!")
    wait_ready "$redis_port" "${pids[-1]}"

    ferrite_port="$(free_port $((redis_port + 1)))"
    mkdir -p "$workdir/ferrite"
    (cd "$workdir/ferrite" && exec "$ferrite_bin" --port "$ferrite_port" --save "" \
        >"$workdir/ferrite/ferrite.log" 2>&1) &
    pids+=("$!")
    wait_ready "$ferrite_port" "${pids[-1]}"

    echo "redis-server $("$redis_server" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$redis_port, ferrite-server on 127.0.0.1:$ferrite_port" >&2
}
