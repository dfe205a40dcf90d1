#!/usr/bin/env bash
# Cache hit-ratio benchmark: Ferrite against real Redis on one Zipf stream.
#
# Builds ferrite-server and the hit-ratio bench (release), starts a real
# redis-server and a Ferrite side by side (benches/servers.sh), runs the
# benchmark against both, stops them and prints the table. Extra arguments
# go to the bench binary, e.g.
# `benches/hit-ratio.sh --requests 2000000 --policies allkeys-lfu`.
#
# Environment: REDIS_SERVER (default: redis-server on PATH),
# CARGO_TARGET_DIR (default: target/), SKIP_BUILD=1 to use existing binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=hit-ratio.sh
BENCH_BIN=hit-ratio
# shellcheck source=benches/servers.sh
source benches/servers.sh
start_servers

status=0
"$bench_bin" --ferrite "127.0.0.1:$ferrite_port" --redis "127.0.0.1:$redis_port" "$@" || status=$?
exit "$status"
