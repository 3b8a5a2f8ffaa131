#!/usr/bin/env bash
# The one test command (README "Tests"): every unit, contract and end-to-end test, with the
# DynamoDB, SQS and S3 tests run against moto on 127.0.0.1 (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# moto runs as a Python module, so a fresh pip install needs no shim or PATH change.
if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
    python3 -m pip install --quiet 'moto[server]' \
        || python3 -m pip install --quiet --user --break-system-packages 'moto[server]'
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# scripts/moto-serial.py is moto's server handling one request at a time: moto's DynamoDB
# is not safe under concurrent transactions (the workers write four chunks at once).
python3 scripts/moto-serial.py -H 127.0.0.1 -p "$port" >/tmp/prmsync-moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
# Wait for moto to answer (at most 30 s).
python3 - "$port" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("moto did not start: see /tmp/prmsync-moto.log")
        time.sleep(0.1)
PY
# The console's browser test drives Debian's Chromium through chromedriver.
if ! command -v chromedriver >/dev/null 2>&1 || ! [ -x /usr/bin/chromium ]; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $as_root apt-get install -y -qq chromium chromium-driver >/dev/null \
        || { $as_root apt-get update -qq && $as_root apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi

export PRMSYNC_REQUIRE_BROWSER=1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
# Tests that need AWS fail instead of skipping when the endpoint is missing.
export PRMSYNC_REQUIRE_AWS=1

# Formatting and lints first: a warning fails the run, as a test would.
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings

# The dependency tree's licences, bans and sources against deny.toml (offline checks only;
# advisories need the network). cargo-deny is installed when missing (a clean machine).
if ! cargo deny --version >/dev/null 2>&1; then
    cargo install --locked --quiet cargo-deny@0.20.2
fi
cargo deny --offline check licenses bans sources

# The Lambda binaries as they are deployed (release profile); tests/tests/infra.rs starts
# each one and checks it fails fast, naming what is missing, outside Lambda.
cargo build --release -p full-sync -p sync-worker -p deal-import -p prm-webhook
export PRMSYNC_RELEASE_BINARIES="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"

cargo test --workspace --all-targets --all-features --no-fail-fast
