#!/usr/bin/env bash
# Lints openapi/openapi.yaml with two independent tools and fails when either
# reports anything at all (an error, a warning or an ignored problem):
#   - openapi-spec-validator (PyPI, pinned in contract/requirements.txt,
#     installed into target/contract-venv): validity against the OpenAPI 3.1
#     schema;
#   - Redocly CLI (npm, pinned in contract/package.json + package-lock.json,
#     installed into contract/node_modules with `npm ci`): `redocly lint` with
#     the `recommended` ruleset as configured in redocly.yaml (one rule
#     narrowed there, with its reason).
# Redocly runs with telemetry off (redocly.yaml and REDOCLY_TELEMETRY=off) and
# without its update check, so the only network it needs is the npm registry
# for the install.
set -euo pipefail
cd "$(dirname "$0")/.."

# SPEC: the file to lint (default openapi/openapi.yaml; another path is for testing this script).
SPEC="${SPEC:-openapi/openapi.yaml}"
step() { printf '\n==> %s\n' "$*"; }
status=0

# shellcheck source=contract/venv.sh
source contract/venv.sh
step "openapi-spec-validator (contract/requirements.txt)"
contract_venv
"$CONTRACT_VENV/bin/python" -m pip show openapi-spec-validator 2>/dev/null | sed -n 's/^Version: /openapi-spec-validator /p'
validator_out="$("$CONTRACT_VENV/bin/openapi-spec-validator" --validation-errors all "$SPEC" 2>&1)" || status=1
echo "$validator_out"
if [[ "$validator_out" != "$SPEC: OK" ]]; then
  status=1
fi

step "Redocly CLI (contract/package-lock.json)"
# shellcheck source=contract/node-tools.sh
source contract/node-tools.sh
contract_node_tools
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
redocly=contract/node_modules/.bin/redocly
echo "redocly $("$redocly" --version 2>/dev/null)"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# The JSON report decides; stderr (notices such as Node.js deprecation) is shown as is.
"$redocly" lint "$SPEC" --config redocly.yaml --format json >"$report" || status=1
problems="$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const t = r.totals;
  console.log(`errors ${t.errors}, warnings ${t.warnings}, ignored ${t.ignored}`);
  process.exit(t.errors + t.warnings + t.ignored === 0 && r.problems.length === 0 ? 0 : 1);
' "$report")" || {
  status=1
  "$redocly" lint "$SPEC" --config redocly.yaml --format stylish || true
}
echo "redocly lint (recommended, redocly.yaml): $problems"

if ((status != 0)); then
  echo "lint-spec: FAILED" >&2
  exit 1
fi
echo "lint-spec: passed (openapi-spec-validator OK; redocly lint: no errors, no warnings)"
