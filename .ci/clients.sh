#!/usr/bin/env bash
# Contract tests from the outside: clients generated from openapi/openapi.yaml
# (TypeScript with openapi-typescript + openapi-fetch, Python with
# openapi-python-client) and Swagger UI in Debian's Chromium, each driving a
# real server that this script starts on a loopback port and stops on exit.
#
# Fails on the first error, and when a generator prints a warning about the
# spec. Installs what a fresh machine lacks (npm packages from the lockfiles,
# a Python venv under target/, Debian's chromium). Everything it makes goes to
# target/ or to gitignored folders under clients/.
#
# Environment (all optional):
#   CLIENTS_CARGO_PROFILE  cargo profile of the server binary: release (the
#                          default; .ci/run has just built it) or dev (shares
#                          the build `cargo test` makes)
#   CLIENTS_SERVER_BIN     use this server binary instead of building one
#   CLIENTS_KEEP_RUN=1     keep target/clients/run.*/ (database, server log)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STARTED=$SECONDS
export npm_config_update_notifier=false

step() { printf '\n==> %s [%ss]\n' "$*" "$((SECONDS - STARTED))"; }
fail() { printf 'clients.sh: %s\n' "$*" >&2; exit 1; }

WORK=$ROOT/target/clients
mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
SERVER_PID=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f $RUN/server.log ]]; then
    echo "--- last lines of the server log ($RUN/server.log) ---" >&2
    tail -n 40 "$RUN/server.log" >&2 || true
  fi
  if [[ ${CLIENTS_KEEP_RUN:-} == 1 || $rc != 0 ]]; then
    echo "clients.sh: run folder kept: $RUN" >&2
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a generator, shows its output, and fails when it exits non-zero or says
# anything that sounds like a complaint about the spec.
generate() {
  local name=$1 log=$RUN/$1.log
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    fail "$name failed"
  fi
  sed 's/^/    /' "$log"
  if grep -Eiq 'warn|deprecat|unsupported|not supported|skipp|ignor|could not|unable|invalid|error' "$log"; then
    fail "$name printed a warning or error about openapi/openapi.yaml (see above)"
  fi
}

# The value of KEY in the JSON object in FILE.
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

step "tools"
command -v node >/dev/null || fail "node (v20 or later) is required"
command -v npm >/dev/null || fail "npm is required"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || fail "node v20 or later is required (found $(node --version))"
PYTHON=$(command -v python3.11 || true)
[[ -n $PYTHON ]] || fail "python3.11 is required"
if [[ ! -x /usr/bin/chromium ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "node $(node --version), npm $(npm --version), $("$PYTHON" --version), $(/usr/bin/chromium --version 2>/dev/null)"

step "committed client files name no host and pin every npm package"
# Files under clients/ and .ci/ that git would commit (tracked or not ignored).
mapfile -t committed < <(git ls-files --cached --others --exclude-standard -- clients .ci)
((${#committed[@]})) || fail "no files under clients/"
if hosts=$(grep -HnoE '[a-zA-Z][a-zA-Z0-9+.-]*://[^/[:space:]"<>)]+' "${committed[@]}" \
  | grep -vE '(sqlite|file)://|://([^@/]*@)?(127[^0-9]|localhost|\[::1\]|\$)'); then
  echo "$hosts"
  fail "the files above name a host (only loopback addresses, shell variables and file paths may appear)"
fi
for lock in clients/*/package-lock.json; do
  if grep -nE '"(resolved|funding)"' "$lock"; then
    fail "$lock records download or funding addresses: run node clients/strip-lockfile.mjs $lock"
  fi
done
echo "${#committed[@]} files checked"

if [[ -n ${CLIENTS_SERVER_BIN:-} ]]; then
  step "server binary: $CLIENTS_SERVER_BIN (CLIENTS_SERVER_BIN, not built here)"
  BIN=$(realpath "$CLIENTS_SERVER_BIN")
  [[ -x $BIN ]] || fail "CLIENTS_SERVER_BIN=$CLIENTS_SERVER_BIN is not an executable"
else
  step "server binary (cargo build --locked, profile ${CLIENTS_CARGO_PROFILE:-release})"
  case ${CLIENTS_CARGO_PROFILE:-release} in
    dev) cargo build --locked --bin flashback-devices; BIN=$ROOT/target/debug/flashback-devices ;;
    release) cargo build --release --locked --bin flashback-devices; BIN=$ROOT/target/release/flashback-devices ;;
    *) fail "CLIENTS_CARGO_PROFILE must be dev or release" ;;
  esac
fi

step "fresh database, tokens, server on a loopback port"
export JWT_SECRET=ci-clients-secret-0123456789abcdef0123456789abcdef
export DATABASE_URL=sqlite://$RUN/db.sqlite
export RATE_LIMIT_RPS=0
"$BIN" migrate
# One user per client, each with a laptop (whose token the client uses) and a
# trusted phone with its own session (the device the client untrusts).
for who in ts py browser; do
  "$BIN" session create --user "user-$who" --device-name "Laptop" --fingerprint "fp-$who-laptop" \
    --device-type DESKTOP --os Linux --browser Firefox --ip 127.0.0.1 --location "Lisbon, Portugal" \
    >"$RUN/$who-laptop.json"
  "$BIN" session create --user "user-$who" --device-name "Phone" --fingerprint "fp-$who-phone" \
    --device-type MOBILE --os Android --browser Chrome --ip 127.0.0.2 --trusted \
    >"$RUN/$who-phone.json"
done
# The key the sign-in round trips call createSession with.
SERVICE_KEY=$("$BIN" service-key create --name clients 2>/dev/null)
export SERVICE_KEY
BIND_ADDR=127.0.0.1:0 WORKERS=2 RUST_LOG=info "$BIN" serve >"$RUN/server.log" 2>&1 &
SERVER_PID=$!
BASE_URL=
for _ in $(seq 1 300); do
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at start-up"
  BASE_URL=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$RUN/server.log" | head -n1 | sed 's/^listening on //' || true)
  if [[ -n $BASE_URL ]] && [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/readyz") == 200 ]]; then
    break
  fi
  sleep 0.1
done
[[ -n $BASE_URL ]] || fail "the server did not say where it listens"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/readyz") == 200 ]] || fail "$BASE_URL/readyz is not 200"
echo "server $BASE_URL (pid $SERVER_PID) is ready"
export API_BASE_URL=$BASE_URL

client_env() { # WHO -> the environment of that client's round trip
  API_TOKEN=$(field "$RUN/$1-laptop.json" token)
  OWN_DEVICE_ID=$(field "$RUN/$1-laptop.json" deviceId)
  TARGET_TOKEN=$(field "$RUN/$1-phone.json" token)
  export API_TOKEN OWN_DEVICE_ID TARGET_TOKEN
}

step "TypeScript: npm ci, openapi-typescript, tsc --noEmit (strict), round trip with openapi-fetch"
(
  cd clients/typescript
  npm ci --no-audit --no-fund --loglevel=error
  rm -rf src/generated
  generate openapi-typescript node_modules/.bin/openapi-typescript ../../openapi/openapi.yaml \
    --output src/generated/api.ts
  node_modules/.bin/tsc --noEmit
  echo "    tsc --noEmit: no error"
  # What frontend teams generate from: the public document has no platform operation.
  curl -sf "$API_BASE_URL/api-docs/public.json" >"$RUN/public.json"
  generate openapi-typescript-public node_modules/.bin/openapi-typescript "$RUN/public.json" \
    --output "$RUN/public-api.ts"
  grep -q '"/devices/{id}/untrust"' "$RUN/public-api.ts" || fail "the public client lacks untrustDevice"
  if grep -nE '"/platform/|operations\["(createSession|listUser|revokeUserSessions|deleteUserData)' "$RUN/public-api.ts"; then
    fail "the client generated from /api-docs/public.json has platform operations"
  fi
  echo "    the client generated from /api-docs/public.json has no platform operation"
  client_env ts
  node_modules/.bin/tsx src/roundtrip.ts
)

step "Python: venv, openapi-python-client, round trip with the generated client"
VENV=$WORK/venv
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements.txt
PYCLIENT=$WORK/python-client
rm -rf "$PYCLIENT"
mkdir -p "$PYCLIENT"
# ruff (the generator's formatting hook) comes from the venv; it keeps no cache.
PATH=$VENV/bin:$PATH RUFF_NO_CACHE=true generate openapi-python-client \
  "$VENV/bin/openapi-python-client" generate --path openapi/openapi.yaml \
  --config clients/python/config.yaml --meta none \
  --output-path "$PYCLIENT/flashback_devices_client"
"$VENV/bin/python" clients/check_operations.py openapi/openapi.yaml \
  clients/typescript/src/generated/api.ts "$PYCLIENT/flashback_devices_client"
(
  client_env py
  PYTHONPATH=$PYCLIENT "$VENV/bin/python" clients/python/roundtrip.py
)

step "Browser: Swagger UI in Debian's Chromium (playwright-core), Try it out on untrustDevice"
(
  cd clients/browser
  npm ci --no-audit --no-fund --loglevel=error
  client_env browser
  OWN_USER_ID=user-browser OWN_FINGERPRINT=fp-browser-laptop \
  SCREENSHOT=$ROOT/target/swagger-ui-untrust.png node swagger-ui-untrust.mjs
)

step "clients: all passed in $((SECONDS - STARTED))s"
echo "clients: 3 passed, 0 failed"
