#!/usr/bin/env bash
# Every fuzz target, briefly: CI's check that the targets still build and run, and that none
# crashes within a few seconds from its seeds. Not a fuzzing campaign (fuzz/README.md, "Run").
#
#   bash fuzz/brief.sh                  # every target, 20 s each
#   FUZZ_SECONDS=60 bash fuzz/brief.sh  # longer
#   bash fuzz/brief.sh fetch records    # only these targets
#
# Needs no nightly toolchain: cargo-fuzz's nightly-only flags (`-Zsanitizer=address` and
# friends) are accepted by the stable toolchain with RUSTC_BOOTSTRAP=1, and stable ships the
# ASan runtime. Set
# FUZZ_TOOLCHAIN=nightly to use `cargo +nightly` instead. cargo-fuzz is installed
# (`cargo install cargo-fuzz --locked`) when it is missing.
#
# New corpus entries and libFuzzer's output go to a temporary directory (kept, and named,
# when a target fails), never into the repository; a crash input is also saved under
# fuzz/artifacts/<target>/ (git-ignored). Exits non-zero naming every target that failed.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
seconds="${FUZZ_SECONDS:-20}"
case "$seconds" in '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2 ;; esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # Every [[bin]] of fuzz/Cargo.toml, in its order.
    mapfile -t targets < <(awk -F'"' '/^\[/ { section = $0 } section == "[[bin]]" && /^name = / { print $2 }' "$fuzz_dir/Cargo.toml")
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found in $fuzz_dir/Cargo.toml" >&2; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    fuzz() { cargo "+$FUZZ_TOOLCHAIN" fuzz "$@"; }
else
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tidemark-fuzz.XXXXXX")"
# libFuzzer writes stray files (fuzz-N.log with -jobs, crash-* without an artifact prefix)
# into the current directory: make that the temporary one.
cd "$work"

start=$(date +%s)
echo "== building ${#targets[@]} fuzz targets ($(cargo fuzz --version))"
fuzz build --fuzz-dir "$fuzz_dir"
built=$(date +%s)
echo "== built in $((built - start)) s; running each for ${seconds} s from fuzz/seeds/<target>"

failed=()
for t in "${targets[@]}"; do
    len=16384; [ "$t" = records ] && len=65536
    timeout=1200; [ "$t" = sasl_exchange ] && timeout=10 # see fuzz_targets/sasl_exchange.rs
    corpus="$work/corpus/$t"
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$t"
    log="$work/$t.log"
    # Seeds when the target has them (membership has none yet: it starts from nothing).
    seeds=()
    [ -d "$fuzz_dir/seeds/$t" ] && seeds=("$fuzz_dir/seeds/$t")
    if fuzz run --fuzz-dir "$fuzz_dir" "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -max_len="$len" -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "ok   $t: ${runs:-?} executions"
    else
        echo "FAIL $t (log: $log; crash inputs under $fuzz_dir/artifacts/$t/)"
        tail -n 40 "$log" | sed 's/^/    /'
        failed+=("$t")
    fi
done
end=$(date +%s)
echo "== fuzz brief: build $((built - start)) s, runs $((end - built)) s, total $((end - start)) s"

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (output kept in $work)" >&2
    exit 1
fi
rm -rf "$work"
