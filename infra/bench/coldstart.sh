#!/usr/bin/env bash
# Cold start and peak memory of every Lambda function binary (tests/examples/coldstart.rs):
# builds the functions and a hello-world lambda_runtime binary with the release profile,
# starts moto (from ./scripts/test.sh's target/moto-venv) for the AWS calls, and prints a
# Markdown table for BENCHMARKS.md.
# Usage: infra/bench/coldstart.sh [pairs] [invocations]     (defaults 21 and 1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/moto-venv
[ -x "$venv/bin/moto_server" ] || { echo "run ./scripts/test.sh once first (it installs moto)" >&2; exit 1; }
cargo build --release --locked --bins -p tidings-ingest -p tidings-processor -p tidings-fanout -p tidings-api
cargo build --release --locked -p tidings-tests --example hello_lambda --example coldstart
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/moto-bench.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/moto-api/', timeout=1)" 2>/dev/null; do
  kill -0 "$moto_pid" 2>/dev/null || { cat target/moto-bench.log; exit 1; }
  sleep 0.1
done
uname -m; nproc
TIDINGS_MOTO_ENDPOINT="http://127.0.0.1:${port}" target/release/examples/coldstart "$@"
