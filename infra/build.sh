#!/usr/bin/env bash
# Cross-builds every Lambda function for arm64 (Graviton) with cargo-lambda, as zips ready for
# `cargo lambda deploy` or upload, and prints each zip's size.
# Usage: infra/build.sh            the deployable build: the release profile (fat LTO, one
#                                  codegen unit), cargo-lambda from PATH or target/deploy-venv
#        infra/build.sh --check    the same code with the `lambda-check` profile (unoptimised):
#                                  what the test command runs on every push to prove each
#                                  function compiles, links and packages for Lambda's arm64 in
#                                  a fraction of the time; its zips are not the ones to deploy
set -euo pipefail
profile=(--release)
if [ "${1:-}" = "--check" ]; then
  profile=(--profile lambda-check)
fi
cd "$(dirname "$0")/.."
export PATH="$PWD/target/deploy-venv/bin:$PATH"
command -v cargo-lambda >/dev/null || {
  echo "cargo-lambda not found: pip install cargo-lambda (or run ./scripts/test.sh once)" >&2
  exit 1
}
# Zips of an earlier build must not pass for this one's.
rm -f target/lambda/*/bootstrap.zip
# cargo-lambda adds the aarch64 target with rustup if it is missing and links with its zig.
cargo lambda build "${profile[@]}" --arm64 --locked --output-format zip \
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
