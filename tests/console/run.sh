#!/usr/bin/env bash
# The console's browser test: headless Chromium (Debian's package) driven by playwright-core,
# against `tidings dev`. Installs what it needs when it is missing: Chromium with apt-get (as
# root, or through sudo), playwright-core with npm (pinned by package-lock.json). Screenshots of
# every page go to target/console-screenshots/.
# Usage: tests/console/run.sh   (scripts/test.sh runs it after the Rust tests; about a minute)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x /usr/bin/chromium ]]; then
  echo "installing Debian's chromium"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium > target/apt-chromium.log 2>&1 \
    || { cat target/apt-chromium.log; echo "could not install chromium" >&2; exit 1; }
fi
if [[ ! -d tests/console/node_modules/playwright-core ]]; then
  (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
fi
# scripts/test.sh passes the binary its `cargo test` built (same features, no second build).
if [[ -z ${TIDINGS_BIN:-} ]]; then
  cargo build --locked -p tidings-cli --bin tidings
  export TIDINGS_BIN="$PWD/target/debug/tidings"
fi
rm -rf target/console-screenshots
node tests/console/console.test.mjs
