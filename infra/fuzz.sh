#!/usr/bin/env bash
# Fuzzes every provider's verify + normalize for a fixed time each.
# Usage: infra/fuzz.sh [seconds-per-target] [provider...]
#
# Seeds each target's corpus with the provider's samples from events/. A crash leaves its input
# in fuzz/artifacts/<provider>/; turn it into a regression test (a case in
# functions/core/tests/no_panic.rs or a sample in events/) before fixing it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
providers=("$@")
if [ ${#providers[@]} -eq 0 ]; then
  # One target per provider (tests/tests/registry.rs checks every provider has one).
  for target in fuzz_targets/*.rs; do
    name=$(basename "$target" .rs)
    [ "$name" = common ] || providers+=("$name")
  done
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z sanitizer flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

for provider in "${providers[@]}"; do
  corpus="corpus/$provider"
  mkdir -p "$corpus"
  for sample in ../events/"$provider"/*.json ../events/"$provider"/*.form; do
    [ -f "$sample" ] && cp "$sample" "$corpus/"
  done
  echo "==> fuzzing $provider for ${seconds}s"
  cargo fuzz run "$provider" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
