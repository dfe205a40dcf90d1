#!/usr/bin/env bash
# Pub/sub fan-out benchmark: one publisher, 100 subscribers on one channel,
# messages delivered per second on Ferrite and on real Redis, measured in
# alternating rounds in one run (benches/src/fanout.rs).
#
# Builds ferrite-server and the fanout bench (release), starts both servers
# (benches/servers.sh), runs the benchmark and prints each round, the
# medians and the Ferrite/Redis ratio. Extra arguments go to the bench
# binary, e.g. `benches/fanout.sh --subscribers 200 --messages 50000`.
#
# Environment: REDIS_SERVER (default: redis-server on PATH),
# CARGO_TARGET_DIR (default: target/), SKIP_BUILD=1 to use existing binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=fanout.sh
BENCH_BIN=fanout
# shellcheck source=benches/servers.sh
source benches/servers.sh
start_servers

status=0
"$bench_bin" --ferrite "127.0.0.1:$ferrite_port" --redis "127.0.0.1:$redis_port" "$@" || status=$?
exit "$status"
