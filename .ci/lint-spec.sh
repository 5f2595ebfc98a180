#!/usr/bin/env bash
# Lints openapi/openapi.yaml and its derived OpenAPI 3.0 edition with two
# independent tools and fails when either reports anything at all (an error,
# a warning or an ignored problem):
#   - openapi-spec-validator (PyPI, pinned in contract/requirements.txt,
#     installed into target/contract-venv): validity against the OpenAPI 3.1
#     schema, and against the 3.0 schema for the edition;
#   - Redocly CLI (npm, pinned in contract/package.json + package-lock.json,
#     installed into contract/node_modules with `npm ci`): `redocly lint` with
#     the `recommended` ruleset as configured in redocly.yaml (one rule
#     narrowed there, with its reason).
# Redocly runs with telemetry off (redocly.yaml and REDOCLY_TELEMETRY=off) and
# without its update check, so the only network it needs is the npm registry
# for the install.
set -euo pipefail
cd "$(dirname "$0")/.."

# SPEC: the 3.1 file to lint (default openapi/openapi.yaml; another path is for testing this script).
# SPEC_3_0: its OpenAPI 3.0 edition (default: printed by the server binary,
# `flashback-devices openapi --spec-version 3.0 --yaml`, into target/).
SPEC="${SPEC:-openapi/openapi.yaml}"
step() { printf '\n==> %s\n' "$*"; }
status=0

if [[ -z "${SPEC_3_0:-}" ]]; then
  SPEC_3_0=target/openapi-3.0.yaml
  # The release build when there is one (.ci/run has just made it; cargo
  # rebuilds a stale one), else the dev build.
  if [[ -x target/release/flashback-devices ]]; then
    cargo build --release --locked --quiet --bin flashback-devices
    bin=target/release/flashback-devices
  else
    cargo build --locked --quiet --bin flashback-devices
    bin=target/debug/flashback-devices
  fi
  "$bin" openapi --spec-version 3.0 --yaml >"$SPEC_3_0"
fi

# shellcheck source=contract/venv.sh
source contract/venv.sh
contract_venv
# shellcheck source=contract/node-tools.sh
source contract/node-tools.sh
contract_node_tools
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
redocly=contract/node_modules/.bin/redocly
report="$(mktemp)"
trap 'rm -f "$report"' EXIT

# lint FILE VERSION: both tools on one document, which must say openapi: VERSION.x.
lint() {
  local file=$1 version=$2
  step "openapi-spec-validator on $file (OpenAPI $version; contract/requirements.txt)"
  "$CONTRACT_VENV/bin/python" -m pip show openapi-spec-validator 2>/dev/null | sed -n 's/^Version: /openapi-spec-validator /p'
  if ! grep -Eq "^openapi: ['\"]?${version//./\\.}\\.[0-9]+" "$file"; then
    echo "$file does not declare openapi: $version.x"
    status=1
  fi
  validator_out="$("$CONTRACT_VENV/bin/openapi-spec-validator" --schema "$version" --validation-errors all "$file" 2>&1)" || status=1
  echo "$validator_out"
  if [[ "$validator_out" != "$file: OK" ]]; then
    status=1
  fi

  step "Redocly CLI on $file (contract/package-lock.json)"
  echo "redocly $("$redocly" --version 2>/dev/null)"
  # The JSON report decides; stderr (notices such as Node.js deprecation) is shown as is.
  "$redocly" lint "$file" --config redocly.yaml --format json >"$report" || status=1
  problems="$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const t = r.totals;
    console.log(`errors ${t.errors}, warnings ${t.warnings}, ignored ${t.ignored}`);
    process.exit(t.errors + t.warnings + t.ignored === 0 && r.problems.length === 0 ? 0 : 1);
  ' "$report")" || {
    status=1
    "$redocly" lint "$file" --config redocly.yaml --format stylish || true
  }
  echo "redocly lint (recommended, redocly.yaml): $problems"
}

lint "$SPEC" 3.1
lint "$SPEC_3_0" 3.0

if ((status != 0)); then
  echo "lint-spec: FAILED" >&2
  exit 1
fi
echo "lint-spec: passed for both editions (openapi-spec-validator OK; redocly lint: no errors, no warnings)"
