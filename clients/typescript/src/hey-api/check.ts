// @hey-api/openapi-ts: no `any` in the body types or the operations'
// response maps, and the fields typed as the spec says.
import type * as H from "../generated/hey-api/types.gen.js";
import type { AllTrue, BodyFacts, ExpectFalse, HasAny } from "../check/assert.js";

export type Checks = [
  ExpectFalse<HasAny<H.DeviceListResponse | H.DeviceDetailsResponse | H.SessionListResponse>>,
  ExpectFalse<HasAny<H.CurrentSessionResponse | H.SecurityEventListResponse | H.TrustDeviceResponse>>,
  ExpectFalse<HasAny<H.SessionHeartbeatResponse | H.MessageResponse | H.RevokeOtherSessionsResponse>>,
  ExpectFalse<HasAny<H.HealthResponse | H.ErrorResponse | H.TrustDeviceRequest | H.SecurityEventWebhook>>,
  ExpectFalse<HasAny<H.ListDevicesResponses | H.GetDeviceResponses | H.UntrustDeviceResponses>>,
  ExpectFalse<HasAny<H.SessionHeartbeatResponses | H.GetCurrentSessionResponses | H.ListSecurityEventsResponses>>,
  ExpectFalse<HasAny<H.ListDevicesErrors | H.GetDeviceErrors | H.ListSecurityEventsErrors>>,
];

export const facts: AllTrue = null as unknown as BodyFacts<H.Device, H.SecurityEvent, H.SecurityEventListResponse>;
