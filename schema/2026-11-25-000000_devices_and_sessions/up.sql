-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
-- Timestamps are UTC without a zone (Diesel's `Timestamp` on both backends).

CREATE TABLE devices (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    device_name       TEXT NOT NULL,
    device_type       TEXT NOT NULL,
    os                TEXT NOT NULL,
    browser           TEXT NOT NULL,
    user_agent        TEXT,
    ip_address        TEXT,
    country           TEXT,
    city              TEXT,
    is_trusted        BOOLEAN NOT NULL DEFAULT FALSE,
    trust_level       TEXT NOT NULL,
    trust_expires_at  TIMESTAMP,
    last_seen         TIMESTAMP NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    -- A fingerprint names one device among its owner's devices.
    CONSTRAINT devices_user_fingerprint_key UNIQUE (user_id, fingerprint)
);

-- listDevices: the caller's devices, most recently seen first.
CREATE INDEX devices_user_last_seen_idx ON devices (user_id, last_seen);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL,
    device_id      TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ip_address     TEXT,
    location       TEXT,
    login_method   TEXT NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    last_activity  TIMESTAMP NOT NULL,
    expires_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP
);

-- getDevice and untrustDevice: a device's sessions.
CREATE INDEX sessions_device_idx ON sessions (device_id);
-- listSessions and revokeAllSessions: the caller's sessions that are not revoked.
CREATE INDEX sessions_user_active_idx ON sessions (user_id, last_activity) WHERE revoked_at IS NULL;
