//! PostgreSQL: the hot requests as one statement each, the session check
//! included, so that a request costs one round trip and one implicit
//! transaction instead of a BEGIN, the check, the change's statements and a
//! COMMIT, each a round trip to a backend that shares the machine's cores.
//!
//! Each statement starts from the same one-row `caller` CTE, the session
//! check of `sessions::active_device`: the check and the change are judged in
//! one snapshot, and each UPDATE re-checks its own rows once it holds their
//! locks (PostgreSQL re-evaluates an UPDATE's WHERE on a row changed by a
//! transaction it waited for), so a revocation that commits first is never
//! overridden. Rows are locked device first, then sessions, the order of
//! every write (a data-modifying CTE that another one reads runs first), so
//! concurrent requests of two servers cannot deadlock on each other.
//!
//! The query builder cannot write a data-modifying CTE, so these are SQL text,
//! prepared once per connection by Diesel's statement cache (the text is
//! constant). SQLite runs the same operations statement by statement inside
//! the writer's transaction (`domain`), where a statement is a function call.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::{
    pg::PgConnection,
    prelude::*,
    result::Error,
    sql_types::{BigInt, Nullable, Text, Timestamp},
};

use super::{
    devices::{Changed, TRUST_LEVEL_UNTRUSTED},
    models::SecurityEventRow,
    webhook_deliveries::{self, PENDING},
};

/// The session check: `$1` user, `$2` session, `$3` now.
const CALLER: &str = "caller AS (
    SELECT device_id FROM sessions
    WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL AND expires_at > $3
)";

/// What a one-statement request found: `None` when the caller's session is
/// not active (nothing was changed), else the device of the caller's session
/// and what the operation did.
pub type Checked<T> = Option<(String, T)>;

#[derive(QueryableByName)]
struct HeartbeatRow {
    #[diesel(sql_type = Nullable<Text>)]
    caller_device: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    new_expiry: Option<NaiveDateTime>,
}

/// `sessionHeartbeat` as the caller `user_id`/`session_id`: records activity
/// on their active session `target` (and its device) and moves its expiry to
/// `wanted`, never past `max_lifetime` after its start. The new expiry, or
/// `None` when `target` is not an active session of the caller.
pub fn heartbeat(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    target: &str,
    now: NaiveDateTime,
    wanted: NaiveDateTime,
    max_lifetime: Option<TimeDelta>,
) -> Result<Checked<Option<NaiveDateTime>>, Error> {
    let row: HeartbeatRow = diesel::sql_query(format!(
        "WITH {CALLER},
        target AS (
            SELECT s.id, s.device_id FROM sessions s
            WHERE EXISTS (SELECT 1 FROM caller)
              AND s.id = $4 AND s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $3
        ),
        device AS (
            UPDATE devices SET last_seen = $3
            WHERE id = (SELECT device_id FROM target)
            RETURNING id
        ),
        touched AS (
            UPDATE sessions
            SET last_activity = $3,
                expires_at = LEAST($5, started_at + $6 * INTERVAL '1 microsecond')
            WHERE id = (SELECT id FROM target)
              AND user_id = $1 AND revoked_at IS NULL AND expires_at > $3
              AND (EXISTS (SELECT 1 FROM device) OR TRUE)
            RETURNING expires_at
        )
        SELECT (SELECT device_id FROM caller) AS caller_device,
               (SELECT expires_at FROM touched) AS new_expiry"
    ))
    .bind::<Text, _>(user_id)
    .bind::<Text, _>(session_id)
    .bind::<Timestamp, _>(now)
    .bind::<Text, _>(target)
    .bind::<Timestamp, _>(wanted)
    .bind::<Nullable<BigInt>, _>(max_lifetime.and_then(|max| max.num_microseconds()))
    .get_result(conn)?;
    Ok(row.caller_device.map(|device| (device, row.new_expiry)))
}

#[derive(QueryableByName)]
struct UntrustRow {
    #[diesel(sql_type = Nullable<Text>)]
    caller_device: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    device_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    revoked: i64,
    #[diesel(sql_type = BigInt)]
    enqueued: i64,
}

/// `untrustDevice` as the caller `user_id`/`session_id`: untrusts their
/// device `device_id`, revokes its active sessions and records `event` (its
/// device name and count of revoked sessions filled in here) with its
/// webhook deliveries. `None` inside when the caller has no such device.
pub fn untrust(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    device_id: &str,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<Option<Changed>>, Error> {
    let row: UntrustRow = diesel::sql_query(format!(
        "WITH {CALLER},
        device AS (
            UPDATE devices
            SET is_trusted = FALSE, trust_level = $5, trust_expires_at = NULL
            WHERE id = $4 AND user_id = $1 AND EXISTS (SELECT 1 FROM caller)
            RETURNING id, device_name
        ),
        revoked AS (
            UPDATE sessions SET revoked_at = $3
            WHERE device_id = (SELECT id FROM device)
              AND revoked_at IS NULL AND expires_at > $3
            RETURNING id
        ),
        event AS (
            INSERT INTO security_events (
                id, user_id, event_type, occurred_at, device_id, device_name,
                session_id, revoked_session_count, actor_session_id, ip_address,
                user_agent, actor_service)
            SELECT $6, $1, $7, $3, device.id, device.device_name,
                   NULL, (SELECT count(*) FROM revoked), $8, $9, $10, $11
            FROM device
            RETURNING id
        ),
        outbox AS (
            INSERT INTO webhook_deliveries (
                event_id, url, user_id, occurred_at, status, next_attempt_at, enqueued_at)
            SELECT event.id, endpoint.url, $1, $3, $12, $3, $3
            FROM event CROSS JOIN webhook_endpoints endpoint
            RETURNING 1
        )
        SELECT (SELECT device_id FROM caller) AS caller_device,
               (SELECT device_name FROM device) AS device_name,
               (SELECT count(*) FROM revoked) AS revoked,
               (SELECT count(*) FROM outbox) AS enqueued"
    ))
    .bind::<Text, _>(user_id)
    .bind::<Text, _>(session_id)
    .bind::<Timestamp, _>(now)
    .bind::<Text, _>(device_id)
    .bind::<Text, _>(TRUST_LEVEL_UNTRUSTED)
    .bind::<Text, _>(&event.id)
    .bind::<Text, _>(&event.event_type)
    .bind::<Nullable<Text>, _>(&event.actor_session_id)
    .bind::<Nullable<Text>, _>(&event.ip_address)
    .bind::<Nullable<Text>, _>(&event.user_agent)
    .bind::<Nullable<Text>, _>(&event.actor_service)
    .bind::<Text, _>(PENDING)
    .get_result(conn)?;
    if row.enqueued > 0 {
        webhook_deliveries::hint_enqueued();
    }
    Ok(row.caller_device.map(|caller_device| {
        let changed = row.device_name.map(|name| Changed {
            id: device_id.to_owned(),
            name,
            revoked_sessions: usize::try_from(row.revoked).unwrap_or(0),
        });
        (caller_device, changed)
    }))
}
