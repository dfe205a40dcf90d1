#!/usr/bin/env bash
# End-to-end test of the Docker image (needs a Docker engine, no registry):
# builds it with docker/build.sh, then
#  1. runs it with a published loopback port and options after the image name,
#     SET/GET/TTL through redis-cli (or a bash /dev/tcp RESP client),
#  2. waits for HEALTHCHECK to report healthy,
#  3. docker stop: exit code 0 well inside the 10 s timeout,
#  4. --appendonly yes: a write survives docker kill (SIGKILL) and a restart
#     of the container, read back from the AOF in the /data volume,
#  5. a mounted config file as the first argument,
#  6. the compose sidecar example: the app reaches Ferrite, then it is torn down.
# Everything it creates (containers, image, compose network) is removed on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

tag="ferrite:test-$$"
name="ferrite-test-$$"
name2="ferrite-test-conf-$$"
name3="ferrite-test-aof-$$"
name0="ferrite-test-protected-$$"
project="ferritetest$$"
tmp="$(mktemp -d)"
compose=(docker-compose)
if docker compose version >/dev/null 2>&1; then compose=(docker compose); fi

compose_down() {
    FERRITE_IMAGE="$tag" "${compose[@]}" -p "$project" -f docker/compose.yaml down -v --remove-orphans >/dev/null 2>&1 || true
}
cleanup() {
    docker rm -f -v "$name0" "$name" "$name2" "$name3" >/dev/null 2>&1 || true
    compose_down
    docker rmi -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL: $*" >&2
    docker logs "$name" 2>&1 | tail -20 >&2 || true
    exit 1
}

# One command, one reply, printed the way `redis-cli` prints without a tty
# (FERRITE_TEST_CLIENT=tcp forces the bash client).
port=
if [ "${FERRITE_TEST_CLIENT:-}" != tcp ] && command -v redis-cli >/dev/null 2>&1; then
    rcmd() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
    echo "client: redis-cli"
else
    resp_read() {
        local line n i
        IFS= read -r -t 5 line <&3 || return 1
        line=${line%$'\r'}
        case $line in
            '$-1' | '*-1') echo ;;
            '$'*) IFS= read -r -t 5 line <&3; echo "${line%$'\r'}" ;;
            '*'*) n=${line#\*}; for ((i = 0; i < n; i++)); do resp_read; done ;;
            *) echo "${line:1}" ;;
        esac
    }
    rcmd() {
        local req a
        exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
        req="*$#"$'\r\n'
        for a in "$@"; do req+="\$${#a}"$'\r\n'"$a"$'\r\n'; done
        printf '%s' "$req" >&3
        resp_read
        exec 3>&-
    }
    echo "client: bash /dev/tcp"
fi

wait_pong() {
    for _ in $(seq 1 50); do
        [ "$(rcmd PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.2
    done
    return 1
}

expect() { # expect WANT CMD...
    local want=$1 got
    shift
    got=$(rcmd "$@") || fail "$* : no reply"
    [ "$got" = "$want" ] || fail "$*: got '$got', want '$want'"
    echo "ok: $* -> $(echo "$got" | tr '\n' ' ')"
}

echo "== build"
docker/build.sh "$tag"

echo "== protected mode: no password, so a client from the host is refused"
docker run -d --name "$name0" -p 127.0.0.1::6379 "$tag" >/dev/null
port=$(docker port "$name0" 6379/tcp | head -1)
port=${port##*:}
denied=
for _ in $(seq 1 50); do
    if rcmd PING 2>&1 | grep -q DENIED; then denied=1; break; fi
    sleep 0.2
done
[ -n "$denied" ] || fail "a host client was not refused by protected mode"
echo "ok: PING from the host -> DENIED (protected mode)"
docker rm -f -v "$name0" >/dev/null

echo "== run: published loopback port, options after the image name"
docker run -d --name "$name" -p 127.0.0.1::6379 "$tag" \
    --protected-mode no --maxmemory 50mb --maxmemory-policy allkeys-lru >/dev/null
port=$(docker port "$name" 6379/tcp | head -1)
port=${port##*:}
echo "published on 127.0.0.1:$port"
wait_pong || fail "no PONG on 127.0.0.1:$port"
expect OK SET greeting hello EX 100
expect hello GET greeting
ttl=$(rcmd TTL greeting)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 100 ] || fail "TTL greeting: $ttl"
echo "ok: TTL greeting -> $ttl"
expect $'maxmemory-policy\nallkeys-lru' CONFIG GET maxmemory-policy
expect $'maxmemory\n52428800' CONFIG GET maxmemory
expect $'dir\n/data' CONFIG GET dir

echo "== healthcheck"
status=
for _ in $(seq 1 60); do
    status=$(docker inspect --format '{{.State.Health.Status}}' "$name")
    [ "$status" = healthy ] && break
    sleep 1
done
[ "$status" = healthy ] || fail "health status '$status'"
echo "ok: health status healthy"

echo "== docker stop"
start=$(date +%s%N)
docker stop "$name" >/dev/null
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
code=$(docker inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after docker stop"
[ "$elapsed_ms" -lt 10000 ] || fail "docker stop took ${elapsed_ms} ms"
echo "ok: stopped in ${elapsed_ms} ms, exit code 0"
docker logs "$name" 2>&1 | tail -3

echo "== --appendonly yes: a write survives docker kill"
docker run -d --name "$name3" -p 127.0.0.1::6379 "$tag" \
    --protected-mode no --appendonly yes >/dev/null
port=$(docker port "$name3" 6379/tcp | head -1)
port=${port##*:}
name=$name3 wait_pong || fail "no PONG from the AOF container"
expect OK SET durable yes
expect 1 RPUSH durable-list a
docker kill "$name3" >/dev/null
docker start "$name3" >/dev/null
port=$(docker port "$name3" 6379/tcp | head -1)
port=${port##*:}
name=$name3 wait_pong || fail "no PONG after the restart"
expect yes GET durable
expect a LPOP durable-list
docker rm -f -v "$name3" >/dev/null

echo "== a mounted config file as the first argument"
printf 'protected-mode no\nmaxmemory 10mb\nmaxmemory-policy allkeys-lru\n' >"$tmp/ferrite.conf"
chmod 644 "$tmp/ferrite.conf"
docker run -d --name "$name2" -p 127.0.0.1::6379 \
    -v "$tmp/ferrite.conf:/etc/ferrite.conf:ro" "$tag" /etc/ferrite.conf --maxmemory-policy volatile-lru >/dev/null
port=$(docker port "$name2" 6379/tcp | head -1)
port=${port##*:}
name=$name2 wait_pong || fail "no PONG from the container with a config file"
expect $'maxmemory\n10485760' CONFIG GET maxmemory
expect $'maxmemory-policy\nvolatile-lru' CONFIG GET maxmemory-policy
docker rm -f -v "$name2" >/dev/null

echo "== compose sidecar example (${compose[*]})"
if ! FERRITE_IMAGE="$tag" "${compose[@]}" -p "$project" -f docker/compose.yaml \
    up --exit-code-from app >"$tmp/compose.log" 2>&1; then
    tail -30 "$tmp/compose.log" >&2
    fail "compose: the app did not reach Ferrite"
fi
grep -E 'app.*exited with code|Ready to accept' "$tmp/compose.log" || true
echo "ok: the app container reached Ferrite (exit code 0)"
compose_down
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
[ -z "$left" ] || fail "compose left containers: $left"
echo "ok: compose example torn down"

echo "docker test: all checks passed"
