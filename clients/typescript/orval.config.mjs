// orval: a fetch client from the served 3.1 document (.ci/clients.sh sets
// OPENAPI_DOCUMENT to the file it saved from /api-docs/openapi.json).
export default {
  flashback: {
    input: { target: process.env.OPENAPI_DOCUMENT },
    output: {
      target: "src/generated/orval/api.ts",
      client: "fetch",
      mode: "single",
      override: { mutator: { path: "src/orval/fetcher.ts", name: "apiFetch" } },
    },
  },
};
