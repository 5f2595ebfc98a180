import type { components } from "../generated/api.js";
import type { Equal, Expect } from "../check/assert.js";
import { receiver, revocations, type Delivery } from "./receiver.js";

type SecurityEventWebhook = components["schemas"]["SecurityEventWebhook"];
// The generated webhook body is a Delivery, with these fields exactly as the spec types them.
const asDelivery = (event: SecurityEventWebhook): Delivery => event;
export type Exact = [
  Expect<Equal<SecurityEventWebhook["type"], Delivery["type"]>>,
  Expect<Equal<SecurityEventWebhook["data"]["sessionId"], string | null>>,
  Expect<Equal<SecurityEventWebhook["data"]["userId"], string>>,
  Expect<Equal<SecurityEventWebhook["data"]["revokedSessionCount"], number>>,
];
export const server = receiver(
  (body) => body as SecurityEventWebhook,
  (event) => console.log(event.data.userId, event.timestamp, revocations(asDelivery(event))),
);
