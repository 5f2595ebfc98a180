// openapi-typescript: no `any` in the body types, and the fields typed as the spec says.
import type { components, paths } from "../generated/api.js";
import type { AllTrue, BodyFacts, Expect, ExpectFalse, HasAny } from "./assert.js";

type S = components["schemas"];
type Json<P extends keyof paths, M extends keyof paths[P], Status extends number> = paths[P][M] extends {
  responses: { [K in Status]: { content: { "application/json": infer B } } };
}
  ? B
  : never;

export type Checks = [
  ExpectFalse<HasAny<S[keyof S]>>,
  ExpectFalse<HasAny<Json<"/devices", "get", 200>>>,
  ExpectFalse<HasAny<Json<"/devices/{id}", "get", 200>>>,
  ExpectFalse<HasAny<Json<"/sessions/current", "get", 200>>>,
  ExpectFalse<HasAny<Json<"/security-events", "get", 200>>>,
  Expect<[Json<"/devices", "get", 200>] extends [never] ? false : true>,
];

export const facts: AllTrue = null as unknown as BodyFacts<S["Device"], S["SecurityEvent"], S["SecurityEventListResponse"]>;
