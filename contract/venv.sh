# Sourced by .ci/schemathesis.sh and .ci/lint-spec.sh: makes sure the pinned
# Python tools of contract/requirements.txt are installed in target/contract-venv
# (from PyPI, once; again whenever the requirements file changes) and sets
# CONTRACT_VENV to that folder. Needs CPython 3.11 or newer.

contract_venv() {
  CONTRACT_VENV="$PWD/target/contract-venv"
  local requirements="$PWD/contract/requirements.txt"
  local stamp="$CONTRACT_VENV/.requirements.txt"
  if [[ -x "$CONTRACT_VENV/bin/python" ]] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  local python="${PYTHON:-}"
  if [[ -z "$python" ]]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"
        break
      fi
    done
  fi
  if [[ -z "$python" ]]; then
    echo "contract tools need CPython 3.11 or newer (set PYTHON=...)" >&2
    return 1
  fi
  echo "installing contract/requirements.txt into target/contract-venv with $("$python" --version)"
  rm -rf "$CONTRACT_VENV"
  "$python" -m venv "$CONTRACT_VENV"
  "$CONTRACT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --requirement "$requirements"
  cp "$requirements" "$stamp"
}
