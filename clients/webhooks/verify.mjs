// Checks recorded webhook deliveries with the official `standardwebhooks`
// verifier of npm, as verify.py does with PyPI's: each one as it came must
// verify, one with a changed body must not, nor one whose timestamp is 10
// minutes old (signed anew for that timestamp).
//
// Usage: node verify.mjs DELIVERIES.jsonl WEBHOOK_SECRET
import { readFileSync } from "node:fs";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const [deliveriesPath, secret] = process.argv.slice(2);
const webhook = new Webhook(secret);
const problems = [];
let checked = 0;

function refused(body, headers) {
  try {
    webhook.verify(body, headers);
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.message;
    throw error;
  }
  return null;
}

for (const line of readFileSync(deliveriesPath, "utf8").split("\n")) {
  if (!line) continue;
  const record = JSON.parse(line);
  const headers = record.headers;
  const body = Buffer.from(record.body, "base64").toString("utf8");
  const id = headers["webhook-id"];
  checked += 1;
  try {
    const payload = webhook.verify(body, headers);
    if (JSON.stringify(payload) !== JSON.stringify(JSON.parse(body)) || payload.data.id !== id) {
      problems.push(`${id}: verified payload differs from the body`);
    }
  } catch (error) {
    problems.push(`${id}: untouched delivery refused: ${error.message}`);
  }
  const changed = body.replace('"type":"', '"type":"X');
  if (changed === body || refused(changed, headers) === null) {
    problems.push(`${id}: a changed body was accepted`);
  }
  const old = new Date(Date.now() - 10 * 60 * 1000);
  const resigned = {
    ...headers,
    "webhook-timestamp": String(Math.floor(old.getTime() / 1000)),
    "webhook-signature": webhook.sign(id, old, body),
  };
  const reason = refused(body, resigned);
  if (reason === null || !reason.toLowerCase().includes("too old")) {
    problems.push(`${id}: a 10-minute-old timestamp was not refused as too old (${reason})`);
  }
}

for (const problem of problems) console.error(`verify.mjs: ${problem}`);
console.log(
  `standardwebhooks (npm): ${checked} deliveries checked (accepted untouched, ` +
    `refused with a changed body or an old timestamp): ${problems.length} problem(s)`,
);
process.exit(problems.length || checked === 0 ? 1 : 0);
