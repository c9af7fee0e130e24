#!/usr/bin/env bash
# The whole test suite: every quality gate, in the order a failure is cheapest
# to find. FUZZ_SECONDS (default 20) sets each fuzz target's run time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==== %s\n' "$*"; }

step "prerequisites"
"$root/scripts/install-deps.sh"

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path examples/nostd-link/Cargo.toml --check
cargo fmt --manifest-path examples/freestanding/Cargo.toml --check
cargo fmt --manifest-path examples/pvh-guest/Cargo.toml --check
cargo fmt --manifest-path scripts/xen-testbed/dom0-peer/Cargo.toml --check
cargo fmt --manifest-path fuzz/Cargo.toml --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path examples/nostd-link/Cargo.toml --release -- -D warnings
cargo clippy --manifest-path examples/freestanding/Cargo.toml --all-features -- -D warnings
cargo clippy --manifest-path examples/pvh-guest/Cargo.toml --release -- -D warnings
cargo clippy --manifest-path scripts/xen-testbed/dom0-peer/Cargo.toml --release --all-targets -- -D warnings
RUSTC_BOOTSTRAP=1 cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace
cargo test --manifest-path scripts/xen-testbed/dom0-peer/Cargo.toml
# The hypercall register contract only shows under optimisation.
cargo test --release -p xenpv-sys --test hypercall

step "loom models (every interleaving up to a preemption bound; see the README's test list)"
# Its own target directory: --cfg loom rebuilds everything it touches.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/loom" \
    cargo test --release \
    -p xenpv-ring --test loom_ring --test loom_ring_weakened \
    -p xenpv-shmem --test loom_spinlock \
    -p xenpv-platform --test loom_pool \
    -p xenpv-grant --test loom_table \
    -p xenpv-evtchn --test loom_wakers

step "B1 smoke run (a missed notification deadlocks it; unequal notify counts fail it)"
cargo run --release -p xenpv-bench --bin b1-ring -- --quick

step "B4 smoke run (netfront -> netback -> netfront on the mock, every byte checked)"
cargo run --release -p xenpv-bench --bin b4-net -- --quick

step "B5 smoke run (blkfront -> blkback on the mock, every byte checked)"
cargo run --release -p xenpv-bench --bin b5-blk -- --quick

step "examples: net-echo (1 MiB over TCP through netfront/netback) and blk-fat (FAT through blkfront/blkback), each failing on a wrong byte"
cargo run --release -p xenpv-net-echo
cargo run --release -p xenpv-blk-fat

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "no_std link check (panic=abort, no libc)"
cargo build --release --manifest-path examples/nostd-link/Cargo.toml
bin=examples/nostd-link/target/release/xenpv-nostd-link
undefined=$(nm -u "$bin")
if [ -n "$undefined" ]; then
    echo "no_std link check: undefined symbols (something wants libc):"
    echo "$undefined"
    exit 1
fi
"$bin"
echo "no_std binary: $(stat -c %s "$bin") bytes, statically linked, no undefined symbols, ran OK"

step "real Xen: Xen 4.17 + Linux dom0 under QEMU (TCG, no KVM needed), our PVH guest"
"$root/scripts/xen-testbed/run.sh"

step "fuzz (${FUZZ_SECONDS:-20} s per target)"
"$root/fuzz/run-all.sh" "${FUZZ_SECONDS:-20}"

step "all gates passed"
