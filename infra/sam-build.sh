#!/usr/bin/env bash
# `sam build` of template.yaml with SAM's cargo-lambda builder (no Docker): the step before
# `sam deploy --guided`. Needs aws-sam-cli and cargo-lambda on PATH (pip install aws-sam-cli
# cargo-lambda), or target/deploy-venv from ./scripts/test.sh.
# Usage: infra/sam-build.sh        (writes .aws-sam/build and .aws-sam/build/template.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/target/deploy-venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
sam validate --lint --region "${AWS_REGION:-us-east-1}"
# Rust builds through cargo-lambda are a SAM beta feature (samconfig.toml turns it on too).
time sam build --beta-features
for dir in .aws-sam/build/*/; do
  [ -f "$dir/bootstrap" ] && printf '%-22s %8d bytes\n' "$(basename "$dir")" "$(stat -c %s "$dir/bootstrap")"
done
