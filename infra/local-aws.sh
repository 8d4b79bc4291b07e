#!/usr/bin/env bash
# The Lambda functions on a laptop, against moto (an AWS emulator on loopback), no AWS account:
# starts moto, then `tidings local-aws` makes the table, the queues and one source per provider
# under the ids events/lambda/ names, and writes the functions' environment to
# target/local-aws.env. moto comes from PyPI into target/moto-venv (as ./scripts/test.sh does).
#
# Usage: infra/local-aws.sh [PORT]     start (default port 5555); prints what to run next
#        infra/local-aws.sh stop       stop the moto it started
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
pid_file=target/local-aws.pid
if [[ ${1:-} == stop ]]; then
  if [[ -f $pid_file ]]; then kill "$(cat "$pid_file")" 2>/dev/null || true; rm -f "$pid_file"; fi
  exit 0
fi
port=${1:-5555}
endpoint="http://127.0.0.1:${port}"
mkdir -p target
venv=target/moto-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '${MOTO_VERSION}')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
fi
ready() { python3 -c "import urllib.request; urllib.request.urlopen('${endpoint}/moto-api/', timeout=1)" 2>/dev/null; }
if ! ready; then
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/local-aws-moto.log 2>&1 &
  echo $! > "$pid_file"
  for _ in $(seq 1 100); do
    ready && break
    kill -0 "$(cat "$pid_file")" 2>/dev/null || { cat target/local-aws-moto.log; echo "moto did not start" >&2; exit 1; }
    sleep 0.1
  done
fi
# TIDINGS_BIN: a built `tidings` to use instead of `cargo run` (the test passes its own).
if [[ -n ${TIDINGS_BIN:-} ]]; then
  "$TIDINGS_BIN" local-aws --endpoint "$endpoint" --env-file target/local-aws.env
else
  cargo run --quiet --locked -p tidings-cli -- local-aws --endpoint "$endpoint" --env-file target/local-aws.env
fi
cat <<NEXT
moto is on ${endpoint} (infra/local-aws.sh stop ends it). Next:
  cargo lambda watch --env-file target/local-aws.env
and, in another terminal:
  cargo lambda invoke ingest --data-file events/lambda/http/postmark-bounce-hard.json
  cargo lambda invoke ses-queue --data-file events/lambda/ses-queue/bounce-permanent.json
  cargo lambda invoke processor --data-file events/lambda/processor/postmark-bounce-hard.json
NEXT
