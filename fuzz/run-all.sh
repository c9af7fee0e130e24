#!/usr/bin/env bash
# Builds every fuzz target, runs each for N seconds (default 20) starting from
# its committed seeds (fuzz/seeds/<target>), prints a summary of executions per
# target, and exits non-zero if any target crashed, hung or failed to build.
#
# Usage: fuzz/run-all.sh [SECONDS]        (from any directory)
#
# Uses the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags
# for the sanitizer); never nightly. Needs `cargo install --locked cargo-fuzz`.
# Crash inputs are left in fuzz/artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# New corpus entries go to a temporary directory that is removed afterwards.
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS]   (a positive whole number, default 20)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export RUSTC_BOOTSTRAP=1
# The machine's default (stable) toolchain; RUSTC_BOOTSTRAP unlocks the -Z flags.
cargo=(cargo)

if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
    exit 2
fi

mapfile -t targets < <("${cargo[@]}" fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 2
fi

# Targets built without `-sanitizer-coverage-trace-compares` and run with a
# lighter AddressSanitizer configuration. grant_evtchn_mock's input is a
# structured operation list checked against a model, not bytes compared with
# magic values, so comparison tracing buys it little and costs it most of its
# run time (every enum match in the driver crates and the mock is a traced
# compare). Measured on a 2-core machine, 20 s from the seeds, same run:
# default ~1,100-1,650 execs/s and 5,979-6,005 edges; this configuration
# ~2,550-3,150 execs/s and 6,065-6,288 edges. ASan still checks every heap
# access; it keeps a 1 MiB quarantine instead of 256 MiB (use-after-free of
# recent frees is still caught), records no allocation stacks (reproduce a
# crash with plain `cargo fuzz run` for them) and does not put locals on a
# fake stack (returning a reference to a local does not compile in Rust).
light=(grant_evtchn_mock)
light_asan="detect_stack_use_after_return=0:malloc_context_size=0:quarantine_size_mb=1"
light_dir=fuzz/target/no-trace-compares
is_light() {
    local l
    for l in "${light[@]}"; do [ "$l" = "$1" ] && return 0; done
    return 1
}

echo "== building ${#targets[@]} targets"
"${cargo[@]}" fuzz build
for t in "${light[@]}"; do
    "${cargo[@]}" fuzz build --no-trace-compares --target-dir "$light_dir" "$t"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=0
declare -A execs status
for t in "${targets[@]}"; do
    seeds="fuzz/seeds/$t"
    if [ ! -d "$seeds" ]; then
        echo "missing seed corpus $seeds" >&2
        exit 2
    fi
    mkdir -p "$work/corpus/$t"
    log="$work/$t.log"
    echo "== $t: ${secs}s"
    rc=0
    # -timeout: a single input running 10 s is a hang (every input is bounded).
    build=()
    asan="${ASAN_OPTIONS:-}"
    if is_light "$t"; then
        build=(--no-trace-compares --target-dir "$light_dir")
        asan="${asan:+$asan:}$light_asan"
    fi
    ASAN_OPTIONS="$asan" "${cargo[@]}" fuzz run "${build[@]}" "$t" "$work/corpus/$t" "$seeds" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    n="$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)"
    if [ -z "$n" ]; then
        n="$(sed -n -e 's/^Done \([0-9][0-9]*\) runs.*/\1/p' -e 's/^#\([0-9][0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n1)"
    fi
    execs[$t]="${n:-?}"
    if [ "$rc" -eq 0 ]; then
        status[$t]=ok
    else
        status[$t]="FAILED (exit $rc)"
        failed=1
        echo "---- $t: last lines of the log"
        tail -n 60 "$log"
        grep -h 'Test unit written to\|artifact_prefix' "$log" || true
    fi
done

echo
printf '%-28s %14s  %s\n' target execs status
for t in "${targets[@]}"; do
    printf '%-28s %14s  %s\n' "$t" "${execs[$t]}" "${status[$t]}"
done
if [ "$failed" -ne 0 ]; then
    echo "fuzzing FAILED" >&2
fi
exit "$failed"
