-- Portable SQL, as the earlier migrations: the same file runs on SQLite and PostgreSQL.

-- The keys of the deployment's own services (the sign-in service, support
-- tools), which call the `platform` operations. Only a SHA-256 of each key
-- is kept: the key itself is printed once, when it is created. Every server
-- of a deployment reads this table on each platform request, so a key
-- created or revoked on one server counts on all of them at once.
CREATE TABLE service_keys (
    name          TEXT PRIMARY KEY NOT NULL,
    key_hash      TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP
);

-- The lookup of a presented key, by its hash.
CREATE UNIQUE INDEX service_keys_key_hash_key ON service_keys (key_hash);

-- The service key whose platform request made the change (its name); null
-- for a change made by a user's own session or the command line.
ALTER TABLE security_events ADD COLUMN actor_service TEXT;
