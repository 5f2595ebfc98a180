#!/usr/bin/env bash
# The spec only evolves compatibly: compares openapi/openapi.yaml with
# openapi/released.yaml (a byte copy of the spec as last released) and fails
# when a client generated from the release would break (a removed operation,
# status or response field, a new required request field or parameter, a
# changed type, a narrowed enum, ...) unless info.version's major was raised;
# and when the version went down. Then proves itself: a self-test edits copies
# of the spec on purpose (each class of breaking change, additive changes, a
# raised major, a lowered version, an unreadable spec) and checks the verdict
# on each.
#
# The diff is Optic's (`optic diff --check`, @useoptic/optic pinned in
# contract/package.json + package-lock.json, installed into
# contract/node_modules with `npm ci`), with its breaking-changes rules and
# one local rule (contract/optic/), driven by contract/spec-compat.mjs.
# Telemetry is off; it needs no network after the install.
#
# Usage: bash .ci/spec-compat.sh               # the check, then the self-test
#        bash .ci/spec-compat.sh --check-only  # the check alone (a few seconds)
# RELEASED and SPEC override the two files (for trying the script on other copies).
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASED="${RELEASED:-openapi/released.yaml}"
SPEC="${SPEC:-openapi/openapi.yaml}"
self_test=1
case "${1:-}" in
  "") ;;
  --check-only) self_test=0 ;;
  *)
    echo "usage: bash .ci/spec-compat.sh [--check-only]" >&2
    exit 2
    ;;
esac
step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=contract/node-tools.sh
source contract/node-tools.sh
contract_node_tools

step "spec-compat: $SPEC against $RELEASED"
node contract/spec-compat.mjs check "$RELEASED" "$SPEC"

if ((self_test)); then
  step "spec-compat self-test: deliberately edited copies of $SPEC"
  node contract/spec-compat.mjs self-test "$SPEC"
fi
