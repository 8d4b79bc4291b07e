#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite.
# Usage: ./scripts/test.sh
#
# It installs what the tests need by itself, so it works on a fresh Debian machine with only the
# Rust toolchain, Python 3 and Node.js: moto (the AWS emulator the DynamoDB and SQS adapters are
# tested on) and the official Standard Webhooks verifier go into target/moto-venv, and moto runs
# on a free loopback port for the length of the run; the interop suite's libraries (CloudEvents,
# Standard Webhooks, svix, Twilio, jsonschema, and Schemathesis for the admin API) go into
# target/interop-venv and tests/interop/node_modules; Debian's chromium (apt-get) and
# playwright-core (npm, pinned by tests/console/package-lock.json) drive the console's browser
# test.
set -euo pipefail
cd "$(dirname "$0")/.."

# One clean build, not an edit loop: incremental caches would only add gigabytes to target/.
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*"; }

# venv DIR REQUIREMENT...: a Python environment in DIR holding exactly these pinned packages
# (`name==version`, extras allowed), made or remade only when one is missing or differs.
venv() {
  local dir=$1; shift
  local wanted=() spec name
  for spec in "$@"; do
    name=${spec%%==*}
    wanted+=("${name%%\[*}==${spec##*==}")
  done
  if ! "$dir/bin/python" - "${wanted[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name.split("==")[0]) != name.split("==")[1] for name in sys.argv[1:]))
PY
  then
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

MOTO_VERSION=5.2.5
STANDARDWEBHOOKS_VERSION=1.1.0
venv=target/moto-venv
step "moto ${MOTO_VERSION}, standardwebhooks ${STANDARDWEBHOOKS_VERSION}"
venv "$venv" "moto[server]==${MOTO_VERSION}" "standardwebhooks==${STANDARDWEBHOOKS_VERSION}"
# The deployment tools, in their own environment (their pins clash with moto's): the SAM CLI
# (validate, and its translator for infra/transform.py) and cargo-lambda with zig (infra/build.sh).
SAM_VERSION=1.170.0
CARGO_LAMBDA_VERSION=1.9.2
deploy_venv=target/deploy-venv
step "aws-sam-cli ${SAM_VERSION}, cargo-lambda ${CARGO_LAMBDA_VERSION}"
venv "$deploy_venv" "aws-sam-cli==${SAM_VERSION}" "cargo-lambda==${CARGO_LAMBDA_VERSION}"
export SAM_CLI_TELEMETRY=0
# The interop suite (functions/cli/tests/interop.rs): the other side's own libraries, pinned in
# tests/interop/requirements.txt (Python) and tests/interop/package-lock.json (JavaScript).
interop_venv=target/interop-venv
step "interop suite: Python and JavaScript libraries pinned in tests/interop"
mapfile -t interop_requirements < <(grep -v '^#' tests/interop/requirements.txt)
venv "$interop_venv" "${interop_requirements[@]}"
export TIDINGS_INTEROP_PYTHON="$PWD/$interop_venv/bin/python"
if ! (cd tests/interop && npm ls --depth=0 >/dev/null 2>&1); then
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

# The official Standard Webhooks verifier checks tidings' signatures (functions/core/tests).
export TIDINGS_PYTHON="$PWD/$venv/bin/python"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The recorder (off until a test starts it) writes under target/, not into the checkout.
MOTO_RECORDER_FILEPATH="$PWD/target/moto-recording.jsonl" "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
log=$(mktemp)
trap 'kill "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$moto_pid" 2>/dev/null || { cat target/moto.log; echo "moto did not start" >&2; exit 1; }
  sleep 0.1
done
export TIDINGS_MOTO_ENDPOINT="http://127.0.0.1:${port}"

step "template.yaml: cfn-lint, sam validate --lint, SAM translation"
"$venv/bin/cfn-lint" template.yaml
"$deploy_venv/bin/sam" validate --lint --region us-east-1
# What SAM would deploy; the Lambda-level test runs the functions with its environments and
# checks every AWS call they make against its IAM policies.
"$deploy_venv/bin/python" infra/transform.py template.yaml target/template.transformed.json
export TIDINGS_TRANSFORMED_TEMPLATE="$PWD/target/template.transformed.json"

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "layers: the libraries tidings dev is built from link no AWS SDK"
# The Lambda binaries and their AWS wiring sit behind each crate's `lambda` feature.
for crate in tidings-core tidings-local tidings-ingest tidings-fanout tidings-api; do
  if cargo tree --locked -p "$crate" --no-default-features -e normal --prefix none | grep -E '^(aws-|tidings-aws )'; then
    echo "$crate links the AWS SDK (above) without its lambda feature" >&2
    exit 1
  fi
done

step "tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"

# One closing line for the whole run: cargo prints a result per test binary, and the last
# ones belong to crates without tests.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"

step "console in a real browser (headless Chromium, playwright-core)"
# The `tidings` binary the CLI tests just ran; Chromium and playwright-core are installed on
# first use. Screenshots of every page land in target/console-screenshots/.
TIDINGS_BIN="$PWD/target/debug/tidings" tests/console/run.sh

step "arm64 Lambda build (cargo-lambda, the lambda-check profile)"
echo "target/ holds $(du -sh target | cut -f1) before it; $(df -h . | awk 'NR == 2 { print $4 }') free"
infra/build.sh --check
