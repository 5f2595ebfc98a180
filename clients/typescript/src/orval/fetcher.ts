// The fetch function orval's generated client calls (`override.mutator` in
// orval.config.mjs): the generated functions know paths only, so the base
// URL and the bearer token are set here once, as an application would.
let baseUrl = "";
let token = "";

export function configure(options: { baseUrl: string; token: string }): void {
  baseUrl = options.baseUrl;
  token = options.token;
}

export async function apiFetch<T>(url: string, init: RequestInit): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(`${baseUrl}${url}`, { ...init, headers });
  const text = [204, 205, 304].includes(response.status) ? "" : await response.text();
  const type = response.headers.get("content-type") ?? "";
  const data: unknown = text !== "" && type.includes("json") ? JSON.parse(text) : text;
  // The shape orval's fetch client declares for every response: { data, status, headers }.
  return { data, status: response.status, headers: response.headers } as T;
}
