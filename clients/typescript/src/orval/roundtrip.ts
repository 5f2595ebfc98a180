// Round trip through orval's fetch client (generated from the served 3.1
// document): getCurrentSession, listDevices, getDevice, untrustDevice on a
// device other than the token's own, sessionHeartbeat, two pages of
// listSecurityEvents; then a sign-in through createSession with the service
// key (SERVICE_KEY), whose token lists its user's one device.
import { check, env, run } from "../common/env.js";
import * as api from "../generated/orval/api.js";
import { configure } from "./fetcher.js";

run("orval", async () => {
  configure({ baseUrl: env("API_BASE_URL"), token: env("API_TOKEN") });
  const ownDeviceId = env("OWN_DEVICE_ID");

  const current = await api.getCurrentSession();
  check(current.status === 200, `getCurrentSession answered ${current.status}`);
  const session: api.Session = current.data.session;
  check(session.isCurrent && current.data.device.id === ownDeviceId, "getCurrentSession: this session on this device");

  const listed = await api.listDevices();
  check(listed.status === 200, `listDevices answered ${listed.status}`);
  const devices: api.Device[] = listed.data.devices;
  check(devices.filter((d) => d.isCurrent).map((d) => d.id).join() === ownDeviceId, "listDevices: only the own device is current");
  const target = devices.find((d) => d.id !== ownDeviceId && d.isTrusted);
  check(target !== undefined, "listDevices: a trusted device other than the token's own");
  const expires: string | null = target.trustExpiresAt;
  check(expires !== null, "listDevices: a trusted device has trustExpiresAt");
  console.log(`listDevices: ${devices.length} devices; untrusting "${target.deviceName}" (${target.id})`);

  const details = await api.getDevice(target.id);
  check(details.status === 200, `getDevice answered ${details.status}`);
  check(details.data.device.sessions.length > 0, "getDevice: the target has an active session");

  const untrusted = await api.untrustDevice(target.id);
  check(untrusted.status === 200, `untrustDevice answered ${untrusted.status}`);
  check(untrusted.data.message === "Device untrusted successfully", `untrustDevice: ${untrusted.data.message}`);
  const after = await api.getDevice(target.id);
  check(after.status === 200, `getDevice answered ${after.status}`);
  check(!after.data.device.isTrusted && after.data.device.trustExpiresAt === null, "getDevice: untrusted, trustExpiresAt null");
  check(after.data.device.sessions.length === 0, "getDevice: no session left on the untrusted device");

  const beat = await api.sessionHeartbeat(session.id);
  check(beat.status === 200, `sessionHeartbeat answered ${beat.status}`);
  check(Date.parse(beat.data.newExpiry) >= Date.parse(session.expiresAt), "sessionHeartbeat: newExpiry moves forward");

  const first = await api.listSecurityEvents({ limit: 2 });
  check(first.status === 200, `listSecurityEvents answered ${first.status}`);
  const newest: api.SecurityEventType | undefined = first.data.events[0]?.type;
  check(newest === "DEVICE_UNTRUSTED", `listSecurityEvents: the newest event is the untrust (${newest})`);
  const cursor = first.data.nextCursor;
  check(first.data.events.length === 2 && cursor !== null, "listSecurityEvents: a full first page with nextCursor");
  const second = await api.listSecurityEvents({ limit: 2, cursor });
  check(second.status === 200, `listSecurityEvents answered ${second.status}`);
  const firstIds = new Set(first.data.events.map((e) => e.id));
  check(second.data.events.length > 0 && second.data.events.every((e) => !firstIds.has(e.id)), "listSecurityEvents: a second page, no event twice");
  console.log(`listSecurityEvents: ${first.data.events.length} + ${second.data.events.length} events on two pages`);

  configure({ baseUrl: env("API_BASE_URL"), token: env("SERVICE_KEY") });
  const user = `orval-sign-in-${Date.now()}`;
  const signedIn = await api.createSession({ userId: user, device: { fingerprint: "fp-orval", deviceName: "Orval laptop" } });
  check(signedIn.status === 201, `createSession answered ${signedIn.status}`);
  const created = signedIn.data;
  check(created.newDevice && created.session.deviceId === created.device.id, "createSession: a new device and its session");
  configure({ baseUrl: env("API_BASE_URL"), token: created.token });
  const mine = await api.listDevices();
  check(mine.status === 200, `listDevices with the new token answered ${mine.status}`);
  check(mine.data.devices.length === 1 && mine.data.devices[0]?.isCurrent === true, "listDevices with the new token: its one device, current");
  console.log(`createSession: ${user} signed in on ${created.device.id}; its token lists its device`);
});
