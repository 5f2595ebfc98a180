"""Round trip through the Python client generated from openapi/openapi.yaml.

Asks which session and device the token is (getCurrentSession), lists
devices ("this device" marked), untrusts a device other than the token's
own, lists sessions, keeps its own session alive (sessionHeartbeat), reads
the security events page by page, and checks the
typed results (attrs models with no undocumented property, enums,
timezone-aware datetimes); then reads the metrics (a text body) and finds
the untrust counted. Exits non-zero on the first failed check.

The generated package `flashback_devices_client` must be importable (put the
folder that holds it on PYTHONPATH). Environment:

  API_BASE_URL   e.g. http://127.0.0.1:8080 (required)
  API_TOKEN      a bearer token (required); its own device is never untrusted
  OWN_DEVICE_ID  the token's own device id (required)
  TARGET_TOKEN   optional: a token of a session on the device to untrust,
                 which must be refused (401) afterwards
"""

from __future__ import annotations

import datetime
import os
import sys
from http import HTTPStatus

import attrs

from flashback_devices_client import AuthenticatedClient
from flashback_devices_client.api.devices import get_device, list_devices, untrust_device
from flashback_devices_client.api.health import get_metrics
from flashback_devices_client.api.platform import create_session, revoke_user_sessions
from flashback_devices_client.api.security import list_security_events
from flashback_devices_client.api.sessions import get_current_session, list_sessions, session_heartbeat
from flashback_devices_client.models import (
    CreateSessionRequest,
    CreateSessionResponse,
    CurrentSessionResponse,
    Device,
    DeviceDetailsResponse,
    DeviceListResponse,
    DeviceType,
    ErrorResponse,
    MessageResponse,
    SecurityEvent,
    SecurityEventListResponse,
    SecurityEventType,
    Session,
    SessionHeartbeatResponse,
    SessionListResponse,
    SignInDevice,
    TrustLevel,
)
from flashback_devices_client.types import UNSET


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(f"check failed: {message}")


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise CheckFailed(f"{name} must be set")
    return value


def no_extras(model: object, what: str) -> None:
    """The server sent no property that the spec does not document."""
    extras = getattr(model, "additional_properties", {})
    check(not extras, f"{what}: undocumented properties {sorted(extras)}")


def is_aware(value: object) -> bool:
    return isinstance(value, datetime.datetime) and value.tzinfo is not None


def client(base_url: str, token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def devices_of(api: AuthenticatedClient) -> list[Device]:
    response = list_devices.sync_detailed(client=api)
    check(response.status_code == HTTPStatus.OK, f"listDevices answered {response.status_code}")
    body = response.parsed
    check(isinstance(body, DeviceListResponse), f"listDevices parsed as {type(body).__name__}")
    assert isinstance(body, DeviceListResponse)
    check(body.success is True, "listDevices success is true")
    no_extras(body, "listDevices body")
    for d in body.devices:
        no_extras(d, f"device {d.id}")
    return body.devices


def sessions_of(api: AuthenticatedClient) -> list[Session]:
    response = list_sessions.sync_detailed(client=api)
    check(response.status_code == HTTPStatus.OK, f"listSessions answered {response.status_code}")
    body = response.parsed
    check(isinstance(body, SessionListResponse), f"listSessions parsed as {type(body).__name__}")
    assert isinstance(body, SessionListResponse)
    no_extras(body, "listSessions body")
    for s in body.sessions:
        no_extras(s, f"session {s.id}")
        check(attrs.has(type(s)) and isinstance(s, Session), "sessions are attrs Session models")
        check(
            all(is_aware(t) for t in (s.started_at, s.last_activity, s.expires_at)),
            f"session {s.id} has timezone-aware datetimes",
        )
    return body.sessions


def device_details(api: AuthenticatedClient, device_id: str) -> DeviceDetailsResponse:
    response = get_device.sync_detailed(device_id, client=api)
    check(response.status_code == HTTPStatus.OK, f"getDevice {device_id} answered {response.status_code}")
    body = response.parsed
    check(isinstance(body, DeviceDetailsResponse), f"getDevice parsed as {type(body).__name__}")
    assert isinstance(body, DeviceDetailsResponse)
    no_extras(body, "getDevice body")
    no_extras(body.device, f"device {device_id} details")
    for s in body.device.sessions:
        no_extras(s, f"device session {s.id}")
    return body


def current_session(api: AuthenticatedClient) -> CurrentSessionResponse:
    response = get_current_session.sync_detailed(client=api)
    check(response.status_code == HTTPStatus.OK, f"getCurrentSession answered {response.status_code}")
    body = response.parsed
    check(isinstance(body, CurrentSessionResponse), f"getCurrentSession parsed as {type(body).__name__}")
    assert isinstance(body, CurrentSessionResponse)
    no_extras(body, "getCurrentSession body")
    no_extras(body.session, "current session")
    no_extras(body.device, "current device")
    return body


def all_events(api: AuthenticatedClient, limit: int) -> tuple[list[SecurityEvent], int]:
    """Every event, `limit` a page, following nextCursor to the end; and the page count."""
    events: list[SecurityEvent] = []
    cursor: str | None = None
    pages = 0
    while True:
        response = list_security_events.sync_detailed(
            client=api, limit=limit, cursor=UNSET if cursor is None else cursor
        )
        check(response.status_code == HTTPStatus.OK, f"listSecurityEvents answered {response.status_code}")
        body = response.parsed
        check(isinstance(body, SecurityEventListResponse), f"listSecurityEvents parsed as {type(body).__name__}")
        assert isinstance(body, SecurityEventListResponse)
        no_extras(body, "listSecurityEvents body")
        check(len(body.events) <= limit, f"a page holds at most {limit} events ({len(body.events)})")
        for event in body.events:
            no_extras(event, f"event {event.id}")
            check(isinstance(event.type_, SecurityEventType), f"event {event.id} type is a SecurityEventType")
            check(is_aware(event.occurred_at), f"event {event.id} occurredAt is an aware datetime")
        events.extend(body.events)
        pages += 1
        if body.next_cursor is None:
            return events, pages
        check(isinstance(body.next_cursor, str), "nextCursor is a string or None")
        cursor = body.next_cursor


def main() -> None:
    base_url = env("API_BASE_URL")
    own_device_id = env("OWN_DEVICE_ID")
    api = client(base_url, env("API_TOKEN"))

    # 0. getCurrentSession: the token's own session, on its own device.
    current = current_session(api)
    own_session = current.session
    check(own_session.is_current is True, "getCurrentSession: session.isCurrent")
    check(own_session.device_id == own_device_id, f"getCurrentSession: session.deviceId ({own_session.device_id})")
    check(current.device.id == own_device_id and current.device.is_current is True, "getCurrentSession: this device")
    print(f"getCurrentSession: session {own_session.id} on {current.device.device_name!r} ({current.device.id})")

    # 1. listDevices
    devices = devices_of(api)
    check(len(devices) >= 2, f"at least two devices (got {len(devices)})")
    for d in devices:
        check(attrs.has(type(d)) and isinstance(d, Device), "devices are attrs Device models")
        check(isinstance(d.device_type, DeviceType), f"device {d.id} deviceType is a DeviceType")
        check(isinstance(d.trust_level, TrustLevel), f"device {d.id} trustLevel is a TrustLevel")
        check(is_aware(d.last_seen) and is_aware(d.created_at), f"device {d.id} has aware datetimes")
        check(
            d.trust_expires_at is None or is_aware(d.trust_expires_at),
            f"device {d.id} trustExpiresAt is None or a datetime (got {d.trust_expires_at!r})",
        )
    check(any(d.id == own_device_id for d in devices), "the token's own device is listed")
    marked = [d.id for d in devices if d.is_current]
    check(marked == [own_device_id], f"listDevices: exactly the own device has isCurrent ({marked})")
    others = [d for d in devices if d.id != own_device_id]
    target = next((d for d in others if d.is_trusted), others[0] if others else None)
    check(target is not None, "a device other than the token's own")
    assert target is not None
    print(
        f"listDevices: {len(devices)} devices; untrusting {target.device_name!r} "
        f"({target.id}, isTrusted={target.is_trusted}, trustLevel={target.trust_level.value})"
    )

    before = device_details(api, target.id).device
    target_session_ids = {s.id for s in before.sessions}
    check(bool(target_session_ids), "the target device has an active session before untrust")
    check(
        target_session_ids <= {s.id for s in sessions_of(api)},
        "the target's sessions are listed before untrust",
    )

    # 2. untrustDevice
    response = untrust_device.sync_detailed(target.id, client=api)
    check(response.status_code == HTTPStatus.OK, f"untrustDevice answered {response.status_code}")
    result = response.parsed
    check(isinstance(result, MessageResponse), f"untrustDevice parsed as {type(result).__name__}")
    assert isinstance(result, MessageResponse)
    check(result.success is True, "untrustDevice success is true")
    no_extras(result, "untrustDevice body")
    check(result.message == "Device untrusted successfully", f"untrustDevice message: {result.message!r}")
    print(f"untrustDevice: {result.to_dict()}")

    # 3. listSessions: the target's sessions are gone, the caller's own remains.
    active = sessions_of(api)
    now = datetime.datetime.now(datetime.timezone.utc)
    check(all(s.expires_at > now for s in active), "every listed session is unexpired")
    current_ones = [s.id for s in active if s.is_current]
    check(current_ones == [own_session.id], f"listSessions: exactly the own session has isCurrent ({current_ones})")
    left_over = [s.id for s in active if s.id in target_session_ids]
    check(not left_over, f"the untrusted device's sessions are gone (left: {left_over})")
    check(bool(active), "the caller's own session is still active")
    print(f"listSessions: {len(active)} active; none of {len(target_session_ids)} on {target.device_name!r}")

    # 4. The device shows isTrusted false, with no trust expiry and no sessions.
    after = device_details(api, target.id).device
    check(after.is_trusted is False, "getDevice: isTrusted is false")
    check(after.trust_expires_at is None, f"getDevice: trustExpiresAt is None (got {after.trust_expires_at!r})")
    check(not after.sessions, "getDevice: no active session")
    check(isinstance(after.trust_level, TrustLevel), "getDevice: trustLevel is a TrustLevel")
    relisted = next((d for d in devices_of(api) if d.id == target.id), None)
    check(relisted is not None and relisted.is_trusted is False, "listDevices: the device shows isTrusted false")
    print(f"getDevice: isTrusted={after.is_trusted} trustLevel={after.trust_level.value} trustExpiresAt={after.trust_expires_at}")

    # 5. sessionHeartbeat on the caller's own session moves its expiry forward.
    beat = session_heartbeat.sync_detailed(own_session.id, client=api)
    check(beat.status_code == HTTPStatus.OK, f"sessionHeartbeat answered {beat.status_code}")
    beaten = beat.parsed
    check(isinstance(beaten, SessionHeartbeatResponse), f"sessionHeartbeat parsed as {type(beaten).__name__}")
    assert isinstance(beaten, SessionHeartbeatResponse)
    check(is_aware(beaten.new_expiry), "sessionHeartbeat: newExpiry is an aware datetime")
    check(beaten.new_expiry >= own_session.expires_at, f"sessionHeartbeat: newExpiry moves forward ({beaten.new_expiry})")
    print(f"sessionHeartbeat: new expiry {beaten.new_expiry.isoformat()}")

    # 6. listSecurityEvents, two at a time, following nextCursor to the end.
    events, pages = all_events(api, 2)
    check(pages >= 2, f"the events span several pages of 2 ({pages})")
    check(len({e.id for e in events}) == len(events), "no event is listed twice")
    newest = events[0]
    check(newest.type_ == SecurityEventType.DEVICE_UNTRUSTED, f"the newest event is the untrust ({newest.type_})")
    check(newest.device_id == target.id and newest.device_name == target.device_name, "the untrust event names the device")
    check(newest.actor_session_id == own_session.id, "the untrust event names this session as its actor")
    check(
        newest.revoked_session_count == len(target_session_ids),
        f"the untrust event counts the revoked sessions ({newest.revoked_session_count})",
    )
    check(
        any(e.type_ == SecurityEventType.SESSION_STARTED and e.session_id == own_session.id for e in events),
        "this session's sign-in is listed",
    )
    print(f"listSecurityEvents: {len(events)} events in {pages} pages, newest {newest.type_.value}")

    # 7. A token of the untrusted device is refused, with the typed error body.
    target_token = os.environ.get("TARGET_TOKEN", "")
    if target_token:
        refused = list_sessions.sync_detailed(client=client(base_url, target_token))
        check(refused.status_code == HTTPStatus.UNAUTHORIZED, f"the untrusted device's token answered {refused.status_code}")
        check(isinstance(refused.parsed, ErrorResponse), f"401 parsed as {type(refused.parsed).__name__}")
        assert isinstance(refused.parsed, ErrorResponse)
        check(refused.parsed.success is False and bool(refused.parsed.error), "401 carries an ErrorResponse")
        check(refused.headers.get("WWW-Authenticate", "").startswith("Bearer"), "401 carries WWW-Authenticate: Bearer")
        print(f"the untrusted device's token: 401 {refused.parsed.to_dict()}")

    # 8. getMetrics: a text body (the Prometheus format), the untrust counted.
    metrics = get_metrics.sync_detailed(client=api)
    check(metrics.status_code == HTTPStatus.OK, f"getMetrics answered {metrics.status_code}")
    check(isinstance(metrics.parsed, str), f"getMetrics parsed as {type(metrics.parsed).__name__}, not str")
    assert isinstance(metrics.parsed, str)
    check(metrics.headers.get("Content-Type", "").startswith("text/plain"), "getMetrics is text/plain")
    series = 'flashback_http_requests_total{operation_id="untrustDevice",status_class="2xx"} '
    untrusts = [float(line[len(series):]) for line in metrics.parsed.splitlines() if line.startswith(series)]
    check(untrusts != [] and untrusts[0] >= 1, f"getMetrics counts the untrust: {untrusts}")
    print(f"getMetrics: {len(metrics.parsed.splitlines())} lines of text; untrustDevice 2xx = {untrusts[0]:g}")

    # 8. The sign-in service: createSession with the service key, then the
    # returned token used as the new user's own, then revokeUserSessions.
    platform = client(base_url, env("SERVICE_KEY"))
    user = f"py-signin-{int(datetime.datetime.now().timestamp() * 1000)}"
    signed_in = create_session.sync_detailed(
        client=platform,
        body=CreateSessionRequest(
            user_id=user,
            device=SignInDevice(fingerprint="fp-py-signin", device_name="Py laptop", device_type=DeviceType.MOBILE),
            ip_address="127.0.0.1",
            ttl_seconds=3600,
        ),
    )
    check(signed_in.status_code == HTTPStatus.CREATED, f"createSession answered {signed_in.status_code}")
    created = signed_in.parsed
    check(isinstance(created, CreateSessionResponse), f"createSession parsed as {type(created).__name__}")
    assert isinstance(created, CreateSessionResponse)
    no_extras(created, "createSession body")
    check(created.new_device is True and created.device.device_type == DeviceType.MOBILE, "createSession: a new mobile device")
    own = devices_of(client(base_url, created.token))
    check(len(own) == 1 and own[0].id == created.device.id and own[0].is_current, "the new token lists its own device")
    revoked = revoke_user_sessions.sync_detailed(user, client=platform)
    check(revoked.status_code == HTTPStatus.OK, f"revokeUserSessions answered {revoked.status_code}")
    check(getattr(revoked.parsed, "revoked_count", None) == 1, f"revokeUserSessions: {revoked.parsed}")
    gone = list_sessions.sync_detailed(client=client(base_url, created.token))
    check(gone.status_code == HTTPStatus.UNAUTHORIZED, f"the revoked token answered {gone.status_code}")
    print(f"createSession: {user} signed in on {created.device.id}; revokeUserSessions ended it")

    print("python roundtrip: OK")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as failure:
        print(failure, file=sys.stderr)
        sys.exit(1)
