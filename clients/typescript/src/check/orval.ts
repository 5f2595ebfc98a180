// orval: no `any` in the body types or in what the operations resolve to,
// and the fields typed as the spec says.
import type * as O from "../generated/orval/api.js";
import type { AllTrue, BodyFacts, ExpectFalse, HasAny } from "./assert.js";

export type Checks = [
  ExpectFalse<HasAny<O.DeviceListResponse | O.DeviceDetailsResponse | O.SessionListResponse>>,
  ExpectFalse<HasAny<O.CurrentSessionResponse | O.SecurityEventListResponse | O.TrustDeviceResponse>>,
  ExpectFalse<HasAny<O.SessionHeartbeatResponse | O.MessageResponse | O.RevokeOtherSessionsResponse>>,
  ExpectFalse<HasAny<O.HealthResponse | O.ErrorResponse | O.TrustDeviceRequest | O.SecurityEventWebhook>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.listDevices>>["data"]>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.getDevice>>["data"]>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.untrustDevice>>["data"]>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.sessionHeartbeat>>["data"]>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.getCurrentSession>>["data"]>>,
  ExpectFalse<HasAny<Awaited<ReturnType<typeof O.listSecurityEvents>>["data"]>>,
];

export const facts: AllTrue = null as unknown as BodyFacts<O.Device, O.SecurityEvent, O.SecurityEventListResponse>;
