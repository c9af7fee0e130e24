#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine: Xen's public C
# headers (layout and ring.h differential tests), a C compiler, and cargo-fuzz.
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=()
[ -f /usr/include/xen/io/ring.h ] || pkgs+=(libxen-dev)
command -v cc >/dev/null || pkgs+=(build-essential)
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-deps: cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
