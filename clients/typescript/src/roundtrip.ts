// Round trip through the typed client generated from openapi/openapi.yaml:
// ask which session and device the token is (getCurrentSession), list
// devices ("this device" marked), untrust a device other than the token's
// own, list sessions, keep the own session alive (sessionHeartbeat), read
// the security events page by page, and check the
// typed results; then read the metrics (a text body) and find the untrust
// counted. Exits non-zero on the first failed check.
//
// Environment:
//   API_BASE_URL   e.g. http://127.0.0.1:8080 (required)
//   API_TOKEN      a bearer token (required); its own device is never untrusted
//   OWN_DEVICE_ID  the token's own device id (required)
//   TARGET_TOKEN   optional: a token of a session on the device to untrust,
//                  which must be refused (401) afterwards
//   SERVICE_KEY    a service key (required): a sign-in through createSession,
//                  whose token then lists the new user's devices
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type Device = components["schemas"]["Device"];
type DeviceDetails = components["schemas"]["DeviceDetails"];
type Session = components["schemas"]["Session"];
type TrustLevel = components["schemas"]["TrustLevel"];
type ErrorResponse = components["schemas"]["ErrorResponse"];
type SecurityEvent = components["schemas"]["SecurityEvent"];
type SecurityEventType = components["schemas"]["SecurityEventType"];

const TRUST_LEVELS: readonly TrustLevel[] = ["HIGH", "MEDIUM", "LOW", "UNKNOWN"];
const EVENT_TYPES: readonly SecurityEventType[] = [
  "SESSION_STARTED",
  "DEVICE_TRUSTED",
  "DEVICE_UNTRUSTED",
  "DEVICE_REMOVED",
  "SESSION_REVOKED",
  "ALL_SESSIONS_REVOKED",
  "OTHER_SESSIONS_REVOKED",
  "NEW_DEVICE_SIGN_IN",
  "DEVICE_RENAMED",
  "USER_DATA_DELETED",
];

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} must be set`);
  }
  return value;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

function isDateTime(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value));
}

function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  };
}

function client(baseUrl: string, token: string) {
  const api = createClient<paths>({ baseUrl });
  api.use(bearer(token));
  return api;
}

type EventPage = components["schemas"]["SecurityEventListResponse"];

/** One page of listSecurityEvents: the first one, or the one after `cursor`. */
async function eventsPage(api: ReturnType<typeof client>, limit: number, cursor: string | null): Promise<EventPage> {
  const query = cursor === null ? { limit } : { limit, cursor };
  const page = await api.GET("/security-events", { params: { query } });
  check(page.response.status === 200, `GET /security-events answered ${page.response.status}`);
  check(page.data !== undefined, "listSecurityEvents has a 200 body");
  return page.data;
}

async function main(): Promise<void> {
  const baseUrl = env("API_BASE_URL");
  const ownDeviceId = env("OWN_DEVICE_ID");
  const api = client(baseUrl, env("API_TOKEN"));

  // 0. getCurrentSession: the token's own session, on its own device.
  const current = await api.GET("/sessions/current");
  check(current.response.status === 200, `GET /sessions/current answered ${current.response.status}`);
  check(current.data !== undefined, "getCurrentSession has a 200 body");
  const ownSession: Session = current.data.session;
  const ownDevice: Device = current.data.device;
  check(ownSession.isCurrent === true, "getCurrentSession: session.isCurrent");
  check(ownSession.deviceId === ownDeviceId, `getCurrentSession: session.deviceId is the own device (${ownSession.deviceId})`);
  check(ownDevice.id === ownDeviceId && ownDevice.isCurrent === true, "getCurrentSession: device is this device");
  console.log(`getCurrentSession: session ${ownSession.id} on "${ownDevice.deviceName}" (${ownDevice.id})`);

  // 1. listDevices
  const listed = await api.GET("/devices");
  check(listed.response.status === 200, `GET /devices answered ${listed.response.status}`);
  check(listed.data !== undefined, "GET /devices has a 200 body");
  const devices: Device[] = listed.data.devices;
  check(listed.data.success, "listDevices success is true");
  check(devices.length >= 2, `at least two devices (got ${devices.length})`);
  for (const d of devices) {
    check(isDateTime(d.lastSeen) && isDateTime(d.createdAt), `device ${d.id} has date-times`);
    check(TRUST_LEVELS.includes(d.trustLevel), `device ${d.id} trustLevel ${d.trustLevel}`);
  }
  check(devices.some((d) => d.id === ownDeviceId), "the token's own device is listed");
  const marked = devices.filter((d) => d.isCurrent);
  check(marked.length === 1 && marked[0]?.id === ownDeviceId, "listDevices: exactly the own device has isCurrent");
  const target = devices.find((d) => d.id !== ownDeviceId && d.isTrusted) ?? devices.find((d) => d.id !== ownDeviceId);
  check(target !== undefined, "a device other than the token's own");
  console.log(`listDevices: ${devices.length} devices; untrusting "${target.deviceName}" (${target.id}, isTrusted=${target.isTrusted})`);

  // The target's active sessions, before.
  const before = await api.GET("/devices/{id}", { params: { path: { id: target.id } } });
  check(before.data !== undefined, `GET /devices/${target.id} answered ${before.response.status}`);
  const targetSessionIds = before.data.device.sessions.map((s) => s.id);
  check(targetSessionIds.length > 0, "the target device has an active session before untrust");
  const sessionsBefore = await api.GET("/sessions");
  check(sessionsBefore.data !== undefined, `GET /sessions answered ${sessionsBefore.response.status}`);
  check(
    targetSessionIds.every((id) => sessionsBefore.data.sessions.some((s) => s.id === id)),
    "the target's sessions are listed before untrust",
  );

  // 2. untrustDevice
  const untrusted = await api.POST("/devices/{id}/untrust", { params: { path: { id: target.id } } });
  check(untrusted.response.status === 200, `POST /devices/{id}/untrust answered ${untrusted.response.status}`);
  check(untrusted.data !== undefined, "untrustDevice has a 200 body");
  check(untrusted.data.success === true, "untrustDevice success is true");
  check(untrusted.data.message === "Device untrusted successfully", `untrustDevice message: ${untrusted.data.message}`);
  console.log(`untrustDevice: ${JSON.stringify(untrusted.data)}`);

  // 3. listSessions: the target's sessions are gone, the caller's own remains.
  const sessions = await api.GET("/sessions");
  check(sessions.data !== undefined, `GET /sessions answered ${sessions.response.status}`);
  const active: Session[] = sessions.data.sessions;
  for (const s of active) {
    check(isDateTime(s.startedAt) && isDateTime(s.lastActivity) && isDateTime(s.expiresAt), `session ${s.id} has date-times`);
    check(Date.parse(s.expiresAt) > Date.now(), `session ${s.id} is not expired`);
  }
  const currentOnes = active.filter((s) => s.isCurrent);
  check(currentOnes.length === 1 && currentOnes[0]?.id === ownSession.id, "listSessions: exactly the own session has isCurrent");
  const leftOver = active.filter((s) => targetSessionIds.includes(s.id));
  check(leftOver.length === 0, `the untrusted device's sessions are gone (left: ${leftOver.map((s) => s.id).join(", ")})`);
  check(active.length > 0, "the caller's own session is still active");
  console.log(`listSessions: ${active.length} active; none of ${targetSessionIds.length} on "${target.deviceName}"`);

  // 4. The device shows isTrusted false, with no trust expiry and no sessions.
  const after = await api.GET("/devices/{id}", { params: { path: { id: target.id } } });
  check(after.data !== undefined, `GET /devices/${target.id} answered ${after.response.status}`);
  const details: DeviceDetails = after.data.device;
  check(details.isTrusted === false, "getDevice: isTrusted is false");
  check(details.trustExpiresAt === null, `getDevice: trustExpiresAt is null (got ${details.trustExpiresAt})`);
  check(details.sessions.length === 0, "getDevice: no active session");
  const relisted = await api.GET("/devices");
  check(relisted.data !== undefined, `GET /devices answered ${relisted.response.status}`);
  const again = relisted.data.devices.find((d) => d.id === target.id);
  check(again !== undefined && again.isTrusted === false, "listDevices: the device shows isTrusted false");
  console.log(`getDevice: isTrusted=${details.isTrusted} trustLevel=${details.trustLevel} trustExpiresAt=${details.trustExpiresAt}`);

  // 5. sessionHeartbeat on the caller's own session moves its expiry forward.
  const beat = await api.POST("/sessions/{id}/heartbeat", { params: { path: { id: ownSession.id } } });
  check(beat.response.status === 200, `POST /sessions/{id}/heartbeat answered ${beat.response.status}`);
  check(beat.data !== undefined, "sessionHeartbeat has a 200 body");
  check(isDateTime(beat.data.newExpiry), "sessionHeartbeat: newExpiry is a date-time");
  check(Date.parse(beat.data.newExpiry) >= Date.parse(ownSession.expiresAt), "sessionHeartbeat: newExpiry moves forward");
  console.log(`sessionHeartbeat: new expiry ${beat.data.newExpiry}`);

  // 6. listSecurityEvents, two at a time, following nextCursor to the end.
  const events: SecurityEvent[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: EventPage = await eventsPage(api, 2, cursor);
    check(page.events.length <= 2, `a page holds at most limit events (${page.events.length})`);
    events.push(...page.events);
    pages += 1;
    cursor = page.nextCursor;
  } while (cursor !== null);
  check(pages >= 2, `the events span several pages of 2 (${pages})`);
  check(new Set(events.map((e) => e.id)).size === events.length, "no event is listed twice");
  for (const e of events) {
    check(EVENT_TYPES.includes(e.type), `event ${e.id} type ${e.type}`);
    check(isDateTime(e.occurredAt), `event ${e.id} occurredAt is a date-time`);
    check(Number.isInteger(e.revokedSessionCount) && e.revokedSessionCount >= 0, `event ${e.id} revokedSessionCount`);
  }
  const untrustEvent = events[0];
  check(untrustEvent !== undefined, "there are events");
  check(untrustEvent.type === "DEVICE_UNTRUSTED", `the newest event is the untrust (${untrustEvent.type})`);
  check(untrustEvent.deviceId === target.id && untrustEvent.deviceName === target.deviceName, "the untrust event names the device");
  check(untrustEvent.actorSessionId === ownSession.id, "the untrust event names this session as its actor");
  check(untrustEvent.revokedSessionCount === targetSessionIds.length, `the untrust event counts the revoked sessions (${untrustEvent.revokedSessionCount})`);
  check(events.some((e) => e.type === "SESSION_STARTED" && e.sessionId === ownSession.id), "this session's sign-in is listed");
  console.log(`listSecurityEvents: ${events.length} events in ${pages} pages, newest ${untrustEvent.type}`);

  // 7. A token of the untrusted device is refused, with the typed error body.
  const targetToken = process.env["TARGET_TOKEN"];
  if (targetToken !== undefined && targetToken !== "") {
    const refused = await client(baseUrl, targetToken).GET("/sessions");
    check(refused.response.status === 401, `the untrusted device's token answered ${refused.response.status}`);
    const error: ErrorResponse | undefined = refused.error;
    check(error !== undefined && error.success === false && error.error.length > 0, "401 carries an ErrorResponse");
    check(
      (refused.response.headers.get("WWW-Authenticate") ?? "").startsWith("Bearer"),
      "401 carries WWW-Authenticate: Bearer",
    );
    console.log(`the untrusted device's token: 401 ${JSON.stringify(error)}`);
  }

  // 8. getMetrics: a text body (the Prometheus format), the untrust counted.
  const metrics = await api.GET("/metrics", { parseAs: "text" });
  check(metrics.response.status === 200, `GET /metrics answered ${metrics.response.status}`);
  const text: string | undefined = metrics.data;
  check(typeof text === "string", "getMetrics has a text body");
  check((metrics.response.headers.get("Content-Type") ?? "").startsWith("text/plain"), "getMetrics is text/plain");
  const series = 'flashback_http_requests_total{operation_id="untrustDevice",status_class="2xx"} ';
  const untrusts = text
    .split("\n")
    .filter((line) => line.startsWith(series))
    .map((line) => Number(line.slice(series.length)));
  check(untrusts.length === 1 && untrusts[0]! >= 1, `getMetrics counts the untrust: ${JSON.stringify(untrusts)}`);
  console.log(`getMetrics: ${text.split("\n").length} lines of text; untrustDevice 2xx = ${untrusts[0]}`);

  // 8. The sign-in service: createSession with the service key, then the
  // returned token used as the new user's own (listDevices, renameDevice),
  // then revokeUserSessions ends it.
  const platform = client(baseUrl, env("SERVICE_KEY"));
  const user = `ts-signin-${Date.now()}`;
  const signedIn = await platform.POST("/platform/sessions", {
    body: {
      userId: user,
      device: { fingerprint: "fp-ts-signin", deviceName: "TS laptop", deviceType: "DESKTOP", os: "Linux", browser: "Firefox" },
      ipAddress: "127.0.0.1",
      loginMethod: "password",
      ttlSeconds: 3600,
      trustDevice: true,
    },
  });
  check(signedIn.response.status === 201, `POST /platform/sessions answered ${signedIn.response.status}`);
  check(signedIn.data !== undefined, "createSession has a 201 body");
  const created = signedIn.data;
  check(created.newDevice === true, "createSession: a new device");
  check(created.device.isTrusted === true && created.device.trustExpiresAt !== null, "createSession: the device is trusted");
  const userApi = client(baseUrl, created.token);
  const own = await userApi.GET("/devices");
  check(own.data !== undefined, `GET /devices with the new token answered ${own.response.status}`);
  check(own.data.devices.length === 1 && own.data.devices[0]?.id === created.device.id, "the new token lists its device");
  check(own.data.devices[0]?.isCurrent === true, "the new token's device is this device");
  const renamed = await userApi.PATCH("/devices/{id}", {
    params: { path: { id: created.device.id } },
    body: { deviceName: "My TS laptop" },
  });
  check(renamed.data !== undefined && renamed.data.device.deviceName === "My TS laptop", `renameDevice answered ${renamed.response.status}`);
  const revokedAll = await platform.POST("/platform/users/{userId}/sessions/revoke-all", {
    params: { path: { userId: user } },
  });
  check(revokedAll.data !== undefined && revokedAll.data.revokedCount === 1, `revokeUserSessions answered ${revokedAll.response.status}`);
  const gone = await userApi.GET("/devices");
  check(gone.response.status === 401, `the revoked token answered ${gone.response.status}`);
  console.log(`createSession: ${user} signed in on ${created.device.id}, renamed, then revokeUserSessions: ${revokedAll.data.revokedCount}`);

  console.log("typescript roundtrip: OK");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
