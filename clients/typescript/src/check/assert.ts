// Type-level assertions for the generated types: `tsc` fails, naming the
// line, when a body type holds `any` anywhere or a field's type is not the
// one the spec gives it.

/** true when T is `any`. */
export type IsAny<T> = 0 extends 1 & T ? true : false;

/** true when T is `any` or holds `any` in any property or element, however deep. */
export type HasAny<T> =
  IsAny<T> extends true
    ? true
    : T extends readonly (infer U)[]
      ? HasAny<U>
      : T extends object
        ? true extends { [K in keyof T]-?: HasAny<T[K]> }[keyof T]
          ? true
          : false
        : false;

/** Exact type equality (not mutual assignability, which `any` passes). */
export type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

export type Expect<T extends true> = T;
export type ExpectFalse<T extends false> = T;

/** What the spec says of the fields every generator must type exactly. */
export type DeviceTypeUnion = "DESKTOP" | "MOBILE" | "TABLET";
export type TrustLevelUnion = "HIGH" | "MEDIUM" | "LOW" | "UNKNOWN";
export type SecurityEventTypeUnion =
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

/**
 * The facts of one generator's body types, given them by name; assign it to
 * `AllTrue` (as the check files do) and tsc names any field that is false.
 */
export type BodyFacts<
  Device extends { ipAddress: unknown; trustExpiresAt: unknown; isCurrent: unknown; deviceType: unknown; trustLevel: unknown },
  SecurityEvent extends { type: unknown; deviceId: unknown },
  EventPage extends { nextCursor: unknown },
> = {
  deviceIpAddressIsStringOrNull: Equal<Device["ipAddress"], string | null>;
  deviceTrustExpiresAtIsStringOrNull: Equal<Device["trustExpiresAt"], string | null>;
  deviceIsCurrentIsBoolean: Equal<Device["isCurrent"], boolean>;
  deviceTypeIsTheUnionOfItsValues: Equal<Device["deviceType"], DeviceTypeUnion>;
  trustLevelIsTheUnionOfItsValues: Equal<Device["trustLevel"], TrustLevelUnion>;
  securityEventTypeIsTheUnionOfItsValues: Equal<SecurityEvent["type"], SecurityEventTypeUnion>;
  securityEventDeviceIdIsStringOrNull: Equal<SecurityEvent["deviceId"], string | null>;
  nextCursorIsStringOrNull: Equal<EventPage["nextCursor"], string | null>;
};

export type AllTrue = { [K in keyof BodyFacts<never, never, never>]: true };

// The helpers themselves: `any` anywhere is found, its absence is not.
export type SelfTest = [
  Expect<HasAny<{ a: { b: any[] } }>>,
  Expect<HasAny<{ a: string | any }>>,
  ExpectFalse<HasAny<{ a: { b: string[] | null }; c: boolean }>>,
  ExpectFalse<Equal<any, string>>,
];
