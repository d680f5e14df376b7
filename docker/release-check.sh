#!/usr/bin/env bash
# Acceptance checks of the release artifacts; CI runs this after the test suite.
#
#   bash docker/release-check.sh
#
# 1. builds the static binaries for x86_64 and aarch64 and their FROM scratch images
#    (docker/build-release.sh --image);
# 2. checks each binary is statically linked (file, ldd) and within its size budget
#    (x86_64 binary < 8.5 MB, image < 10 MB);
# 3. runs the aarch64 binary's --version under qemu-aarch64-static (Debian's
#    qemu-user-static, installed when missing);
# 4. runs a full collection cycle against the test broker and checks /metrics exactly
#    (tests/release.rs, release_artifact_serves_exact_metrics) for: the x86_64 binary, the
#    aarch64 binary under qemu, the amd64 image, and the arm64 image when the kernel can run
#    arm64 containers (binfmt_misc with qemu's handler, registered here when possible).
# Prints what it measured: sizes and times.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# 8,001,232 bytes before issue 12 (push exporters, HA), which allows 2 MB more.
MAX_BINARY=10000000
MAX_IMAGE=10000000
summary=()
note() { summary+=("$*"); log "$*"; }

start=$SECONDS
bash docker/build-release.sh x86_64 --image
note "x86_64 release build + image: $((SECONDS - start)) s"
start=$SECONDS
bash docker/build-release.sh aarch64 --image
note "aarch64 release build + image: $((SECONDS - start)) s"

for arch in x86_64 aarch64; do
    bin="$TARGET_DIR/$(triple_of "$arch")/release/tidemark"
    check_static "$bin"
    size=$(stat -c %s "$bin")
    note "$arch binary: $size bytes; file: $(file -b "$bin"); ldd: $(ldd "$bin" 2>&1 | tr -d '\t' || true)"
    if [ "$arch" = x86_64 ] && [ "$size" -ge $MAX_BINARY ]; then
        die "the x86_64 binary is $size bytes, over the $MAX_BINARY budget"
    fi
    image="tidemark:$VERSION-$(docker_arch_of "$arch")"
    isize=$(docker image inspect -f '{{.Size}}' "$image")
    note "$image: $isize bytes ($(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$image"))"
    [ "$isize" -lt $MAX_IMAGE ] || die "$image is $isize bytes, over the $MAX_IMAGE budget"
done

apt_install qemu-aarch64-static qemu-user-static
arm="$TARGET_DIR/aarch64-unknown-linux-musl/release/tidemark"
version="$(qemu-aarch64-static "$arm" --version)"
[ "$version" = "tidemark $VERSION" ] || die "aarch64 --version under qemu said '$version'"
note "aarch64 under qemu-aarch64-static: $version"

# Can this kernel run arm64 containers? Needs binfmt_misc with qemu's handler registered
# with the F flag (Debian's qemu-user-static does that where binfmt_misc is mounted).
arm64_containers() {
    if [ ! -e /proc/sys/fs/binfmt_misc/register ] && [ "$(id -u)" = 0 ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && [ -e /proc/sys/fs/binfmt_misc/register ]; then
        apt_install update-binfmts binfmt-support
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
        && docker run --rm "tidemark:$VERSION-arm64" --version >/dev/null 2>&1
}

cycle() { # description, then environment assignments for the test
    local what="$1" t=$SECONDS
    shift
    env "$@" cargo test --locked --test release -- --ignored --exact \
        release_artifact_serves_exact_metrics --nocapture
    note "full cycle, exact /metrics: $what ($((SECONDS - t)) s incl. test build)"
}
cycle "x86_64 binary" TIDEMARK_RELEASE_BINARY="$TARGET_DIR/x86_64-unknown-linux-musl/release/tidemark"
cycle "aarch64 binary under qemu-aarch64-static" \
    TIDEMARK_RELEASE_BINARY="$arm" TIDEMARK_RELEASE_RUNNER=qemu-aarch64-static
cycle "image tidemark:$VERSION-amd64" TIDEMARK_RELEASE_IMAGE="tidemark:$VERSION-amd64"
if arm64_containers; then
    cycle "image tidemark:$VERSION-arm64 (emulated)" TIDEMARK_RELEASE_IMAGE="tidemark:$VERSION-arm64"
else
    note "image tidemark:$VERSION-arm64: built, not run (this kernel cannot run arm64 containers: no binfmt_misc handler for qemu-aarch64)"
fi

printf '\nrelease-check summary:\n' >&2
printf '  %s\n' "${summary[@]}" >&2
