#!/usr/bin/env bash
# django-anymail's tracking-webhook parsing throughput on the payloads of the Rust `normalize`
# benchmark (infra/bench/anymail_parse.py says what is measured and how), for BENCHMARKS.md.
# Makes the virtualenv target/anymail-venv with the pinned packages below on first use (and
# again when the pins change), then runs the benchmark with the arguments given.
# Usage: infra/bench/anymail.sh [--sendgrid-events N] [--min-time S] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/../.."

# Django 5.2 is the current LTS and runs on the machine's python3 (3.11); Django 6 needs 3.12+.
# boto3: anymail's Amazon SES webhook view will not start without it.
requirements=(django==5.2.19 django-anymail==15.2 boto3==1.44.5)
python=${PYTHON:-python3}
venv=target/anymail-venv
stamp="$venv/.requirements"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" > "$stamp"
fi

exec "$venv/bin/python" infra/bench/anymail_parse.py "$@"
