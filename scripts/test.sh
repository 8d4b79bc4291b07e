#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite.
# Usage: ./scripts/test.sh
#
# It installs what the tests need by itself, so it works on a fresh machine with only the Rust
# toolchain. (Later stages add moto, the AWS emulator, here.)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

# One closing line for the whole run: cargo prints a result per test binary, and the last
# ones belong to crates without tests.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
