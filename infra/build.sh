#!/usr/bin/env bash
# Cross-builds every Lambda function for arm64 (Graviton) with cargo-lambda, as zips ready for
# `cargo lambda deploy` or upload, and prints each zip's size.
# Usage: infra/build.sh            (cargo-lambda from PATH, or from target/deploy-venv)
# The test command runs it, so every push proves the functions build for Lambda's arm64.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/target/deploy-venv/bin:$PATH"
command -v cargo-lambda >/dev/null || {
  echo "cargo-lambda not found: pip install cargo-lambda (or run ./scripts/test.sh once)" >&2
  exit 1
}
# cargo-lambda adds the aarch64 target with rustup if it is missing and links with its zig.
cargo lambda build --release --arm64 --locked --output-format zip \
  -p tidings-ingest -p tidings-processor -p tidings-fanout -p tidings-api
# Every function the template declares must have its zip.
missing=0
for binary in $(sed -n 's/^ *Binary: *//p' template.yaml | sort -u); do
  zip="target/lambda/$binary/bootstrap.zip"
  if [ -f "$zip" ]; then
    printf '%-12s %8d bytes\n' "$binary" "$(stat -c %s "$zip")"
  else
    echo "missing $zip" >&2
    missing=1
  fi
done
exit "$missing"
