// A webhook receiver, written once for the `SecurityEventWebhook` type of
// each TypeScript generator (the files beside this one): it must type-check
// against each of them, which holds only while every generator reaches the
// webhook's schema (from `components`: openapi-typescript does not generate
// `webhooks` itself) and types it as the spec says. Verification of the
// signature is the standardwebhooks library's (.ci/webhooks.sh).
import { createServer, type Server } from "node:http";

/** What a receiver needs of a delivery, as the spec types it. */
export interface Delivery {
  type:
    | "SESSION_STARTED"
    | "DEVICE_TRUSTED"
    | "DEVICE_UNTRUSTED"
    | "DEVICE_REMOVED"
    | "SESSION_REVOKED"
    | "ALL_SESSIONS_REVOKED"
    | "OTHER_SESSIONS_REVOKED"
    | "NEW_DEVICE_SIGN_IN"
    | "DEVICE_RENAMED"
    | "USER_DATA_DELETED";
  timestamp: string;
  data: {
    id: string;
    userId: string;
    deviceId: string | null;
    sessionId: string | null;
    revokedSessionCount: number;
  };
}

/** What a service that caches sessions does with each event. */
export function revocations(event: Delivery): string[] {
  switch (event.type) {
    case "DEVICE_UNTRUSTED":
    case "DEVICE_REMOVED":
      return event.data.deviceId === null ? [] : [`device:${event.data.deviceId}`];
    case "SESSION_REVOKED":
      return event.data.sessionId === null ? [] : [`session:${event.data.sessionId}`];
    case "ALL_SESSIONS_REVOKED":
    case "OTHER_SESSIONS_REVOKED":
    case "USER_DATA_DELETED":
      return [`user:${event.data.userId}`];
    case "SESSION_STARTED":
    case "NEW_DEVICE_SIGN_IN":
    case "DEVICE_TRUSTED":
    case "DEVICE_RENAMED":
      return [];
    default: {
      const unknown: never = event.type;
      return unknown;
    }
  }
}

/** An HTTP receiver that hands each JSON body, typed W, to `handle`. */
export function receiver<W>(parse: (body: unknown) => W, handle: (event: W) => void): Server {
  return createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      handle(parse(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
      response.writeHead(204).end();
    });
  });
}
