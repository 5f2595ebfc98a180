"""Checks recorded webhook deliveries with the official `standardwebhooks`
verifier of PyPI: each one as it came must verify (and give back the body
that was sent), the same with one byte of the body changed must not, nor one
whose timestamp is 10 minutes old (signed anew for that timestamp, so that
the timestamp alone is what is refused).

Usage: python verify.py DELIVERIES.jsonl WEBHOOK_SECRET
"""
import base64
import json
import sys
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

deliveries_path, secret = sys.argv[1], sys.argv[2]
webhook = Webhook(secret)
problems = []
checked = 0


def refused(body, headers):
    try:
        webhook.verify(body, headers)
    except WebhookVerificationError as error:
        return str(error)
    return None


with open(deliveries_path) as deliveries:
    for line in deliveries:
        record = json.loads(line)
        headers, body = record["headers"], base64.b64decode(record["body"])
        wid = headers["webhook-id"]
        checked += 1
        if headers.get("content-type") != "application/json":
            problems.append(f"{wid}: content-type {headers.get('content-type')!r}")
        try:
            payload = webhook.verify(body, headers)
            if payload != json.loads(body) or payload["data"]["id"] != wid:
                problems.append(f"{wid}: verified payload differs from the body")
        except WebhookVerificationError as error:
            problems.append(f"{wid}: untouched delivery refused: {error}")
        changed = body.replace(b'"type":"', b'"type":"X', 1)
        if changed == body or refused(changed, headers) is None:
            problems.append(f"{wid}: a changed body was accepted")
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        resigned = dict(headers)
        resigned["webhook-timestamp"] = str(int(old.timestamp()))
        resigned["webhook-signature"] = webhook.sign(wid, old, body.decode())
        reason = refused(body, resigned)
        if reason is None or "too old" not in reason.lower():
            problems.append(f"{wid}: a 10-minute-old timestamp was not refused as too old ({reason})")

for problem in problems:
    print("verify.py:", problem, file=sys.stderr)
print(f"standardwebhooks (PyPI): {checked} deliveries checked (accepted untouched, "
      f"refused with a changed body or an old timestamp): {len(problems)} problem(s)")
sys.exit(1 if problems or checked == 0 else 0)
