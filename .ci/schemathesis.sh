#!/usr/bin/env bash
# Property-based contract testing of the running server against
# openapi/openapi.yaml with Schemathesis (pinned in contract/requirements.txt,
# installed into target/contract-venv). Exits non-zero on any failure.
#
# What it does:
#   1. builds the release binary, starts it on a throwaway SQLite database in
#      target/schemathesis/ with a known JWT_SECRET and the rate limiter off
#      (RATE_LIMIT_RPS=0), on a free loopback port; a trap stops it on exit;
#   2. creates the shared user `alice` with `flashback-devices session create`:
#      four devices and sessions that are active, expired and revoked, and
#      a real nextCursor of her security events (contract/run_support.py
#      fixtures);
#   3. runs `st run` over every operation of the spec, every phase (examples, coverage,
#      fuzzing, stateful), positive AND negative data (--mode all), every
#      built-in check (--checks all) plus contract/hooks.py's
#      `authenticated_requests_accepted`, up to $MAX_EXAMPLES cases per
#      operation;
#   4. prints the requests each operation got, by status, and fails when an
#      operation never answered 2xx, or one that takes input (a path id or a
#      body) got fewer than $MIN_CASES requests; then checks that alice's token
#      still works.
#
# How every operation runs authenticated although five of them end sessions
# (untrustDevice, deleteDevice and revokeSession when the id is the token's
# own device or session, revokeAllSessions always, revokeOtherSessions every
# session but the token's): contract/hooks.py's auth provider gives each test
# case of those five a session of its own, for a throwaway user created just
# for that case (`session create --user st-…`), so what a destructive case
# ends is only its own user's sessions. All other operations
# use alice's token, which is never sent to a destructive operation and so
# stays valid for the whole run (checked at the end, and every authenticated
# request answered 401 fails the run). Path ids: for about half the valid
# generated ids the hooks substitute a real id of the caller (alice's devices
# and sessions; for destructive cases the throwaway user's own device or
# session, or a second one of that user), so the 200 paths are exercised as
# well as the 404 ones; trustDevice's fingerprint likewise. listSecurityEvents'
# cursor is signed by the server, so a generated cursor that is valid per the
# spec is always replaced with alice's real one (a made-up one would get the
# documented 400, which positive_data_acceptance rightly calls a rejection of
# valid data). Invalid (negative) values are never replaced.
#
# The platform operations run with a service key (`service-key create`);
# revokeUserSessions and deleteUserData never get alice's userId (the hooks
# give them throwaway users), so her fixtures survive them too.
#
# Exclusions: none; every check is on and no failure is filtered.
# contract/schemathesis.toml keeps the fuzzing phase from drawing path ids
# from earlier responses, which made it stop after ~15 cases per operation
# (reason there).
#
# Knobs (environment): MAX_EXAMPLES (default 300), MIN_CASES (200),
# SCHEMATHESIS_SEED (a fixed default so CI is reproducible; `random` for a new
# one each run), SCHEMATHESIS_WORKERS (1). Reports (JUnit, NDJSON, the counts)
# and the server log are left in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${MAX_EXAMPLES:-300}"
MIN_CASES="${MIN_CASES:-200}"
SCHEMATHESIS_SEED="${SCHEMATHESIS_SEED:-20261125}"
SCHEMATHESIS_WORKERS="${SCHEMATHESIS_WORKERS:-1}"

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=contract/venv.sh
source contract/venv.sh
step "schemathesis (contract/requirements.txt) in target/contract-venv"
contract_venv
PY="$CONTRACT_VENV/bin/python"
"$CONTRACT_VENV/bin/st" --version

step "cargo build --release --locked"
cargo build --release --locked
BINARY="$PWD/target/release/flashback-devices"

RUN_DIR="$PWD/target/schemathesis"
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE_URL="http://127.0.0.1:$PORT"
export JWT_SECRET="ci-secret-0123456789abcdef0123456789abcdef"
export DATABASE_URL="sqlite://$RUN_DIR/db.sqlite"
export RATE_LIMIT_RPS=0
export METRICS_PUBLIC=true
export RUST_LOG="${RUST_LOG:-warn}"
export PYTHONDONTWRITEBYTECODE=1
# Hypothesis' own files (constants and unicode caches) go under target/, not ./.hypothesis.
export HYPOTHESIS_STORAGE_DIRECTORY="$RUN_DIR/hypothesis"

step "server on $BASE_URL (SQLite in target/schemathesis/, rate limiting off)"
"$BINARY" migrate
BIND_ADDR="127.0.0.1:$PORT" "$BINARY" serve >"$RUN_DIR/server.log" 2>&1 &
server_pid=$!
"$PY" contract/run_support.py wait-ready "$BASE_URL" 30

step "fixtures: user alice (devices, active/expired/revoked sessions)"
"$PY" contract/run_support.py fixtures "$BINARY" "$BASE_URL" "$RUN_DIR/fixtures.json"

step "a service key for the platform operations"
CONTRACT_SERVICE_KEY="$("$BINARY" service-key create --name schemathesis 2>/dev/null)"
export CONTRACT_SERVICE_KEY

seed_args=()
if [[ "$SCHEMATHESIS_SEED" != random ]]; then
  seed_args=(--seed "$SCHEMATHESIS_SEED")
fi

step "st run: all operations, --mode all, --checks all, --max-examples $MAX_EXAMPLES"
started=$SECONDS
status=0
CONTRACT_FIXTURES="$RUN_DIR/fixtures.json" \
  CONTRACT_STATS="$RUN_DIR/requests-per-operation.json" \
  SCHEMATHESIS_HOOKS=hooks \
  PYTHONPATH="$PWD/contract${PYTHONPATH:+:$PYTHONPATH}" \
  "$CONTRACT_VENV/bin/st" --config-file contract/schemathesis.toml run openapi/openapi.yaml \
  --url "$BASE_URL" \
  --phases examples,coverage,fuzzing,stateful \
  --mode all \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --workers "$SCHEMATHESIS_WORKERS" \
  "${seed_args[@]}" \
  --generation-database none \
  --request-timeout 10 \
  --report junit,ndjson \
  --report-dir "$RUN_DIR/report" \
  --no-color || status=$?
echo "st run took $((SECONDS - started)) s and exited $status"

step "requests per operation (target/schemathesis/requests-per-operation.json)"
"$PY" contract/run_support.py check-stats openapi/openapi.yaml \
  "$RUN_DIR/requests-per-operation.json" "$MIN_CASES" || status=1
"$PY" contract/run_support.py token-still-valid "$BASE_URL" "$RUN_DIR/fixtures.json" || status=1

stop_server
if ((status != 0)); then
  echo "schemathesis: FAILED (see the output above and target/schemathesis/)" >&2
  exit "$status"
fi
echo "schemathesis: passed"
