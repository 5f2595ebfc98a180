// Round trip through @hey-api/openapi-ts's fetch client (generated from the
// served 3.1 document): getCurrentSession, listDevices, getDevice,
// untrustDevice on a device other than the token's own, sessionHeartbeat,
// two pages of listSecurityEvents; then a sign-in through createSession with
// the service key (SERVICE_KEY), whose token lists its user's one device.
import { check, env, run } from "../common/env.js";
import { client } from "../generated/hey-api/client.gen.js";
import * as sdk from "../generated/hey-api/sdk.gen.js";
import type { Device, SecurityEventType, Session } from "../generated/hey-api/types.gen.js";

run("@hey-api/openapi-ts", async () => {
  const token = env("API_TOKEN");
  client.setConfig({ baseUrl: env("API_BASE_URL"), auth: () => token });
  const ownDeviceId = env("OWN_DEVICE_ID");
  // throwOnError: a documented error becomes an exception naming its status.
  const opts = { throwOnError: true } as const;

  const current = await sdk.getCurrentSession(opts);
  const session: Session = current.data.session;
  check(session.isCurrent && current.data.device.id === ownDeviceId, "getCurrentSession: this session on this device");

  const devices: Device[] = (await sdk.listDevices(opts)).data.devices;
  check(devices.filter((d) => d.isCurrent).map((d) => d.id).join() === ownDeviceId, "listDevices: only the own device is current");
  const target = devices.find((d) => d.id !== ownDeviceId && d.isTrusted);
  check(target !== undefined, "listDevices: a trusted device other than the token's own");
  const expires: string | null = target.trustExpiresAt;
  check(expires !== null, "listDevices: a trusted device has trustExpiresAt");
  console.log(`listDevices: ${devices.length} devices; untrusting "${target.deviceName}" (${target.id})`);

  const details = await sdk.getDevice({ ...opts, path: { id: target.id } });
  check(details.data.device.sessions.length > 0, "getDevice: the target has an active session");

  const untrusted = await sdk.untrustDevice({ ...opts, path: { id: target.id } });
  check(untrusted.data.message === "Device untrusted successfully", `untrustDevice: ${untrusted.data.message}`);
  const after = (await sdk.getDevice({ ...opts, path: { id: target.id } })).data.device;
  check(!after.isTrusted && after.trustExpiresAt === null && after.sessions.length === 0, "getDevice: untrusted, no trust expiry, no session");

  const beat = await sdk.sessionHeartbeat({ ...opts, path: { id: session.id } });
  check(Date.parse(beat.data.newExpiry) >= Date.parse(session.expiresAt), "sessionHeartbeat: newExpiry moves forward");

  const first = (await sdk.listSecurityEvents({ ...opts, query: { limit: 2 } })).data;
  const newest: SecurityEventType | undefined = first.events[0]?.type;
  check(newest === "DEVICE_UNTRUSTED", `listSecurityEvents: the newest event is the untrust (${newest})`);
  const cursor = first.nextCursor;
  check(first.events.length === 2 && cursor !== null, "listSecurityEvents: a full first page with nextCursor");
  const second = (await sdk.listSecurityEvents({ ...opts, query: { limit: 2, cursor } })).data;
  const firstIds = new Set(first.events.map((e) => e.id));
  check(second.events.length > 0 && second.events.every((e) => !firstIds.has(e.id)), "listSecurityEvents: a second page, no event twice");
  console.log(`listSecurityEvents: ${first.events.length} + ${second.events.length} events on two pages`);

  const key = env("SERVICE_KEY");
  client.setConfig({ auth: () => key });
  const user = `hey-api-sign-in-${Date.now()}`;
  const created = (
    await sdk.createSession({ ...opts, body: { userId: user, device: { fingerprint: "fp-hey-api", deviceName: "Hey API laptop" } } })
  ).data;
  check(created.newDevice && created.session.deviceId === created.device.id, "createSession: a new device and its session");
  client.setConfig({ auth: () => created.token });
  const mine: Device[] = (await sdk.listDevices(opts)).data.devices;
  check(mine.length === 1 && mine[0]?.isCurrent === true, "listDevices with the new token: its one device, current");
  console.log(`createSession: ${user} signed in on ${created.device.id}; its token lists its device`);
});
