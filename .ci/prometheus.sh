#!/usr/bin/env bash
# The metrics against the real Prometheus tools (Debian's `prometheus`
# package, installed when missing): exits non-zero on any failure.
#
#   1. serves the release binary on a throwaway SQLite database under
#      target/prometheus/, the API and the metrics on two free loopback ports
#      (METRICS_BIND_ADDR), and sends it requests of every kind (2xx, 404,
#      401 of each reason, 429 from the rate limiter, an unknown path);
#   2. `promtool check metrics` on what GET /metrics then answers (it fails on
#      a malformed exposition and on any lint problem: counters without
#      `_total`, non-base units, missing help...), and checks that the API
#      listener answers 404 for /metrics;
#   3. starts a real Prometheus on a third loopback port with a temporary
#      config (`promtool check config` first) and temporary storage, scraping
#      the metrics listener every second; asserts through its HTTP API that
#      the target is up and that the listDevices 2xx counter moves by exactly
#      the number of requests sent after the first scrape.
#
# Every wait is bounded (PROMETHEUS_WAIT seconds, default 60); a trap stops
# the server and Prometheus (by their pids) on any exit. The run folder
# (config, TSDB, logs, the scraped text) is removed on success and kept on
# failure or with PROMETHEUS_KEEP_RUN=1.
#
# Environment (optional): PROMETHEUS_SERVER_BIN (a server binary to use
# instead of `cargo build --release --locked`), PROMETHEUS_WAIT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WAIT=${PROMETHEUS_WAIT:-60}

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'prometheus.sh: FAILED: %s\n' "$*" >&2; exit 1; }

step "Prometheus and promtool (Debian's prometheus package)"
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi
promtool --version | head -n1
prometheus --version 2>&1 | head -n1

if [[ -n ${PROMETHEUS_SERVER_BIN:-} ]]; then
  BINARY=$PROMETHEUS_SERVER_BIN
else
  step "cargo build --release --locked"
  cargo build --release --locked
  BINARY=$ROOT/target/release/flashback-devices
fi

mkdir -p "$ROOT/target/prometheus"
RUN=$(mktemp -d "$ROOT/target/prometheus/run.XXXXXX")
SERVER_PID=
PROMETHEUS_PID=

stop() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$PROMETHEUS_PID"
  stop "$SERVER_PID"
  if ((rc != 0)); then
    for log in server.log prometheus.log; do
      if [[ -f $RUN/$log ]]; then
        echo "--- last lines of $RUN/$log ---" >&2
        tail -n 30 "$RUN/$log" >&2 || true
      fi
    done
  fi
  if ((rc != 0)) || [[ ${PROMETHEUS_KEEP_RUN:-} == 1 ]]; then
    echo "prometheus.sh: run folder kept: $RUN" >&2
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
METRICS_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
METRICS=http://127.0.0.1:$METRICS_PORT
PROMETHEUS=http://127.0.0.1:$PROMETHEUS_PORT

# Waits up to $WAIT seconds for a command to succeed.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 $((WAIT * 4))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  fail "$what: not within ${WAIT}s"
}

# HTTP status of a request: status METHOD URL [curl args...]
status() {
  local method=$1 url=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' -X "$method" "$@" "$url"
}

step "server: API on $API, metrics on $METRICS (SQLite in $RUN)"
export JWT_SECRET="ci-secret-0123456789abcdef0123456789abcdef"
export DATABASE_URL="sqlite://$RUN/db.sqlite"
"$BINARY" migrate
TOKEN=$("$BINARY" session create --user alice --device-name Laptop \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
BIND_ADDR=127.0.0.1:$API_PORT METRICS_BIND_ADDR=127.0.0.1:$METRICS_PORT \
  RATE_LIMIT_RPS=5 RATE_LIMIT_BURST=5 RUST_LOG=warn \
  "$BINARY" serve >"$RUN/server.log" 2>&1 &
SERVER_PID=$!
wait_for "the server's /healthz" curl -sf "$API/healthz"
wait_for "the metrics listener" curl -sf "$METRICS/metrics"

step "requests of every kind"
AUTH=(-H "Authorization: Bearer $TOKEN")
expect() {
  local want=$1 got
  shift
  got=$(status "$@")
  [[ $got == "$want" ]] || fail "$* answered $got, expected $want"
}
expect 200 GET "$API/devices" "${AUTH[@]}"
expect 404 GET "$API/devices/no-such-device" "${AUTH[@]}"
expect 401 GET "$API/devices"
expect 401 GET "$API/sessions" -H "Authorization: Bearer not-a-jwt"
expect 404 GET "$API/nowhere"
expect 200 GET "$API/readyz"
# Past the allowance of 5 requests at once, unauthenticated requests get 429.
limited=0
for _ in $(seq 1 12); do
  [[ $(status GET "$API/devices") == 429 ]] && limited=$((limited + 1))
done
((limited > 0)) || fail "the rate limiter refused none of 12 quick requests"
echo "429 answers: $limited"
expect 404 GET "$API/metrics"

step "promtool check metrics"
curl -sf "$METRICS/metrics" >"$RUN/metrics.txt"
grep -q '^flashback_http_rate_limited_total{operation_id="listDevices"} [1-9]' "$RUN/metrics.txt" \
  || fail "no rate-limited listDevices requests in the metrics"
grep -q '^flashback_auth_refusals_total{reason="missing_token"} [1-9]' "$RUN/metrics.txt" \
  || fail "the missing-token 401s are not counted"
grep -q '^process_resident_memory_bytes ' "$RUN/metrics.txt" || fail "no process metrics"
echo "$(grep -vc '^#' "$RUN/metrics.txt") samples in $(grep -c '^# TYPE' "$RUN/metrics.txt") metrics"
promtool check metrics <"$RUN/metrics.txt" || fail "promtool check metrics found problems (above)"
echo "promtool: no problems"

step "Prometheus on $PROMETHEUS scraping $METRICS"
cat >"$RUN/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: flashback-devices
    static_configs:
      - targets: ['127.0.0.1:$METRICS_PORT']
EOF
promtool check config "$RUN/prometheus.yml"
prometheus --config.file="$RUN/prometheus.yml" \
  --storage.tsdb.path="$RUN/tsdb" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
  >"$RUN/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
wait_for "Prometheus ready" curl -sf "$PROMETHEUS/-/ready"

# The value of an instant query that returns one sample, or nothing.
query() {
  curl -sfG "$PROMETHEUS/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
assert answer["status"] == "success", answer
result = answer["data"]["result"]
print(result[0]["value"][1] if len(result) == 1 else "")'
}
target_up() {
  curl -sf "$PROMETHEUS/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if [t["health"] for t in targets] == ["up"] else 1)'
}
wait_for "the target up in /api/v1/targets" target_up
[[ $(query 'up{job="flashback-devices"}') == 1 ]] || fail "up{job=\"flashback-devices\"} is not 1"
echo "target up"

COUNTER='flashback_http_requests_total{job="flashback-devices",operation_id="listDevices",status_class="2xx"}'
counter_is() { [[ $(query "$COUNTER") == "$1" ]]; }
wait_for "a first scrape with the listDevices counter" counter_is 1
for _ in 1 2 3; do expect 200 GET "$API/devices" "${AUTH[@]}"; done
wait_for "the listDevices 2xx counter to move from 1 to 4" counter_is 4
echo "listDevices 2xx: 1 -> $(query "$COUNTER") after 3 requests"
rate=$(query "sum(rate(flashback_http_request_duration_seconds_count{job=\"flashback-devices\"}[1m]))")
[[ -n $rate ]] || fail "Prometheus has no latency histogram series"

echo
echo "prometheus.sh: passed"
