#!/usr/bin/env bash
# Static release binaries of tidemark for x86_64 and aarch64 (musl), and optionally the
# FROM scratch container images around them.
#
#   bash docker/build-release.sh                    # both architectures
#   bash docker/build-release.sh x86_64             # one (x86_64 | aarch64)
#   bash docker/build-release.sh --image            # ... and the images tidemark:<version>-<arch>
#   bash docker/build-release.sh --features ring    # ring crypto instead of graviola (needs a
#                                                   # C compiler for each target, see docs/release.md)
#
# Installs what it needs when missing: the Rust targets (rustup target add) and, as root,
# Debian's `file` (to check the result). Links with the Rust toolchain's rust-lld
# (.cargo/config.toml): no C toolchain for the targets is needed with the default features.
#
# Output: target/<triple>/release/tidemark, checked to be static, and with --image the
# build context target/docker/<arch>/ and the images tidemark:<version>-amd64 /
# tidemark:<version>-arm64; the host's architecture is also tagged tidemark:<version>
# and tidemark:latest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

archs=()
image=false
features=()
while [ $# -gt 0 ]; do
    case "$1" in
        x86_64 | amd64 | aarch64 | arm64) archs+=("$1") ;;
        --image) image=true ;;
        --features) features=(--no-default-features --features "$2"); shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ ${#archs[@]} -gt 0 ] || archs=(x86_64 aarch64)

apt_install file file
cd "$ROOT"

for arch in "${archs[@]}"; do
    triple="$(triple_of "$arch")"
    ensure_rust_target "$triple"
    log "cargo build --release --target $triple ${features[*]}"
    start=$SECONDS
    cargo build --release --locked --bin tidemark --target "$triple" "${features[@]}"
    bin="$TARGET_DIR/$triple/release/tidemark"
    check_static "$bin"
    log "$bin: $(stat -c %s "$bin") bytes, built in $((SECONDS - start)) s; $(file -b "$bin")"

    if $image; then
        darch="$(docker_arch_of "$arch")"
        context="$TARGET_DIR/docker/$darch"
        mkdir -p "$context"
        cp "$bin" "$context/tidemark"
        cp "$ROOT/docker/config.toml" "$context/config.toml"
        tag="tidemark:$VERSION-$darch"
        # FROM scratch with COPY only: nothing is pulled or run, so the engine builds a
        # foreign-architecture image without emulation (legacy builder or BuildKit).
        # --no-cache: the legacy builder's cache ignores --platform and could hand back
        # layers recorded for the other architecture (it takes seconds anyway).
        previous="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
        docker build -q --no-cache --platform "linux/$darch" -t "$tag" -f "$ROOT/docker/Dockerfile" "$context" >/dev/null
        got="$(docker image inspect -f '{{.Os}}/{{.Architecture}} {{.Size}}' "$tag")"
        log "$tag: $got bytes"
        if [ "$darch" = "$(docker_arch_of "$(host_arch)")" ]; then
            docker tag "$tag" "tidemark:$VERSION"
            docker tag "$tag" tidemark:latest
        fi
        if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
            # The image this build replaced, unless a container or another tag still uses it.
            docker rmi "$previous" >/dev/null 2>&1 || true
        fi
    fi
done
