#!/usr/bin/env bash
# Contract tests from the outside: the generator matrix, each generator fed
# the document a real server serves (this script starts one on a loopback
# port and stops it on exit):
#   - TypeScript from /api-docs/openapi.json (3.1): openapi-typescript +
#     openapi-fetch, orval (fetch client), @hey-api/openapi-ts (fetch client);
#     tsc --strict, type-level checks that no body type holds `any` and that
#     nullable fields, enums and booleans are typed as the spec says, and a
#     webhook receiver type-checked against each generator's
#     SecurityEventWebhook;
#   - Python from /api-docs/openapi.json: openapi-python-client, mypy --strict;
#   - Rust from /api-docs/openapi-3.0.json: progenitor (clients/rust, its own
#     workspace and Cargo.lock), built with warnings denied and run;
# each round trip going through Stoplight Prism's validating proxy
# (`prism proxy --errors`: a contract violation fails the request, and any
# violation in its log fails the run); then `prism mock` of the served spec,
# every operation called once (clients/prism/check_mock.py), and Swagger UI
# in Debian's Chromium.
#
# Fails on the first error, and when a generator prints a warning about the
# spec; every failure names the generator, and the operation or schema where
# the generator or the check says it. Installs what a fresh machine lacks
# (npm packages from the lockfiles, a Python venv under target/, Debian's
# chromium). Everything it makes goes to target/ or to gitignored folders
# under clients/.
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
PRISM_PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PRISM_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
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

# A free loopback TCP port.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts Prism (prism ARGS...) on a free port, logging to $RUN/NAME.log; sets
# PRISM_URL once it listens.
start_prism() {
  local name=$1 port
  shift
  port=$(free_port)
  clients/prism/node_modules/.bin/prism "$@" -h 127.0.0.1 -p "$port" >"$RUN/$name.log" 2>&1 &
  PRISM_PIDS+=($!)
  for _ in $(seq 1 300); do
    kill -0 "${PRISM_PIDS[-1]}" 2>/dev/null || { cat "$RUN/$name.log"; fail "$name exited at start-up"; }
    if grep -q 'Prism is listening' "$RUN/$name.log"; then
      PRISM_URL=http://127.0.0.1:$port
      return 0
    fi
    sleep 0.1
  done
  cat "$RUN/$name.log"
  fail "$name did not start within 30 s"
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
# A Cargo.lock names crates.io by cargo's fixed source id, the one line the
# server's own Cargo.lock has for it; that line is the only one exempt.
crates_io=$(grep -m1 '^source = "registry+' Cargo.lock)
cargo_locks=()
for f in "${committed[@]}"; do [[ $f == */Cargo.lock ]] && cargo_locks+=("$f"); done
for lock in "${cargo_locks[@]}"; do
  if grep -n '^source = ' "$lock" | grep -vF ":$crates_io"; then
    fail "$lock has a source other than crates.io (above)"
  fi
done
if hosts=$( (grep -HnoE '[a-zA-Z][a-zA-Z0-9+.-]*://[^/[:space:]"<>)]+' "${committed[@]}" || true) \
  | grep -vE '(sqlite|file)://|://([^@/]*@)?(127[^0-9]|localhost|\[::1\]|\$)' \
  | while IFS= read -r hit; do
      file=${hit%%:*} rest=${hit#*:} line=${rest%%:*}
      # The crates.io source line of a Cargo.lock (checked above) is not a download address.
      if [[ $file == */Cargo.lock ]] && [[ $(sed -n "${line}p" "$file") == "$crates_io" ]]; then continue; fi
      printf '%s\n' "$hit"
    done); [[ -n $hosts ]]; then
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
# The round trip reads GET /metrics from the API listener.
export METRICS_PUBLIC=true
"$BIN" migrate
# One user per client, each with a laptop (whose token the client uses) and a
# trusted phone with its own session (the device the client untrusts).
for who in ts orval heyapi py rust browser; do
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

step "the served documents: /api-docs/openapi.json (3.1) and /api-docs/openapi-3.0.json"
curl -fsS "$BASE_URL/api-docs/openapi.json" -o "$RUN/openapi.json"
curl -fsS "$BASE_URL/api-docs/openapi-3.0.json" -o "$RUN/openapi-3.0.json"
for doc in openapi openapi-3.0; do
  echo "    $doc.json: openapi $(field "$RUN/$doc.json" openapi), $(wc -c <"$RUN/$doc.json") bytes"
done
[[ $(field "$RUN/openapi-3.0.json" openapi) == 3.0.3 ]] || fail "/api-docs/openapi-3.0.json is not OpenAPI 3.0.3"

step "Prism (clients/prism): npm ci, prism proxy --errors in front of the server"
(cd clients/prism && npm ci --no-audit --no-fund --loglevel=error)
echo "prism $(clients/prism/node_modules/.bin/prism --version)"
start_prism prism-proxy proxy "$RUN/openapi.json" "$BASE_URL" --errors
PROXY_URL=$PRISM_URL
echo "prism proxy $PROXY_URL -> $BASE_URL (pid ${PRISM_PIDS[-1]})"
# Every generated client's round trip goes through the validating proxy.
export API_BASE_URL=$PROXY_URL

client_env() { # WHO -> the environment of that client's round trip
  API_TOKEN=$(field "$RUN/$1-laptop.json" token)
  OWN_DEVICE_ID=$(field "$RUN/$1-laptop.json" deviceId)
  TARGET_TOKEN=$(field "$RUN/$1-phone.json" token)
  export API_TOKEN OWN_DEVICE_ID TARGET_TOKEN
}

step "TypeScript: npm ci; openapi-typescript, orval, @hey-api/openapi-ts from the served 3.1 document"
(
  cd clients/typescript
  npm ci --no-audit --no-fund --loglevel=error
  echo "openapi-typescript $(node -p 'require("openapi-typescript/package.json").version'), openapi-fetch $(node -p 'require("openapi-fetch/package.json").version'), orval $(node -p 'require("orval/package.json").version'), @hey-api/openapi-ts $(node -p 'require("@hey-api/openapi-ts/package.json").version'), typescript $(node -p 'require("typescript/package.json").version')"
  rm -rf src/generated
  generate openapi-typescript node_modules/.bin/openapi-typescript "$RUN/openapi.json" \
    --output src/generated/api.ts
  OPENAPI_DOCUMENT=$RUN/openapi.json generate orval node_modules/.bin/orval --config orval.config.mjs
  generate hey-api node_modules/.bin/openapi-ts --input "$RUN/openapi.json" \
    --output src/generated/hey-api --client @hey-api/client-fetch --no-log-file

  step "TypeScript: tsc --strict (tsconfig.json; tsconfig.hey-api.json), no any in the generated types"
  # The type-level checks (src/check/, src/hey-api/check.ts) and the webhook
  # receivers (src/receivers/, src/hey-api/receiver.ts) are part of these.
  node_modules/.bin/tsc --noEmit || fail "tsc: openapi-typescript or orval output, or a check on it, failed (above)"
  node_modules/.bin/tsc --noEmit -p tsconfig.hey-api.json || fail "tsc: @hey-api/openapi-ts output, or a check on it, failed (above)"
  echo "    tsc --noEmit: no error (both projects)"
  # Belt and braces beside the type-level HasAny checks: `any` written out in
  # a generated file of the API's types (comments aside) names its line.
  for types in src/generated/api.ts src/generated/orval/api.ts src/generated/hey-api/types.gen.ts src/generated/hey-api/sdk.gen.ts; do
    if sed -E 's@//.*$@@; /^[[:space:]]*(\/\*\*|\*)/d' "$types" | grep -nwE 'any'; then
      fail "$types: the generated types hold \`any\` (lines above)"
    fi
  done
  echo "    no \`any\` in the generated types of the three generators"

  # What frontend teams generate from: the public document has no platform operation.
  curl -sf "$BASE_URL/api-docs/public.json" >"$RUN/public.json"
  generate openapi-typescript-public node_modules/.bin/openapi-typescript "$RUN/public.json" \
    --output "$RUN/public-api.ts"
  grep -q '"/devices/{id}/untrust"' "$RUN/public-api.ts" || fail "the public client lacks untrustDevice"
  if grep -nE '"/platform/|operations\["(createSession|listUser|revokeUserSessions|deleteUserData)' "$RUN/public-api.ts"; then
    fail "the client generated from /api-docs/public.json has platform operations"
  fi
  echo "    the client generated from /api-docs/public.json has no platform operation"

  step "TypeScript: round trips through the Prism proxy (openapi-fetch, orval, @hey-api/openapi-ts)"
  client_env ts
  node_modules/.bin/tsx src/roundtrip.ts || fail "openapi-typescript + openapi-fetch: round trip failed (above)"
  client_env orval
  node_modules/.bin/tsx src/orval/roundtrip.ts || fail "orval: round trip failed (above)"
  client_env heyapi
  node_modules/.bin/tsx src/hey-api/roundtrip.ts || fail "@hey-api/openapi-ts: round trip failed (above)"
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
  "$VENV/bin/openapi-python-client" generate --path "$RUN/openapi.json" \
  --config clients/python/config.yaml --meta none \
  --output-path "$PYCLIENT/flashback_devices_client"
"$VENV/bin/python" clients/check_operations.py "$RUN/openapi.json" \
  clients/typescript/src/generated/api.ts "$PYCLIENT/flashback_devices_client"
echo "openapi-python-client $("$VENV/bin/openapi-python-client" --version | grep -oE '[0-9.]+$'), $("$VENV/bin/mypy" --version | cut -d' ' -f1-2)"
(
  cd clients/python
  MYPYPATH=$PYCLIENT "$VENV/bin/mypy" --config-file mypy.ini --strict --cache-dir "$WORK/mypy-cache" roundtrip.py \
    || fail "mypy --strict: the round trip with the generated package failed (above)"
)
(
  client_env py
  PYTHONPATH=$PYCLIENT "$VENV/bin/python" clients/python/roundtrip.py || fail "openapi-python-client: round trip failed (above)"
)

step "Rust: progenitor from the served 3.0 edition (clients/rust), warnings denied, cargo run through the Prism proxy"
(
  cd clients/rust
  client_env rust
  echo "progenitor $(grep -A1 '^name = "progenitor"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
  # Its own target folder: the server's build is not touched.
  FLASHBACK_OPENAPI_3_0=$RUN/openapi-3.0.json CARGO_TARGET_DIR=$WORK/rust-target RUSTFLAGS="-D warnings" \
    cargo run --locked --quiet || fail "progenitor: the generated client failed to build or its round trip failed (above)"
)

step "Prism proxy: no contract violation in the round trips"
proxy_log=$RUN/prism-proxy.log
requests=$(grep -c 'Request received' "$proxy_log" || true)
# Anything but its info lines (an error, a warning, a violation) fails.
if grep -nEi '✖|⚠|error|warn|violation' "$proxy_log"; then
  fail "prism proxy reported the contract violations above ($proxy_log)"
fi
((requests > 0)) || fail "no request went through the prism proxy"
echo "    prism proxy: $requests requests, 0 violations"

step "Prism mock of the served spec: every operation once, its documented example, valid against its schema"
start_prism prism-mock mock "$RUN/openapi.json"
# shellcheck source=contract/venv.sh
source contract/venv.sh
contract_venv
"$CONTRACT_VENV/bin/python" clients/prism/check_mock.py "$RUN/openapi.json" "$PRISM_URL" \
  || fail "prism mock: the operations above did not answer their documented example"

step "Browser: Swagger UI in Debian's Chromium (playwright-core), Try it out on untrustDevice"
(
  cd clients/browser
  npm ci --no-audit --no-fund --loglevel=error
  client_env browser
  export API_BASE_URL=$BASE_URL
  OWN_USER_ID=user-browser OWN_FINGERPRINT=fp-browser-laptop \
  SCREENSHOT=$ROOT/target/swagger-ui-untrust.png node swagger-ui-untrust.mjs
)

step "clients: all passed in $((SECONDS - STARTED))s"
echo "clients: 7 passed, 0 failed (openapi-typescript, orval, @hey-api/openapi-ts, openapi-python-client, progenitor, prism mock, Swagger UI)"
