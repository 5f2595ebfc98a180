// Drives the server's Swagger UI in Debian's Chromium as a person would:
// checks that every operation of the served spec is listed, that Authorize
// offers both schemes, authorizes with the service key, signs the user in
// with "Try it out" → "Execute" on POST /platform/sessions (createSession, on
// the device of OWN_DEVICE_ID, by its fingerprint), authorizes with the token
// that returned, runs "Try it out" → "Execute" on POST /devices/{id}/untrust
// for a device other than the token's own, reads the 200 body from the
// response panel, checks through the API that the device is untrusted, and
// saves a screenshot of the operation. Exits non-zero on the first failure.
//
// Environment:
//   API_BASE_URL    e.g. http://127.0.0.1:8080 (required; loopback only)
//   API_TOKEN       a bearer token (required)
//   OWN_DEVICE_ID   the token's own device id (required; never untrusted)
//   OWN_USER_ID     that device's user (required)
//   OWN_FINGERPRINT that device's fingerprint (required)
//   SERVICE_KEY     a service key (required), for createSession
//   SCREENSHOT      where to save the PNG (default: swagger-ui-untrust.png)
//   CHROMIUM        the browser (default: /usr/bin/chromium)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const EXPECTED_BODY = { success: true, message: "Device untrusted successfully" };
const TIMEOUT_MS = 20_000;

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") throw new Error(`${name} must be set`);
  return value;
}

/** [tag, operationId, METHOD, path] of every operation in the served spec. */
async function specOperations(baseUrl) {
  const response = await fetch(new URL("/api-docs/openapi.json", baseUrl));
  check(response.status === 200, `/api-docs/openapi.json answered ${response.status}`);
  const spec = await response.json();
  const operations = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (operation) operations.push([operation.tags[0], operation.operationId, method.toUpperCase(), path]);
    }
  }
  check(operations.length > 0, "the served spec has operations");
  return operations;
}

/** The names under the served spec's top-level `webhooks`. */
async function specWebhooks(baseUrl) {
  const response = await fetch(new URL("/api-docs/openapi.json", baseUrl));
  check(response.status === 200, `/api-docs/openapi.json answered ${response.status}`);
  const names = Object.keys((await response.json()).webhooks ?? {});
  check(names.length > 0, "the served spec documents webhooks");
  return names;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function isLoopback(url) {
  const { protocol, hostname } = new URL(url);
  if (protocol === "data:" || protocol === "blob:" || protocol === "about:") return true;
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

async function api(baseUrl, token, method, path) {
  const response = await fetch(new URL(path, baseUrl), {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  const body = await response.json();
  return { status: response.status, body };
}

/** Opens Authorize, checks the schemes it offers, fills `scheme` and closes. */
async function authorize(page, scheme, value, expectedSchemes) {
  await page.locator(".auth-wrapper .btn.authorize").click();
  const modal = page.locator(".dialog-ux .modal-ux");
  await modal.waitFor();
  const containers = modal.locator(".auth-container");
  if (expectedSchemes.length > 0) {
    const texts = await containers.allInnerTexts();
    check(texts.length === expectedSchemes.length, `Authorize offers ${expectedSchemes.length} schemes (got ${texts.length})`);
    for (const name of expectedSchemes) {
      check(texts.some((t) => t.includes(name)), `Authorize offers ${name}`);
    }
  }
  const entry = containers.filter({ hasText: scheme }).first();
  await entry.locator("input").first().fill(value);
  await entry.locator(".btn.authorize").click();
  await modal.locator(".btn-done, button:has-text('Close')").first().click();
  await modal.waitFor({ state: "detached" });
}

async function main() {
  const baseUrl = env("API_BASE_URL");
  const listingToken = env("API_TOKEN");
  const ownDeviceId = env("OWN_DEVICE_ID");
  const ownUserId = env("OWN_USER_ID");
  const ownFingerprint = env("OWN_FINGERPRINT");
  const serviceKey = env("SERVICE_KEY");
  const screenshot = resolve(env("SCREENSHOT", "swagger-ui-untrust.png"));
  const executablePath = env("CHROMIUM", "/usr/bin/chromium");
  check(isLoopback(baseUrl), `API_BASE_URL must be a loopback address (got ${baseUrl})`);

  // A real device of the caller's, other than the token's own, trusted if there is one.
  const listed = await api(baseUrl, listingToken, "GET", "/devices");
  check(listed.status === 200, `GET /devices answered ${listed.status}`);
  const others = listed.body.devices.filter((d) => d.id !== ownDeviceId);
  const target = others.find((d) => d.isTrusted) ?? others[0];
  check(target !== undefined, "the caller has a device other than the token's own");
  console.log(`target device: "${target.deviceName}" ${target.id} (isTrusted=${target.isTrusted})`);

  const userDataDir = mkdtempSync(join(tmpdir(), "swagger-ui-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 1000 },
  });
  const blocked = [];
  const pageErrors = [];
  let signedInToken;
  try {
    // The page may reach this server only: anything else is refused and reported.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (isLoopback(url)) return route.continue();
      blocked.push(url);
      return route.abort("blockedbyclient");
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on("pageerror", (err) => pageErrors.push(err.message));

    const swaggerUrl = new URL("/swagger-ui/", baseUrl).href;
    const opened = await page.goto(swaggerUrl, { waitUntil: "load" });
    check(opened !== null && opened.status() === 200, `${swaggerUrl} answered ${opened?.status()}`);
    await page.locator(".opblock").first().waitFor();
    const title = (await page.locator(".information-container .title").first().innerText()).trim();
    console.log(`Swagger UI loaded: ${title.split("\n")[0]}`);

    // Every operation of the spec the server serves, by operationId and by method + path.
    const operations = await specOperations(baseUrl);
    const listedOps = await page.locator(".opblock").evaluateAll((blocks) =>
      blocks.map((b) => ({
        id: b.id,
        method: b.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "",
        path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
      })),
    );
    for (const [tag, operationId, method, path] of operations) {
      const block = listedOps.find((op) => op.id === `operations-${tag}-${operationId}`);
      check(block !== undefined, `operation ${operationId} is listed`);
      check(block.method === method && block.path === path, `${operationId} is ${method} ${path} (shown: ${block.method} ${block.path})`);
    }
    console.log(`all ${operations.length} operations of the spec listed`);

    // The webhooks the server sends (OpenAPI 3.1 `webhooks`), in Swagger UI's own section.
    const webhookNames = await specWebhooks(baseUrl);
    const webhooks = page.locator(".webhooks").first();
    await webhooks.waitFor();
    const webhooksText = await webhooks.innerText();
    for (const name of webhookNames) {
      check(webhooksText.includes(name), `webhook ${name} is shown in the Webhooks section`);
    }
    console.log(`all ${webhookNames.length} webhooks of the spec shown`);

    // Authorize offers both schemes; the service key first.
    await authorize(page, "serviceKey", serviceKey, ["bearerAuth", "serviceKey"]);
    console.log("authorized with the service key");

    // Try it out → Execute on createSession: the user signs in on the device
    // of OWN_DEVICE_ID (its fingerprint), and the response carries the token.
    const signIn = page.locator("#operations-platform-createSession");
    await signIn.locator(".opblock-summary").first().click();
    const signInTryOut = signIn.locator(".try-out__btn");
    if ((await signInTryOut.innerText()).trim() === "Try it out") await signInTryOut.click();
    const signInBody = {
      userId: ownUserId,
      device: { fingerprint: ownFingerprint, deviceName: "Laptop", deviceType: "DESKTOP" },
      loginMethod: "password",
      ttlSeconds: 3600,
    };
    await signIn.locator("textarea.body-param__text").fill(JSON.stringify(signInBody));
    await signIn.locator(".btn.execute").click();
    const signInLive = signIn.locator(".live-responses-table");
    await signInLive.waitFor();
    const signInStatus = (await signInLive.locator(".response .response-col_status").first().innerText()).trim();
    const signedIn = JSON.parse(
      (await signInLive.locator(".response-col_description .highlight-code pre").first().innerText()).trim(),
    );
    check(signInStatus === "201", `createSession shows status 201 (got ${signInStatus})`);
    check(signedIn.success === true && typeof signedIn.token === "string", "createSession returned a token");
    check(signedIn.device.id === ownDeviceId && signedIn.newDevice === false, "createSession signed in on the known device");
    const token = signedIn.token;
    console.log(`createSession: 201, session ${signedIn.session.id} on ${signedIn.device.id}`);

    // Authorize with the token createSession returned.
    await authorize(page, "bearerAuth", token, []);
    check(
      (await page.locator(".auth-wrapper .btn.authorize.locked").count()) === 1,
      "the Authorize button shows the locked (authorized) state",
    );
    console.log("authorized with the bearer token from createSession");

    // Try it out → Execute on untrustDevice.
    const op = page.locator("#operations-devices-untrustDevice");
    await op.locator(".opblock-summary").first().click();
    // The server configures tryItOutEnabled, so the operation may already be in
    // "Try it out" mode (its button then reads "Cancel"); click it only if not.
    const tryOut = op.locator(".try-out__btn");
    if ((await tryOut.innerText()).trim() === "Try it out") {
      await tryOut.click();
      console.log('clicked "Try it out"');
    } else {
      console.log('"Try it out" mode is on already (tryItOutEnabled)');
    }
    const idInput = op.locator('tr[data-param-name="id"] input');
    await idInput.fill(target.id);
    await op.locator(".btn.execute").click();

    const live = op.locator(".live-responses-table");
    await live.waitFor();
    const status = (await live.locator(".response .response-col_status").first().innerText()).trim();
    const bodyText = (await live.locator(".response-col_description .highlight-code pre").first().innerText()).trim();
    const requestUrl = (await op.locator(".request-url pre").first().innerText().catch(() => "")).trim();
    console.log(`Execute: ${requestUrl} → ${status} ${bodyText.replace(/\s+/g, " ")}`);
    check(requestUrl.endsWith(`/devices/${target.id}/untrust`), `the request went to the target device (${requestUrl})`);
    check(status === "200", `the response panel shows status 200 (got ${status})`);
    check(JSON.stringify(JSON.parse(bodyText)) === JSON.stringify(EXPECTED_BODY), `the response panel shows ${JSON.stringify(EXPECTED_BODY)}`);

    // The operation from its summary down to the live response (not the
    // documented responses below it).
    const clip = await op.evaluate((block) => {
      const top = block.getBoundingClientRect();
      const end = block.querySelector(".live-responses-table").getBoundingClientRect();
      return { x: top.left + window.scrollX, y: top.top + window.scrollY, width: top.width, height: end.bottom - top.top + 8 };
    });
    await page.screenshot({ path: screenshot, fullPage: true, clip });
    console.log(`screenshot: ${screenshot}`);

    check(pageErrors.length === 0, `no script error on the page (${pageErrors.join("; ")})`);
    check(blocked.length === 0, `the page reached no other host (${blocked.join(", ")})`);
    signedInToken = token;
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }

  // Through the API: the device is untrusted and has no active session; the
  // token createSession returned still works.
  const after = await api(baseUrl, signedInToken, "GET", `/devices/${encodeURIComponent(target.id)}`);
  check(after.status === 200, `GET /devices/{id} answered ${after.status}`);
  check(after.body.device.isTrusted === false, "the device is untrusted");
  check(after.body.device.trustExpiresAt === null, "the device has no trust expiry");
  check(after.body.device.sessions.length === 0, "the device has no active session");
  console.log(`API: "${after.body.device.deviceName}" isTrusted=false, no active session`);
  console.log("browser swagger-ui untrust: OK");
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
