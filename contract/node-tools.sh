# Sourced by .ci/lint-spec.sh and .ci/spec-compat.sh: makes sure the pinned
# Node tools of contract/package-lock.json are installed in contract/node_modules
# (with `npm ci`, once; again whenever the lockfile changes). Needs Node.js
# >= 20.19 (Redocly CLI's floor) and npm.

contract_node_tools() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "Node.js and npm are needed for the contract tools" >&2
    return 1
  fi
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' || {
    echo "the contract tools need Node.js >= 20.19 (found $(node --version))" >&2
    return 1
  }
  if grep -q '"resolved"' contract/package-lock.json; then
    echo "contract/package-lock.json must not record registry URLs (see contract/.npmrc)" >&2
    return 1
  fi
  local stamp=contract/node_modules/.installed-package-lock.json
  if ! cmp -s contract/package-lock.json "$stamp"; then
    (cd contract && npm ci --no-audit --no-fund --loglevel=error)
    cp contract/package-lock.json "$stamp"
  fi
}
