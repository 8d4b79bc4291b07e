#!/usr/bin/env bash
# The fault soak: tests/tests/faults.rs with many generated events, against moto through the
# fault proxy. Not part of CI (CI runs the same test with 50 generated events).
# Usage: infra/soak.sh [events] [fault-rate]     (defaults: 10000 events, 0.1)
# Needs target/moto-venv, which ./scripts/test.sh creates. moto runs through infra/soak_moto.py,
# which makes its Query read one partition as DynamoDB does (moto's own reads the whole table, so
# a long soak slowed with every event stored). About 0.2 s per event on 2 cores (10,211 events: 33 min); the figures line
# it prints goes in RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000}
rate=${2:-0.1}
[[ -x target/moto-venv/bin/moto_server ]] || { echo "run ./scripts/test.sh once first (it installs moto)" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/moto-venv/bin/python infra/soak_moto.py -H 127.0.0.1 -p "$port" > target/soak-moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/moto-api/', timeout=1)" 2>/dev/null && break
  sleep 0.1
done
TIDINGS_MOTO_ENDPOINT="http://127.0.0.1:${port}" TIDINGS_SOAK_EVENTS="$events" TIDINGS_FAULT_RATE="$rate" \
  cargo test --locked -p tidings-tests --test faults -- --nocapture 2>&1 | grep -E '^faults:|test result|panicked' 
