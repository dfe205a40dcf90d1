#!/usr/bin/env bash
# Builds the Ferrite Docker image FROM scratch: a static (glibc, crt-static),
# stripped release binary, then docker/Dockerfile. Needs no registry beyond
# crates.io (and none once the crates are cached): no base image is pulled.
#   docker/build.sh [image-tag]        (default ferrite:latest; $IMAGE also works)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
image="${1:-${IMAGE:-ferrite:latest}}"
target=x86_64-unknown-linux-gnu
cd "$root"

echo "== static release binary ($target, crt-static, stripped)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --release -p ferrite-server --target "$target" \
    --config profile.release.strip=true
bin="${CARGO_TARGET_DIR:-$root/target}/$target/release/ferrite-server"
desc="$(file -L "$bin")"
echo "$desc"
case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "build.sh: $bin is not statically linked" >&2; exit 1 ;;
esac

echo "== image $image"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/ferrite-server"
mkdir "$ctx/data"
cp "$root/docker/Dockerfile" "$ctx/Dockerfile"
docker build -q -t "$image" "$ctx"
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "image $image: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }') MB)"
limit=15000000
if [ "$size" -gt "$limit" ]; then
    echo "build.sh: image is larger than 15 MB (15,000,000 bytes)" >&2
    exit 1
fi
