-- Portable SQL, as the earlier migrations: the same file runs on SQLite and PostgreSQL.

-- The endpoints security events are delivered to: WEBHOOK_URLS of the last
-- server that started (every server of a deployment shares the setting).
-- Kept in the database so that whatever records an event (a request, a
-- sign-in, the command line) fans it out inside its own transaction, with
-- no configuration of its own.
CREATE TABLE webhook_endpoints (
    url  TEXT PRIMARY KEY NOT NULL
);

-- The transactional outbox: one row per event and endpoint, inserted in the
-- transaction that records the event, so an acknowledged change always has
-- its deliveries and a rolled-back one never has. `status` is pending,
-- delivered or failed (given up, until `webhook retry`). A dispatcher owns a
-- pending row while `claimed_until` is in the future (a lease: a server
-- killed mid-flight loses it when it expires, and the row is sent again).
CREATE TABLE webhook_deliveries (
    event_id         TEXT NOT NULL,
    url              TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    occurred_at      TIMESTAMP NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    claimed_until    TIMESTAMP,
    last_error       TEXT,
    enqueued_at      TIMESTAMP NOT NULL,
    delivered_at     TIMESTAMP,
    PRIMARY KEY (event_id, url)
);

-- The dispatcher: an endpoint's due rows in event order; and per user, the
-- earlier pending rows that hold a later one back.
CREATE INDEX webhook_deliveries_queue_idx ON webhook_deliveries (url, status, occurred_at, event_id);
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (url, user_id, status, occurred_at);
-- Retention of delivered rows.
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (status, delivered_at);
