#!/usr/bin/env bash
# Webhooks against the official Standard Webhooks verifiers: serves the
# server binary on a throwaway SQLite database with WEBHOOK_URLS pointing at a
# loopback receiver (clients/webhooks/receiver.py, which records each delivery
# byte for byte), makes security events of several types (sign-ins with and
# without trust, an untrust, sign out everywhere), waits until
# `flashback-devices webhook status` says every one was delivered, then has
#   - `standardwebhooks` of PyPI (clients/webhooks/requirements.txt, in
#     target/webhooks-venv) and
#   - `standardwebhooks` of npm (clients/webhooks/package-lock.json, no
#     registry URLs in it, installed with `npm ci`)
# accept every delivery untouched and refuse each with a changed body and
# with a 10-minute-old timestamp (verify.py, verify.mjs).
#
# Exits non-zero on any failure. Every wait is bounded; a trap stops the
# server and the receiver (by pid) on any exit.
#
# Environment (optional): WEBHOOKS_SERVER_BIN (a server binary to use
# instead of `cargo build --release --locked`), WEBHOOKS_KEEP_RUN=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export npm_config_update_notifier=false

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'webhooks.sh: FAILED: %s\n' "$*" >&2; exit 1; }

mkdir -p target/webhooks
RUN=$(mktemp -d "$ROOT/target/webhooks/run.XXXXXX")
SERVER_PID=
RECEIVER_PID=
stop() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop "$SERVER_PID"
  stop "$RECEIVER_PID"
  if ((rc != 0)) && [[ -f $RUN/server.log ]]; then
    echo "--- last lines of $RUN/server.log ---" >&2
    tail -n 30 "$RUN/server.log" >&2 || true
  fi
  if [[ ${WEBHOOKS_KEEP_RUN:-} == 1 || $rc != 0 ]]; then
    echo "webhooks.sh: run folder kept: $RUN" >&2
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "the verifiers: standardwebhooks from PyPI and npm (pinned)"
command -v node >/dev/null && command -v npm >/dev/null || fail "Node.js and npm are required"
if grep -nE '"(resolved|funding)"' clients/webhooks/package-lock.json; then
  fail "clients/webhooks/package-lock.json records download addresses: node clients/strip-lockfile.mjs clients/webhooks/package-lock.json"
fi
(cd clients/webhooks && npm ci --no-audit --no-fund --loglevel=error)
VENV=$ROOT/target/webhooks-venv
if ! cmp -s clients/webhooks/requirements.txt "$VENV/.requirements.txt" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r clients/webhooks/requirements.txt
  cp clients/webhooks/requirements.txt "$VENV/.requirements.txt"
fi
echo "PyPI: $("$VENV/bin/python" -m pip show standardwebhooks | sed -n 's/^Version: /standardwebhooks /p'), npm: standardwebhooks $(node -p 'require("./clients/webhooks/node_modules/standardwebhooks/package.json").version')"

if [[ -n ${WEBHOOKS_SERVER_BIN:-} ]]; then
  BIN=$WEBHOOKS_SERVER_BIN
else
  step "cargo build --release --locked"
  cargo build --release --locked --bin flashback-devices
  BIN=$ROOT/target/release/flashback-devices
fi

step "server with WEBHOOK_URLS pointing at a recording receiver"
export DATABASE_URL="sqlite://$RUN/webhooks.db"
export JWT_SECRET=webhooks-ci-0123456789abcdef0123456789abcdef
WEBHOOK_SECRET=$("$BIN" webhook secret)
RECEIVER_PORT=$(free_port)
SERVER_PORT=$(free_port)
python3 clients/webhooks/receiver.py "$RECEIVER_PORT" "$RUN/deliveries.jsonl" &
RECEIVER_PID=$!
"$BIN" migrate >/dev/null
BIND_ADDR=127.0.0.1:$SERVER_PORT RATE_LIMIT_RPS=0 RUST_LOG=warn \
  WEBHOOK_URLS="http://127.0.0.1:$RECEIVER_PORT/hook" WEBHOOK_SECRET="$WEBHOOK_SECRET" \
  "$BIN" serve >"$RUN/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$SERVER_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$SERVER_PORT/readyz" >/dev/null || fail "the server is not ready"

step "security events of several types"
json() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
laptop=$("$BIN" session create --user alice --device-name Laptop --fingerprint fp-laptop)
phone=$("$BIN" session create --user alice --device-name Phone --fingerprint fp-phone --trusted)
"$BIN" session create --user bob --device-name Tablet --device-type TABLET >/dev/null
token=$(json token <<<"$laptop")
curl -fsS -X POST -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$SERVER_PORT/devices/$(json deviceId <<<"$phone")/untrust" >/dev/null
curl -fsS -X POST -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$SERVER_PORT/sessions/revoke-all" >/dev/null
EVENTS=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM security_events").fetchone()[0])' "$RUN/webhooks.db")
echo "$EVENTS events recorded"

step "every event delivered (webhook status)"
for _ in $(seq 1 300); do
  status=$("$BIN" webhook status)
  grep -qx "pending: 0" <<<"$status" && grep -qx "delivered: $EVENTS" <<<"$status" && break
  sleep 0.1
done
echo "$status"
grep -qx "delivered: $EVENTS" <<<"$status" || fail "not every event was delivered"
[[ $(wc -l <"$RUN/deliveries.jsonl") -ge $EVENTS ]] || fail "the receiver recorded fewer deliveries than events"

step "standardwebhooks (PyPI) verifies them"
"$VENV/bin/python" clients/webhooks/verify.py "$RUN/deliveries.jsonl" "$WEBHOOK_SECRET"

step "standardwebhooks (npm) verifies them"
(cd clients/webhooks && node verify.mjs "$RUN/deliveries.jsonl" "$WEBHOOK_SECRET")
