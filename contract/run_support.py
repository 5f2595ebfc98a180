"""Helpers of `.ci/schemathesis.sh` that are easier in Python than in bash.

    run_support.py wait-ready URL SECONDS
    run_support.py fixtures BINARY BASE_URL OUT.json
    run_support.py token-still-valid BASE_URL FIXTURES.json
    run_support.py check-stats SPEC STATS.json MIN_CASES

Uses only the standard library and `requests` (installed with schemathesis).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
import yaml


def wait_ready(url: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"the server at {url} was not ready within {seconds} s")


def _session(binary: str, *args: str) -> dict:
    out = subprocess.run([binary, "session", "create", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def fixtures(binary: str, base_url: str, out_path: str) -> None:
    """Alice, the user every non-destructive operation runs as.

    Devices: a trusted laptop (the token's), a phone, a tablet and an old
    desktop. Sessions: the token's, one on the phone and one on the tablet
    (active), one on the phone that expired, one on the old desktop that was
    revoked: heartbeat and getDevice meet each kind.
    """
    common = ["--user", "alice", "--ip", "203.0.113.7", "--location", "Lisbon, Portugal"]
    laptop = _session(
        binary, *common, "--device-name", "Work laptop", "--fingerprint", "fp-laptop",
        "--os", "macOS 15", "--browser", "Firefox 133", "--trusted",
    )
    phone = _session(binary, *common, "--device-name", "Phone", "--fingerprint", "fp-phone",
                     "--device-type", "MOBILE", "--os", "Android 15", "--login-method", "passkey")
    tablet = _session(binary, *common, "--device-name", "Tablet", "--fingerprint", "fp-tablet",
                      "--device-type", "TABLET", "--os", "iPadOS 18")
    expired = _session(binary, *common, "--device-name", "Phone", "--fingerprint", "fp-phone",
                       "--device-type", "MOBILE", "--os", "Android 15", "--ttl", "1")
    old = _session(binary, *common, "--device-name", "Old desktop", "--fingerprint", "fp-old")
    headers = {"Authorization": f"Bearer {laptop['token']}"}
    revoked = requests.post(f"{base_url}/sessions/{old['sessionId']}/revoke", headers=headers, timeout=10)
    if revoked.status_code != 200:
        sys.exit(f"could not revoke the fixture session: {revoked.status_code} {revoked.text}")
    time.sleep(1.1)  # let the --ttl 1 session expire
    # A real nextCursor of alice's (her sign-ins and the revocation are events).
    page = requests.get(f"{base_url}/security-events", params={"limit": 1}, headers=headers, timeout=10)
    cursor = page.json().get("nextCursor") if page.status_code == 200 else None
    if not cursor:
        sys.exit(f"could not get a cursor of alice's security events: {page.status_code} {page.text}")
    data = {
        "binary": binary,
        "shared": {
            "user": "alice",
            "token": laptop["token"],
            "deviceIds": [s["deviceId"] for s in (laptop, phone, tablet, old)],
            "sessionIds": [s["sessionId"] for s in (laptop, phone, tablet, expired, old)],
            "fingerprints": ["fp-laptop", "fp-phone", "fp-tablet", "fp-old"],
            "cursor": cursor,
            # Active besides the token's own: no case may end them (revokeOtherSessions would).
            "siblingSessionIds": [phone["sessionId"], tablet["sessionId"]],
        },
    }
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)


def token_still_valid(base_url: str, fixtures_path: str) -> None:
    with open(fixtures_path, encoding="utf-8") as file:
        shared = json.load(file)["shared"]
    headers = {"Authorization": f"Bearer {shared['token']}"}
    response = requests.get(f"{base_url}/devices", headers=headers, timeout=10)
    if response.status_code != 200:
        sys.exit(f"the shared token was refused after the run ({response.status_code}): {response.text}")
    devices = response.json()["devices"]
    sessions = requests.get(f"{base_url}/sessions", headers=headers, timeout=10).json()["sessions"]
    active = {s["id"] for s in sessions}
    ended = [sid for sid in shared["siblingSessionIds"] if sid not in active]
    if ended:
        sys.exit(f"sessions of the shared user were ended during the run: {ended}")
    print(
        f"the shared token is still valid after the run (alice has {len(devices)} devices), "
        f"and so are its {len(shared['siblingSessionIds'])} sibling sessions"
    )


def _operations(spec_path: str) -> dict[str, bool]:
    """operationId -> whether the operation takes any input (parameters or a body)."""
    with open(spec_path, encoding="utf-8") as file:
        spec = yaml.safe_load(file)
    operations = {}
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                has_input = bool(operation.get("parameters") or item.get("parameters") or operation.get("requestBody"))
                operations[operation["operationId"]] = has_input
    return operations


def check_stats(spec_path: str, stats_path: str, min_cases: str) -> None:
    """Prints the requests per operation and status; fails when an operation
    was not reached, never succeeded, or (when it takes input) got fewer than
    MIN_CASES requests."""
    minimum = int(min_cases)
    with open(stats_path, encoding="utf-8") as file:
        stats = json.load(file)
    requests_by_op = stats["requests"]
    problems = []
    print(f"{'operation':<20} {'requests':>8}  by status")
    for operation_id, has_input in _operations(spec_path).items():
        counts = requests_by_op.get(operation_id, {})
        total = sum(counts.values())
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        print(f"{operation_id:<20} {total:>8}  {by_status}")
        if not any(status.startswith("2") for status in counts):
            problems.append(f"{operation_id}: no 2xx response in {total} requests")
        if has_input and total < minimum:
            problems.append(f"{operation_id}: {total} requests, fewer than {minimum}")
        if not has_input and total < 1:
            problems.append(f"{operation_id}: never called")
    minted = stats.get("throwaway_sessions", {})
    print("throwaway sessions minted for destructive cases: "
          + ", ".join(f"{op}: {n}" for op, n in minted.items()))
    if problems:
        sys.exit("coverage too thin:\n  " + "\n  ".join(problems))


COMMANDS = {
    "wait-ready": wait_ready,
    "fixtures": fixtures,
    "token-still-valid": token_still_valid,
    "check-stats": check_stats,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
