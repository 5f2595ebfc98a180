"""Schemathesis hooks for `.ci/schemathesis.sh` (loaded with SCHEMATHESIS_HOOKS=hooks).

What they arrange, so that every operation is exercised authenticated and
reaches its success path (the script explains the whole run at its top):

- Authentication (`BearerTokens`, one global auth provider, no caching):
  * untrustDevice, deleteDevice, revokeSession and revokeAllSessions can end
    the caller's own session, and revokeOtherSessions ends every other
    session of the caller (alice's fixtures among them, were alice the
    caller). Every test case of these five gets a session of its own: a
    throwaway user (`st-<random>`) is created for the case with
    `flashback-devices session create` (for revokeOtherSessions with a
    second session on another device, so there is something to revoke), and
    the case carries that token. Nothing a destructive case does can reach
    another case's token, nor the shared one below.
  * Every other operation uses the one token of the shared user `alice`,
    minted by the script. Alice's token is never sent to a destructive
    operation, so it stays valid for the whole run (the script checks that
    afterwards, and the `authenticated_requests_accepted` check below fails
    any authenticated request that gets a 401).
- The platform operations (`/platform/...`) take the service key the script
  created (`flashback-devices service-key create`, in $CONTRACT_SERVICE_KEY)
  instead of a user's token. Their destructive ones, revokeUserSessions and
  deleteUserData, never get alice's `userId`: a generated id that is alice's
  becomes a throwaway user's, and for about half the valid generated ids a
  throwaway user with a session is created for the case (so there is
  something to revoke or erase). createSession never signs alice in (her
  sessions stay under the per-user limit). The listings get alice's id for
  about half the valid generated ids; listUserSecurityEvents with a cursor
  that is valid per the spec gets alice's id and her real cursor.
- Real identifiers: a generated path id or fingerprint that is valid per the
  spec is, for about half the cases (chosen by a hash of the generated value,
  so replays choose alike), replaced with a real one of the caller:
  * getDevice / renameDevice / sessionHeartbeat / trustDevice: one of alice's devices,
    sessions (active, expired and revoked ones) or fingerprints;
  * untrustDevice / deleteDevice: the throwaway user's own device (the one
    the token runs on) or a second device of that user;
  * revokeSession: the token's own session or a second session of that user
    on the same device.
  Invalid values (negative cases) are never touched, so a negative case
  stays negative and a positive one stays positive.
- Cursors: listSecurityEvents' `cursor` is opaque and signed by the server,
  so no generator can make one up: a generated cursor that is valid per the
  spec (a positive value) is always replaced with a real one, a nextCursor
  of alice's (made by the script), and would otherwise be refused with the
  400 the spec documents for it. Invalid cursors are kept, and get that 400.
- `authenticated_requests_accepted`: a check that fails any request that
  carried one of our valid tokens (security not negated) and got 401.
- `after_call`: counts the requests each operation got, by status, and
  writes them as JSON to $CONTRACT_STATS when the run ends; the script prints
  them and checks them.

Inputs, from the environment: CONTRACT_FIXTURES (JSON written by the script:
the binary, alice's token, devices, sessions and fingerprints), CONTRACT_STATS
(where to write the counts), and DATABASE_URL / JWT_SECRET for the binary.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import subprocess
import threading
import uuid
import zlib

import schemathesis

with open(os.environ["CONTRACT_FIXTURES"], encoding="utf-8") as _file:
    FIXTURES = json.load(_file)

BINARY = FIXTURES["binary"]
SHARED = FIXTURES["shared"]
SERVICE_KEY = os.environ["CONTRACT_SERVICE_KEY"]

# The platform operations that end or erase what a user has.
PLATFORM_DESTRUCTIVE = {
    "POST /platform/users/{userId}/sessions/revoke-all",
    "DELETE /platform/users/{userId}",
}
PLATFORM_LISTINGS = {
    "GET /platform/users/{userId}/devices",
    "GET /platform/users/{userId}/sessions",
    "GET /platform/users/{userId}/security-events",
}
# The spec's `UserId`: 1 to 128 characters.
MAX_USER_ID = 128

# The operations that can end the session of the token they are called with.
DESTRUCTIVE = {
    "POST /devices/{id}/untrust": "untrustDevice",
    "DELETE /devices/{id}": "deleteDevice",
    "POST /sessions/{id}/revoke": "revokeSession",
    "POST /sessions/revoke-all": "revokeAllSessions",
    "POST /sessions/revoke-others": "revokeOtherSessions",
}

# Operations without a path id: nothing of the caller's to substitute.
WITHOUT_ID = {"revokeAllSessions", "revokeOtherSessions"}

# The spec's `DeviceId` / `SessionId` schema, and `TrustDeviceRequest.fingerprint`.
VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # used with fullmatch
MAX_FINGERPRINT = 256
# The spec's schema of listSecurityEvents' `cursor`.
VALID_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,256}")  # used with fullmatch


def _bucket(value: object, buckets: int) -> int:
    """A stable choice derived from a generated value (the same on replay)."""
    return zlib.crc32(repr(value).encode("utf-8", "surrogatepass")) % buckets


def _mint(user: str, fingerprint: str, device_name: str) -> dict:
    """A new session (and, for a new fingerprint, a new device) of `user`."""
    completed = subprocess.run(
        [
            BINARY, "session", "create",
            "--user", user,
            "--device-name", device_name,
            "--fingerprint", fingerprint,
            "--device-type", "MOBILE",
            "--ip", "198.51.100.23",
            "--location", "Porto, Portugal",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"session create failed ({completed.returncode}): {completed.stderr.strip()}")
    return json.loads(completed.stdout)


_MINTED = collections.Counter()
_MINTED_LOCK = threading.Lock()


def _throwaway_session(operation_id: str) -> dict:
    user = f"st-{uuid.uuid4().hex[:16]}"
    fingerprint = f"fp-{uuid.uuid4().hex[:12]}"
    session = _mint(user, fingerprint, f"{operation_id} device")
    session["operationId"] = operation_id
    session["fingerprint"] = fingerprint
    if operation_id == "revokeOtherSessions":
        _mint(user, f"fp-{uuid.uuid4().hex[:12]}", "other device")
    with _MINTED_LOCK:
        _MINTED[operation_id] += 1
    return session


def _use_real_id(case, session: dict) -> None:
    """For about half the valid generated ids: the throwaway user's own ids."""
    operation_id = session["operationId"]
    generated = (case.path_parameters or {}).get("id")
    if operation_id in WITHOUT_ID or not isinstance(generated, str):
        return
    if not VALID_ID.fullmatch(generated):
        return  # a negative case: keep it invalid
    choice = _bucket(generated, 4)
    if choice < 2:
        return  # keep the generated id (almost surely an unknown one: 404)
    if operation_id == "revokeSession":
        if choice == 2:
            real = session["sessionId"]  # the token's own session
        else:
            # Another session of the same user on the same device: the token survives it.
            real = _mint(session["userId"], session["fingerprint"], f"{operation_id} device")["sessionId"]
    else:
        if choice == 2:
            real = session["deviceId"]  # the device the token runs on
        else:
            other = _mint(session["userId"], f"fp-{uuid.uuid4().hex[:12]}", "second device")
            real = other["deviceId"]
    case.path_parameters = {**case.path_parameters, "id": real}


@schemathesis.auth(refresh_interval=None, retry_on=[])
class BearerTokens:
    """A session of its own for each destructive case; alice's token for the rest."""

    def get(self, case, context):
        if context.operation.path.startswith("/platform/"):
            return {"token": SERVICE_KEY, "operationId": None}
        operation_id = DESTRUCTIVE.get(context.operation.label)
        if operation_id is None:
            return {"token": SHARED["token"], "operationId": None}
        session = _throwaway_session(operation_id)
        return session

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data['token']}"}
        if data["operationId"] is not None:
            _use_real_id(case, data)


@schemathesis.hook
def map_case(context, case):
    """For about half the valid generated ids and fingerprints: one of alice's."""
    label = context.operation.label
    if label in PLATFORM_DESTRUCTIVE:
        _platform_target(case)
    elif label in PLATFORM_LISTINGS:
        _platform_listing(case, label)
    elif label == "POST /platform/sessions":
        body = case.body
        if isinstance(body, dict) and body.get("userId") == SHARED["user"]:
            case.body = {**body, "userId": f"st-{uuid.uuid4().hex[:16]}"}
    elif label in ("GET /devices/{id}", "PATCH /devices/{id}"):
        _replace_path_id(case, SHARED["deviceIds"])
    elif label == "POST /sessions/{id}/heartbeat":
        _replace_path_id(case, SHARED["sessionIds"])
    elif label == "GET /security-events":
        query = case.query
        if isinstance(query, dict):
            cursor = query.get("cursor")
            if isinstance(cursor, str) and VALID_CURSOR.fullmatch(cursor):
                case.query = {**query, "cursor": SHARED["cursor"]}
    elif label == "POST /devices/trust":
        body = case.body
        if isinstance(body, dict):
            fingerprint = body.get("fingerprint")
            if isinstance(fingerprint, str) and 1 <= len(fingerprint) <= MAX_FINGERPRINT:
                choice = _bucket(fingerprint, 2 * len(SHARED["fingerprints"]))
                if choice < len(SHARED["fingerprints"]):
                    case.body = {**body, "fingerprint": SHARED["fingerprints"][choice]}
    return case


def _valid_user_id(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_USER_ID


def _platform_target(case) -> None:
    """Never alice; for about half the valid ids, a throwaway user with a session."""
    generated = (case.path_parameters or {}).get("userId")
    if not _valid_user_id(generated):
        return  # a negative case: keep it invalid
    if generated == SHARED["user"] or _bucket(generated, 2) == 0:
        user = f"st-{uuid.uuid4().hex[:16]}"
        _mint(user, f"fp-{uuid.uuid4().hex[:12]}", "platform target")
        case.path_parameters = {**case.path_parameters, "userId": user}


def _platform_listing(case, label: str) -> None:
    """Alice's id for about half the valid ids (and always with a valid cursor)."""
    generated = (case.path_parameters or {}).get("userId")
    if not _valid_user_id(generated):
        return
    query = case.query if isinstance(case.query, dict) else {}
    cursor = query.get("cursor")
    if label.endswith("/security-events") and isinstance(cursor, str) and VALID_CURSOR.fullmatch(cursor):
        case.path_parameters = {**case.path_parameters, "userId": SHARED["user"]}
        case.query = {**query, "cursor": SHARED["cursor"]}
    elif _bucket(generated, 2) == 0:
        case.path_parameters = {**case.path_parameters, "userId": SHARED["user"]}


def _as_sent(value: object) -> str | None:
    """A query or path value as it goes on the wire, or None for a structure.

    Generated values are strings, but in the stateful phase a link can fill a
    parameter from a response field of another type (a count of 0 becomes
    `cursor=0`), which is just as schema-valid once sent.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    return None


# Operations whose cursor is sealed by the server (and, for the platform's,
# for one user): a cursor valid per the spec must be a real one.
CURSOR_OPERATIONS = {
    "GET /security-events",
    "GET /platform/users/{userId}/security-events",
}


@schemathesis.hook
def before_call(context, case, kwargs):
    """What `map_case` guarantees, again right before sending, in every phase.

    In the stateful phase a link fills parameters after `map_case` ran (a user
    another call signed in, a response field as the cursor), so:
    - a cursor valid per the spec becomes alice's real one, and on the
      platform's listing the path's userId becomes alice's (a cursor is
      sealed for one user; otherwise such a call is a schema-valid request
      refused with the 400 of a forged cursor);
    - alice is never the target of a platform operation that ends or erases
      what a user has, nor signed in again (her token must outlive the run).
    """
    label = context.operation.label
    if label in PLATFORM_DESTRUCTIVE:
        if _as_sent((case.path_parameters or {}).get("userId")) == SHARED["user"]:
            case.path_parameters = {**case.path_parameters, "userId": f"st-{uuid.uuid4().hex[:16]}"}
        return
    if label == "POST /platform/sessions":
        body = case.body
        if isinstance(body, dict) and _as_sent(body.get("userId")) == SHARED["user"]:
            case.body = {**body, "userId": f"st-{uuid.uuid4().hex[:16]}"}
        return
    if label not in CURSOR_OPERATIONS:
        return
    query = case.query if isinstance(case.query, dict) else {}
    cursor = _as_sent(query.get("cursor"))
    if cursor is None or not VALID_CURSOR.fullmatch(cursor):
        return  # no cursor, or a negative case: keep it
    if label.startswith("GET /platform/"):
        user = _as_sent((case.path_parameters or {}).get("userId"))
        if user is None or not _valid_user_id(user):
            return  # a negative case: keep it
        case.path_parameters = {**case.path_parameters, "userId": SHARED["user"]}
    case.query = {**query, "cursor": SHARED["cursor"]}


def _replace_path_id(case, real_ids: list[str]) -> None:
    generated = (case.path_parameters or {}).get("id")
    if not isinstance(generated, str) or not VALID_ID.fullmatch(generated):
        return
    choice = _bucket(generated, 2 * len(real_ids))
    if choice < len(real_ids):
        case.path_parameters = {**case.path_parameters, "id": real_ids[choice]}


def _sent_token(case) -> str | None:
    value = (case.headers or {}).get("Authorization")
    if isinstance(value, str) and value.startswith("Bearer "):
        return value[len("Bearer "):]
    return None


@schemathesis.check
def authenticated_requests_accepted(ctx, response, case):
    """A request that carried one of our valid tokens must not get 401.

    Every token this run hands out is valid when its case is sent (each
    destructive case has its own; alice's is never ended), so a 401 here
    means the case was not exercised authenticated.
    """
    if response.status_code != 401 or response.request.method != case.method.upper():
        return None
    if not getattr(case, "_has_explicit_auth", False):
        return None
    if case.operation.schema.is_security_param_negated(case):
        return None
    if _sent_token(case) is None:
        return None
    raise AssertionError(
        f"{case.operation.label} answered 401 to a request with a valid token "
        f"(the case was meant to run authenticated): {response.text[:200]}"
    )


# What the run saw, written to $CONTRACT_STATS at exit: requests per operation
# and status.
_COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_COUNTS_LOCK = threading.Lock()


@schemathesis.hook
def after_call(context, case, response):
    # Requests with the operation's own method only (not the ST204 probes with other methods).
    if response.request.method != case.operation.method.upper():
        return
    operation_id = case.operation.definition.raw.get("operationId", case.operation.label)
    with _COUNTS_LOCK:
        _COUNTS[operation_id][str(response.status_code)] += 1


@atexit.register
def _write_stats() -> None:
    path = os.environ.get("CONTRACT_STATS")
    if not path:
        return
    with _COUNTS_LOCK:
        stats = {
            "requests": {op: dict(sorted(c.items())) for op, c in sorted(_COUNTS.items())},
            "throwaway_sessions": dict(sorted(_MINTED.items())),
        }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(stats, out, indent=2, sort_keys=True)
