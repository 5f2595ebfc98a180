//! All SQL on `webhook_deliveries` and `webhook_endpoints`: the transactional
//! outbox of the webhook dispatcher (`crate::webhooks`).
//!
//! [`enqueue`] runs inside the transaction that records a security event and
//! adds one pending row per configured endpoint, so a delivery exists exactly
//! when its change was committed. The dispatcher then [`claim`]s due rows
//! under a lease (`claimed_until`), sends them, and records each outcome.
//!
//! Order per user: a pending row is claimable only when no earlier pending
//! row of the same user and endpoint is held back (leased elsewhere, or
//! waiting for its retry), so a later event never overtakes an earlier one
//! that is neither delivered nor given up.

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use diesel::{
    connection::SimpleConnection,
    dsl::{count_star, min, sql},
    prelude::*,
    result::Error,
    sql_types::{Bool, Timestamp},
};

use super::{
    direct::Direct,
    models::{columns_of, SecurityEventRow},
    schema::{security_events, webhook_deliveries as deliveries, webhook_endpoints},
    AnyConnection,
};

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// `status = '<status>'` with the status as a literal, not a bound value:
/// the indexes are partial (one status each), and SQLite and PostgreSQL
/// choose a partial index only for a query whose condition names its
/// status literally.
fn status_is(status: &'static str) -> diesel::expression::SqlLiteral<Bool> {
    debug_assert!(status.bytes().all(|b| b.is_ascii_lowercase()));
    sql::<Bool>(&format!("webhook_deliveries.status = '{status}'"))
}

/// Bumped after an event is enqueued in this process: a hint that wakes the
/// dispatchers before their next poll (the row may not be committed yet, so
/// they still poll; a lost hint costs one poll interval, nothing more).
static ENQUEUED: LazyLock<tokio::sync::watch::Sender<u64>> =
    LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// A receiver of the hints of [`enqueue`].
pub fn enqueued_hints() -> tokio::sync::watch::Receiver<u64> {
    ENQUEUED.subscribe()
}

/// What [`set_endpoints`] replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointsChange {
    /// The endpoints before, sorted.
    pub previous: Vec<String>,
    /// Pending deliveries to URLs that are no longer endpoints, now failed:
    /// how many of each URL.
    pub expired: Vec<(String, i64)>,
}

/// Why a delivery whose endpoint is gone failed (`last_error`).
pub const ENDPOINT_REMOVED: &str = "its URL is no longer in WEBHOOK_URLS";

/// Makes `urls` the endpoints events are fanned out to (none: webhooks off),
/// and fails the pending deliveries to any other URL: no dispatcher sends
/// them any more, so pending they would stay for ever. Call it inside a
/// write transaction.
pub fn set_endpoints(conn: &mut AnyConnection, urls: &[String]) -> Result<EndpointsChange, Error> {
    let previous = endpoints(conn)?;
    diesel::delete(webhook_endpoints::table).execute_direct(conn)?;
    for url in urls {
        diesel::insert_into(webhook_endpoints::table)
            .values(webhook_endpoints::url.eq(url))
            .execute_direct(conn)?;
    }
    let gone = || {
        deliveries::table
            .filter(status_is(PENDING))
            .filter(deliveries::url.ne_all(webhook_endpoints::table.select(webhook_endpoints::url)))
    };
    let expired: Vec<(String, i64)> = gone()
        .group_by(deliveries::url)
        .select((deliveries::url, count_star()))
        .order(deliveries::url)
        .load_direct(conn)?;
    if !expired.is_empty() {
        diesel::update(gone())
            .set((
                deliveries::status.eq(FAILED),
                deliveries::claimed_until.eq(None::<NaiveDateTime>),
                deliveries::last_error.eq(ENDPOINT_REMOVED),
            ))
            .execute_direct(conn)?;
    }
    Ok(EndpointsChange { previous, expired })
}

/// The endpoints events are fanned out to now, sorted.
pub fn endpoints(conn: &mut AnyConnection) -> Result<Vec<String>, Error> {
    webhook_endpoints::table
        .select(webhook_endpoints::url)
        .order(webhook_endpoints::url)
        .load_direct(conn)
}

/// Adds a pending delivery of `event` for every endpoint, in one statement
/// that inserts nothing when webhooks are off. Call it inside the
/// transaction that records the event (`events::record` does).
pub fn enqueue(conn: &mut AnyConnection, event: &SecurityEventRow) -> Result<(), Error> {
    use diesel::sql_types::Text;
    let now = super::now();
    let inserted = diesel::insert_into(deliveries::table)
        .values(webhook_endpoints::table.select((
            event.id.as_str().into_sql::<Text>(),
            webhook_endpoints::url,
            event.user_id.as_str().into_sql::<Text>(),
            event.occurred_at.into_sql::<Timestamp>(),
            PENDING.into_sql::<Text>(),
            now.into_sql::<Timestamp>(),
            now.into_sql::<Timestamp>(),
        )))
        .into_columns((
            deliveries::event_id,
            deliveries::url,
            deliveries::user_id,
            deliveries::occurred_at,
            deliveries::status,
            deliveries::next_attempt_at,
            deliveries::enqueued_at,
        ))
        .execute_direct(conn)?;
    if inserted > 0 {
        hint_enqueued();
    }
    Ok(())
}

/// Wakes this process's dispatchers: deliveries were enqueued.
pub(super) fn hint_enqueued() {
    ENQUEUED.send_modify(|n| *n = n.wrapping_add(1));
}

/// A delivery a dispatcher holds the lease of, with its event (`None` when
/// the event is gone: deleted by hand, or older than the retention period).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub event_id: String,
    pub user_id: String,
    pub attempts: i32,
    pub occurred_at: NaiveDateTime,
    pub enqueued_at: NaiveDateTime,
    pub event: Option<SecurityEventRow>,
}

/// Leases up to `limit` due deliveries to `url` until `lease_until` (see
/// [`due`]). Call it inside a write transaction.
///
/// For PostgreSQL, where several servers dispatch: they claim one at a time
/// (a transaction-scoped advisory lock), each sees the leases the previous
/// one committed, so two servers never lease the same row, nor two rows of
/// one user out of order. On SQLite one process dispatches (the dispatcher
/// holds a lock file), so it reads [`due`] alone and writes no lease.
pub fn claim(
    conn: &mut AnyConnection,
    url: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    per_user: usize,
) -> Result<Vec<Claimed>, Error> {
    if let AnyConnection::Postgresql(_) = conn {
        // 0x7765_6268 is "webh": any constant all servers agree on.
        conn.batch_execute("SELECT pg_advisory_xact_lock(2003133032)")?;
    }
    let due = due(conn, url, now, limit, per_user)?;
    if due.is_empty() {
        return Ok(due);
    }
    let ids: Vec<&str> = due
        .iter()
        .map(|claimed| claimed.event_id.as_str())
        .collect();
    diesel::update(
        deliveries::table
            .filter(deliveries::url.eq(url))
            .filter(deliveries::event_id.eq_any(&ids)),
    )
    .set(deliveries::claimed_until.eq(lease_until))
    .execute_direct(conn)?;
    Ok(due)
}

/// Up to `limit` due deliveries to `url`, with their events, in event
/// order, at most `per_user` of one user (the dispatcher sends those one
/// after the other, so a lease must cover them all): the pending rows that
/// are not leased and whose user has no earlier pending row that is held
/// back (leased elsewhere, or waiting for its retry).
pub fn due(
    conn: &mut AnyConnection,
    url: &str,
    now: NaiveDateTime,
    limit: i64,
    per_user: usize,
) -> Result<Vec<Claimed>, Error> {
    // Correlated subqueries are beyond Diesel's DSL: the one fragment of SQL,
    // with bound values, portable to both backends. `LIMIT 1 OFFSET 0` keeps
    // PostgreSQL from turning the NOT EXISTS into an anti-join, which reads
    // every pending row of the endpoint before the outer LIMIT applies: with
    // a backlog each claim got dearer and the dispatcher fell further behind,
    // while checked row by row in event order a claim stops at its limit
    // (`bench/run --webhooks`, measured: docs/performance.md). SQLite checks
    // it row by row either way.
    let not_held_back = sql::<Bool>(
        "NOT EXISTS (SELECT 1 FROM webhook_deliveries earlier \
         WHERE earlier.url = webhook_deliveries.url \
         AND earlier.user_id = webhook_deliveries.user_id \
         AND earlier.status = 'pending' \
         AND (earlier.occurred_at < webhook_deliveries.occurred_at \
              OR (earlier.occurred_at = webhook_deliveries.occurred_at \
                  AND earlier.event_id < webhook_deliveries.event_id)) \
         AND (earlier.next_attempt_at > ",
    )
    .bind::<Timestamp, _>(now)
    .sql(" OR earlier.claimed_until >= ")
    .bind::<Timestamp, _>(now)
    .sql(") LIMIT 1 OFFSET 0)");
    let due: Vec<(String, String, i32, NaiveDateTime, NaiveDateTime)> = deliveries::table
        .filter(deliveries::url.eq(url))
        .filter(status_is(PENDING))
        .filter(deliveries::next_attempt_at.le(now))
        .filter(
            deliveries::claimed_until
                .is_null()
                .or(deliveries::claimed_until.lt(now)),
        )
        .filter(not_held_back)
        .order((deliveries::occurred_at, deliveries::event_id))
        .limit(limit)
        .select((
            deliveries::event_id,
            deliveries::user_id,
            deliveries::attempts,
            deliveries::occurred_at,
            deliveries::enqueued_at,
        ))
        .load_direct(conn)?;
    let mut per_user_count = std::collections::HashMap::<String, usize>::new();
    let due: Vec<_> = due
        .into_iter()
        .filter(|(_, user, ..)| {
            let n = per_user_count.entry(user.clone()).or_default();
            *n += 1;
            *n <= per_user
        })
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = due.iter().map(|(id, ..)| id.as_str()).collect();
    let mut events: std::collections::HashMap<String, SecurityEventRow> = security_events::table
        .filter(security_events::id.eq_any(&ids))
        .select(columns_of::<SecurityEventRow>())
        .load_direct::<SecurityEventRow>(conn)?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    Ok(due
        .into_iter()
        .map(
            |(event_id, user_id, attempts, occurred_at, enqueued_at)| Claimed {
                event: events.remove(&event_id),
                event_id,
                user_id,
                attempts,
                occurred_at,
                enqueued_at,
            },
        )
        .collect())
}

/// What became of one claimed delivery.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It did not; try again at this time.
    Retry { at: NaiveDateTime, error: String },
    /// It did not, and its time is up (or it cannot be sent at all).
    GiveUp { error: String },
    /// Not attempted (an earlier delivery of its user failed, or the lease
    /// ran short): back to pending as it was.
    Release,
}

/// Records the outcomes of claimed deliveries to `url`, and ends their lease.
pub fn settle(
    conn: &mut AnyConnection,
    url: &str,
    outcomes: &[(String, Outcome)],
    now: NaiveDateTime,
) -> Result<(), Error> {
    let delivered: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Delivered))
        .map(|(id, _)| id.as_str())
        .collect();
    let row = |id: &str| {
        deliveries::table
            .filter(deliveries::url.eq(url.to_owned()))
            .filter(deliveries::event_id.eq(id.to_owned()))
            .filter(deliveries::status.eq(PENDING))
    };
    if !delivered.is_empty() {
        diesel::update(
            deliveries::table
                .filter(deliveries::url.eq(url))
                .filter(deliveries::event_id.eq_any(&delivered))
                .filter(deliveries::status.eq(PENDING)),
        )
        .set((
            deliveries::status.eq(DELIVERED),
            deliveries::delivered_at.eq(now),
            deliveries::claimed_until.eq(None::<NaiveDateTime>),
            deliveries::attempts.eq(deliveries::attempts + 1),
        ))
        .execute_direct(conn)?;
    }
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Delivered => {}
            Outcome::Retry { at, error } => {
                diesel::update(row(id))
                    .set((
                        deliveries::attempts.eq(deliveries::attempts + 1),
                        deliveries::next_attempt_at.eq(*at),
                        deliveries::claimed_until.eq(None::<NaiveDateTime>),
                        deliveries::last_error.eq(error),
                    ))
                    .execute_direct(conn)?;
            }
            Outcome::GiveUp { error } => {
                diesel::update(row(id))
                    .set((
                        deliveries::status.eq(FAILED),
                        deliveries::attempts.eq(deliveries::attempts + 1),
                        deliveries::claimed_until.eq(None::<NaiveDateTime>),
                        deliveries::last_error.eq(error),
                    ))
                    .execute_direct(conn)?;
            }
            Outcome::Release => {
                diesel::update(row(id))
                    .set(deliveries::claimed_until.eq(None::<NaiveDateTime>))
                    .execute_direct(conn)?;
            }
        }
    }
    Ok(())
}

/// The outbox at a glance (`webhook status`, the metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    /// Counted up to [`DELIVERED_COUNT_CAP`] + 1 (more: [`Counts::delivered_capped`]).
    pub delivered: i64,
    pub failed: i64,
    /// When the oldest pending delivery's event happened.
    pub oldest_pending: Option<NaiveDateTime>,
}

/// Delivered rows [`counts`] reads at most. They are most of the table (a
/// day of them, kept by retention), so an exact count reads every one of
/// them, and its cost grows with the traffic; the pending and failed counts
/// read only their own partial indexes, whatever the volume delivered.
pub const DELIVERED_COUNT_CAP: i64 = 10_000;

impl Counts {
    /// Whether there are more delivered rows than were counted.
    pub fn delivered_capped(&self) -> bool {
        self.delivered > DELIVERED_COUNT_CAP
    }
}

pub fn counts(conn: &mut AnyConnection) -> Result<Counts, Error> {
    let delivered = deliveries::table
        .filter(status_is(DELIVERED))
        .select(sql::<diesel::sql_types::Integer>("1"))
        .limit(DELIVERED_COUNT_CAP + 1)
        .load::<i32>(conn)?
        .len() as i64;
    Ok(Counts {
        delivered,
        ..backlog(conn)?
    })
}

/// [`counts`] without the delivered rows, which are most of the table: what
/// the metrics recount every few seconds, from the small partial indexes.
pub fn backlog(conn: &mut AnyConnection) -> Result<Counts, Error> {
    Ok(Counts {
        pending: count_with(conn, PENDING)?,
        failed: count_with(conn, FAILED)?,
        delivered: 0,
        oldest_pending: deliveries::table
            .filter(status_is(PENDING))
            .select(min(deliveries::occurred_at))
            .first_direct(conn)?,
    })
}

fn count_with(conn: &mut AnyConnection, status: &'static str) -> Result<i64, Error> {
    deliveries::table
        .filter(status_is(status))
        .select(count_star())
        .first_direct(conn)
}

/// Puts every failed delivery to a current endpoint back to pending, due
/// now, with a fresh retry period; returns how many. (Those to a URL that is
/// no longer an endpoint stay failed: nothing would send them.)
pub fn retry_failed(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, Error> {
    diesel::update(
        deliveries::table.filter(status_is(FAILED)).filter(
            deliveries::url.eq_any(webhook_endpoints::table.select(webhook_endpoints::url)),
        ),
    )
    .set((
        deliveries::status.eq(PENDING),
        deliveries::attempts.eq(0),
        deliveries::next_attempt_at.eq(now),
        deliveries::enqueued_at.eq(now),
        deliveries::claimed_until.eq(None::<NaiveDateTime>),
    ))
    .execute_direct(conn)
}

/// Deletes up to `batch` deliveries delivered before `cutoff`; returns how
/// many (one short write, as `events::prune_before`).
pub fn prune_delivered_before(
    conn: &mut AnyConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, Error> {
    let ids: Vec<String> = deliveries::table
        .filter(status_is(DELIVERED))
        .filter(deliveries::delivered_at.lt(cutoff))
        .limit(batch)
        .select(deliveries::event_id)
        .load_direct(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        deliveries::table
            .filter(deliveries::event_id.eq_any(&ids))
            .filter(deliveries::status.eq(DELIVERED))
            .filter(deliveries::delivered_at.lt(cutoff)),
    )
    .execute_direct(conn)
}
