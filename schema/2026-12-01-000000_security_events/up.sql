-- Portable SQL, as the first migration: the same file runs on SQLite and PostgreSQL.

-- What happened to a user's devices and sessions, written in the same
-- transaction as the change it records. No foreign keys: an event outlives
-- the device or session it names (a removed device keeps its history).
CREATE TABLE security_events (
    id                     TEXT PRIMARY KEY NOT NULL,
    user_id                TEXT NOT NULL,
    event_type             TEXT NOT NULL,
    occurred_at            TIMESTAMP NOT NULL,
    device_id              TEXT,
    device_name            TEXT,
    session_id             TEXT,
    revoked_session_count  INTEGER NOT NULL DEFAULT 0,
    actor_session_id       TEXT,
    ip_address             TEXT,
    user_agent             TEXT
);

-- listSecurityEvents: a user's events newest first, by keyset ((occurred_at, id) descending).
CREATE INDEX security_events_user_order_idx ON security_events (user_id, occurred_at, id);
-- Retention: the oldest events of all users, a batch at a time.
CREATE INDEX security_events_occurred_at_idx ON security_events (occurred_at);

-- Secrets every server of a deployment shares, created by the first server
-- that needs one (a random value), so that no configuration is needed and a
-- restart changes nothing. Today: the key that signs the security-event
-- page cursors.
CREATE TABLE server_keys (
    purpose     TEXT PRIMARY KEY NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
