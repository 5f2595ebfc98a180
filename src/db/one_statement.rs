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
//! kept prepared once per connection by Diesel's statement cache ([`kept`]:
//! the text is constant). SQLite runs the same operations statement by statement inside
//! the writer's transaction (`domain`), where a statement is a function call.

use std::sync::LazyLock;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::{
    pg::{Pg, PgConnection},
    prelude::*,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    result::Error,
    sql_types::{BigInt, Nullable, Text, Timestamp},
};

use super::{
    devices::{Changed, TRUST_LEVEL_TRUSTED, TRUST_LEVEL_UNTRUSTED},
    models::{DeviceRow, SecurityEventRow},
    webhook_deliveries::{self, PENDING},
};

/// `query` kept prepared on its connection. `diesel::sql_query` marks every
/// text unsafe to cache, since it cannot know the text is constant, so
/// PostgreSQL would parse and plan these statements (several CTEs each) on
/// every request; every text of this module is constant, so the statement
/// cache may key it by its text (the same reasoning as `prepared::update`).
/// Only for a direct `PgConnection`: the cache asks the query itself.
fn kept<Q>(query: Q) -> KeptPrepared<Q> {
    KeptPrepared(query)
}

struct KeptPrepared<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for KeptPrepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for KeptPrepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for KeptPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for KeptPrepared<Q> {}

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
    let row: HeartbeatRow = kept(
        diesel::sql_query(format!(
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
        .bind::<Nullable<BigInt>, _>(max_lifetime.and_then(|max| max.num_microseconds())),
    )
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
    let row: UntrustRow = kept(
        diesel::sql_query(format!(
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
        .bind::<Text, _>(PENDING),
    )
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

/// The security event of a change and its webhook deliveries, as two CTEs
/// (`event`, `outbox`) that insert one event per row of `source` (none when
/// it is empty). The event's own fields are the parameters from `$first` on,
/// in the order [`bind_event!`] binds them; `about` is the SQL of its
/// device id, device name, session id and count of revoked sessions, over
/// `source`.
fn event_and_outbox(first: usize, source: &str, about: [&str; 4]) -> String {
    let [device_id, device_name, session_id, revoked] = about;
    let [id, kind, actor, ip, agent, service, pending]: [String; 7] =
        std::array::from_fn(|offset| format!("${}", first + offset));
    format!(
        "event AS (
            INSERT INTO security_events (
                id, user_id, event_type, occurred_at, device_id, device_name,
                session_id, revoked_session_count, actor_session_id, ip_address,
                user_agent, actor_service)
            SELECT {id}, $1, {kind}, $3, {device_id}, {device_name},
                   {session_id}, {revoked}, {actor}, {ip}, {agent}, {service}
            FROM {source}
            RETURNING id
        ),
        outbox AS (
            INSERT INTO webhook_deliveries (
                event_id, url, user_id, occurred_at, status, next_attempt_at, enqueued_at)
            SELECT event.id, endpoint.url, $1, $3, {pending}, $3, $3
            FROM event CROSS JOIN webhook_endpoints endpoint
            RETURNING 1
        )"
    )
}

/// Binds the parameters of [`event_and_outbox`]'s CTEs, from `event`.
macro_rules! bind_event {
    ($query:expr, $event:expr) => {
        $query
            .bind::<Text, _>(&$event.id)
            .bind::<Text, _>(&$event.event_type)
            .bind::<Nullable<Text>, _>(&$event.actor_session_id)
            .bind::<Nullable<Text>, _>(&$event.ip_address)
            .bind::<Nullable<Text>, _>(&$event.user_agent)
            .bind::<Nullable<Text>, _>(&$event.actor_service)
            .bind::<Text, _>(PENDING)
    };
}

/// What a write that records an event returns: the device of the caller's
/// session (`None`: not active, nothing changed), the device it changed
/// (when it is about one), how many rows it changed and how many webhook
/// deliveries it enqueued.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = Nullable<Text>)]
    caller_device: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    device_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    device_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    changed: i64,
    #[diesel(sql_type = BigInt)]
    enqueued: i64,
}

impl Written {
    /// Wakes the dispatchers when deliveries were enqueued, then passes on
    /// what was written, with the device of the caller's session (`None`:
    /// the session is not active and nothing was written).
    fn checked(self) -> Checked<Self> {
        if self.enqueued > 0 {
            webhook_deliveries::hint_enqueued();
        }
        let caller_device = self.caller_device.clone()?;
        Some((caller_device, self))
    }

    fn changed(&self) -> usize {
        usize::try_from(self.changed).unwrap_or(0)
    }

    /// The device changed, with how many sessions the change ended.
    fn device(self, revoked_sessions: usize) -> Option<Changed> {
        Some(Changed {
            id: self.device_id?,
            name: self.device_name?,
            revoked_sessions,
        })
    }
}

/// `revokeSession` as the caller `user_id`/`session_id`: revokes their
/// active session `target` (theirs included) and records `event` (its
/// device, session and count filled in here) with its webhook deliveries.
/// Inside, whether `target` was revoked (false: the caller has no such
/// active session).
pub fn revoke_session(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    target: &str,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<bool>, Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let recorded = event_and_outbox(
            5,
            "revoked JOIN devices ON devices.id = revoked.device_id",
            ["devices.id", "devices.device_name", "revoked.id", "1"],
        );
        format!(
            "WITH {CALLER},
            revoked AS (
                UPDATE sessions SET revoked_at = $3
                WHERE id = $4 AND user_id = $1 AND revoked_at IS NULL AND expires_at > $3
                  AND EXISTS (SELECT 1 FROM caller)
                RETURNING id, device_id
            ),
            {recorded}
            SELECT (SELECT device_id FROM caller) AS caller_device,
                   NULL::text AS device_id, NULL::text AS device_name,
                   (SELECT count(*) FROM revoked) AS changed,
                   (SELECT count(*) FROM outbox) AS enqueued"
        )
    });
    let query = diesel::sql_query(SQL.as_str())
        .bind::<Text, _>(user_id)
        .bind::<Text, _>(session_id)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(target);
    let written: Written = kept(bind_event!(query, event)).get_result(conn)?;
    Ok(written
        .checked()
        .map(|(caller_device, written)| (caller_device, written.changed() > 0)))
}

/// `revokeAllSessions` (`keep_own` false) or `revokeOtherSessions` (true) as
/// the caller `user_id`/`session_id`: revokes every active session of the
/// caller, theirs included or not, and records `event` (its count filled in
/// here) with its webhook deliveries. Inside, how many were revoked.
pub fn revoke_sessions(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    keep_own: bool,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<usize>, Error> {
    fn sql(except: &str) -> String {
        let recorded = event_and_outbox(
            4,
            "caller",
            ["NULL", "NULL", "NULL", "(SELECT count(*) FROM revoked)"],
        );
        format!(
            "WITH {CALLER},
            revoked AS (
                UPDATE sessions SET revoked_at = $3
                WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $3 {except}
                  AND EXISTS (SELECT 1 FROM caller)
                RETURNING id
            ),
            {recorded}
            SELECT (SELECT device_id FROM caller) AS caller_device,
                   NULL::text AS device_id, NULL::text AS device_name,
                   (SELECT count(*) FROM revoked) AS changed,
                   (SELECT count(*) FROM outbox) AS enqueued"
        )
    }
    static ALL: LazyLock<String> = LazyLock::new(|| sql(""));
    static OTHERS: LazyLock<String> = LazyLock::new(|| sql("AND id <> $2"));
    let query = diesel::sql_query(if keep_own {
        OTHERS.as_str()
    } else {
        ALL.as_str()
    })
    .bind::<Text, _>(user_id)
    .bind::<Text, _>(session_id)
    .bind::<Timestamp, _>(now);
    let written: Written = kept(bind_event!(query, event)).get_result(conn)?;
    Ok(written
        .checked()
        .map(|(caller_device, written)| (caller_device, written.changed())))
}

/// The columns of [`Written`] for a write about the device of the CTE
/// `device`, which changed `changed` rows.
fn written_about_device(changed: &str) -> String {
    format!(
        "SELECT (SELECT device_id FROM caller) AS caller_device,
                (SELECT id FROM device) AS device_id,
                (SELECT device_name FROM device) AS device_name,
                {changed} AS changed,
                (SELECT count(*) FROM outbox) AS enqueued"
    )
}

/// `trustDevice` as the caller `user_id`/`session_id`: trusts their device
/// with `fingerprint` until `until` and records `event` (its device filled
/// in here) with its webhook deliveries. `None` inside when the caller has
/// no such device.
pub fn trust(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    fingerprint: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<Option<Changed>>, Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let recorded = event_and_outbox(
            7,
            "device",
            ["device.id", "device.device_name", "NULL", "0"],
        );
        let written = written_about_device("(SELECT count(*) FROM device)");
        format!(
            "WITH {CALLER},
            device AS (
                UPDATE devices
                SET is_trusted = TRUE, trust_level = $5, trust_expires_at = $6
                WHERE user_id = $1 AND fingerprint = $4 AND EXISTS (SELECT 1 FROM caller)
                RETURNING id, device_name
            ),
            {recorded}
            {written}"
        )
    });
    let query = diesel::sql_query(SQL.as_str())
        .bind::<Text, _>(user_id)
        .bind::<Text, _>(session_id)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(fingerprint)
        .bind::<Text, _>(TRUST_LEVEL_TRUSTED)
        .bind::<Timestamp, _>(until);
    let written: Written = kept(bind_event!(query, event)).get_result(conn)?;
    Ok(written
        .checked()
        .map(|(caller_device, written)| (caller_device, written.device(0))))
}

/// `deleteDevice` as the caller `user_id`/`session_id`: deletes their device
/// `device_id` and its sessions (device row first, then sessions, as every
/// write locks them; ON DELETE CASCADE then finds none left) and records
/// `event` (its device and count of the sessions that were active filled in
/// here) with its webhook deliveries. `None` inside when the caller has no
/// such device.
pub fn delete_device(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    device_id: &str,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<Option<Changed>>, Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let active = "(SELECT count(*) FROM removed WHERE revoked_at IS NULL AND expires_at > $3)";
        let recorded = event_and_outbox(
            5,
            "device",
            ["device.id", "device.device_name", "NULL", active],
        );
        let written = written_about_device(active);
        format!(
            "WITH {CALLER},
            device AS (
                DELETE FROM devices
                WHERE id = $4 AND user_id = $1 AND EXISTS (SELECT 1 FROM caller)
                RETURNING id, device_name
            ),
            removed AS (
                DELETE FROM sessions WHERE device_id = (SELECT id FROM device)
                RETURNING revoked_at, expires_at
            ),
            {recorded}
            {written}"
        )
    });
    let query = diesel::sql_query(SQL.as_str())
        .bind::<Text, _>(user_id)
        .bind::<Text, _>(session_id)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(device_id);
    let written: Written = kept(bind_event!(query, event)).get_result(conn)?;
    Ok(written.checked().map(|(caller_device, written)| {
        let revoked = written.changed();
        (caller_device, written.device(revoked))
    }))
}

#[derive(QueryableByName)]
struct RenamedRow {
    #[diesel(sql_type = Nullable<Text>)]
    caller_device: Option<String>,
    #[diesel(embed)]
    device: Option<DeviceRow>,
    #[diesel(sql_type = BigInt)]
    enqueued: i64,
}

/// `renameDevice` as the caller `user_id`/`session_id`: names their device
/// `device_id` `name` and records `event` (its device filled in here) with
/// its webhook deliveries. Inside, the renamed device, `None` when the
/// caller has no such device.
pub fn rename(
    conn: &mut PgConnection,
    user_id: &str,
    session_id: &str,
    device_id: &str,
    name: &str,
    now: NaiveDateTime,
    event: &SecurityEventRow,
) -> Result<Checked<Option<DeviceRow>>, Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let recorded = event_and_outbox(
            6,
            "device",
            ["device.id", "device.device_name", "NULL", "0"],
        );
        format!(
            "WITH {CALLER},
            device AS (
                UPDATE devices SET device_name = $5
                WHERE id = $4 AND user_id = $1 AND EXISTS (SELECT 1 FROM caller)
                RETURNING *
            ),
            {recorded}
            SELECT (SELECT device_id FROM caller) AS caller_device, device.*,
                   (SELECT count(*) FROM outbox) AS enqueued
            FROM (SELECT 1) AS one LEFT JOIN device ON TRUE"
        )
    });
    let query = diesel::sql_query(SQL.as_str())
        .bind::<Text, _>(user_id)
        .bind::<Text, _>(session_id)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(device_id)
        .bind::<Text, _>(name);
    let row: RenamedRow = kept(bind_event!(query, event)).get_result(conn)?;
    if row.enqueued > 0 {
        webhook_deliveries::hint_enqueued();
    }
    Ok(row
        .caller_device
        .map(|caller_device| (caller_device, row.device)))
}
