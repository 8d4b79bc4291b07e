#!/usr/bin/env bash
# Normalization throughput, tidings and django-anymail side by side in one run, on the same
# payloads: the criterion bench (verify + normalize + serialize, and the serde_json `Value`
# floor), then anymail's webhook parsing (infra/bench/anymail.sh, its own virtualenv).
# Results and how to read them: BENCHMARKS.md. Run on an otherwise idle machine.
# Usage: infra/bench/normalize.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> tidings: cargo bench -p tidings-core --bench normalize"
cargo bench -p tidings-core --bench normalize 2>&1 | grep -E '^[a-z]|^ +(time|thrpt):' || true
echo
echo "==> django-anymail"
infra/bench/anymail.sh
