//! All SQL on `security_events`: the record of what happened to a user's
//! devices and sessions.
//!
//! An event is inserted by the write that makes the change it records, on
//! the same connection and inside the same transaction (the closure of
//! `Bearer::write` or of `provisioning::sign_in`): an acknowledged change
//! always has its event, and a change that fails or is rolled back never has.
//! Events are read newest first by keyset ((occurred_at, id) descending), so
//! a page starts where the previous one ended whatever was inserted since,
//! and are deleted in small batches once older than the retention period.
//!
//! (occurred_at, id) is the one order of events: a total order (the time is
//! kept to the microsecond on both backends and in the cursor, and ids are
//! unique), which the listing, its cursors and the webhook dispatcher's per
//! user order (`webhook_deliveries::due`) all follow, ties included: events
//! of two servers in the same microsecond go by id, compared by the
//! database (ids are lowercase hex with hyphens at fixed places, which
//! SQLite and PostgreSQL's C and common collations order alike). Across
//! servers it is as
//! faithful to real time as their clocks are in sync (NTP, as for leases
//! and token expiry).

use chrono::NaiveDateTime;
use diesel::{prelude::*, result::Error};

use super::{
    direct::Direct,
    models::{columns_of, SecurityEventRow},
    one_statement::Checked,
    schema::{security_events, sessions},
    sessions::owned_active,
    AnyConnection,
};

/// Who made a change, and from where: the session whose request it was, and
/// that request's client address and User-Agent. All unknown (`None`) for a
/// change made outside the API (a sign-in, the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub session_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The service key of a `platform` request (then `session_id` is `None`).
    pub service: Option<String>,
}

impl Actor {
    /// This actor, acting in `session_id`.
    pub fn of_session(&self, session_id: &str) -> Self {
        Self {
            session_id: Some(session_id.to_owned()),
            ..self.clone()
        }
    }
}

impl SecurityEventRow {
    /// An event of `event_type` (the spec's wire value) for `user_id`, about
    /// no device or session yet; see the builder methods below.
    pub fn new(user_id: &str, event_type: &str, actor: &Actor, occurred_at: NaiveDateTime) -> Self {
        Self {
            // Version 7: time-ordered, so events recorded in the same
            // microsecond (a sign-in that also trusts its device) still list
            // in the order they happened.
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at,
            device_id: None,
            device_name: None,
            session_id: None,
            revoked_session_count: 0,
            actor_session_id: actor.session_id.clone(),
            ip_address: actor.ip_address.clone(),
            user_agent: actor.user_agent.clone(),
            actor_service: actor.service.clone(),
        }
    }

    /// The device it is about, with its name as it is now.
    pub fn device(mut self, device_id: &str, device_name: &str) -> Self {
        self.device_id = Some(device_id.to_owned());
        self.device_name = Some(device_name.to_owned());
        self
    }

    /// The session it started or revoked.
    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    /// How many active sessions it ended.
    pub fn revoked(mut self, sessions: usize) -> Self {
        self.revoked_session_count = i32::try_from(sessions).unwrap_or(i32::MAX);
        self
    }

    /// Where this event stands in its user's listing.
    pub fn position(&self) -> EventPosition {
        EventPosition {
            occurred_at: self.occurred_at,
            id: self.id.clone(),
        }
    }
}

/// Inserts one event, and its webhook deliveries (the outbox: see
/// `webhook_deliveries`). Call it inside the transaction of the change it
/// records.
pub fn record(conn: &mut AnyConnection, event: &SecurityEventRow) -> Result<(), Error> {
    // Every column named and bound, `NULL`s too, so that the statement's SQL
    // follows from its type alone and it is prepared once per connection:
    // inserting the row struct leaves out (SQLite) or sets `DEFAULT`
    // (PostgreSQL) each `None` field, so Diesel renders its SQL again on
    // every run and, on PostgreSQL, prepares it again too. The columns have
    // no defaults but `revoked_session_count`'s, which is always bound.
    diesel::insert_into(security_events::table)
        .values((
            security_events::id.eq(&event.id),
            security_events::user_id.eq(&event.user_id),
            security_events::event_type.eq(&event.event_type),
            security_events::occurred_at.eq(event.occurred_at),
            security_events::device_id.eq(&event.device_id),
            security_events::device_name.eq(&event.device_name),
            security_events::session_id.eq(&event.session_id),
            security_events::revoked_session_count.eq(event.revoked_session_count),
            security_events::actor_session_id.eq(&event.actor_session_id),
            security_events::ip_address.eq(&event.ip_address),
            security_events::user_agent.eq(&event.user_agent),
            security_events::actor_service.eq(&event.actor_service),
        ))
        .execute_direct(conn)?;
    super::webhook_deliveries::enqueue(conn, event)
}

/// The wire value of the event recorded when a user's data is erased.
pub const USER_DATA_DELETED: &str = "USER_DATA_DELETED";

/// Deletes every event of the user; returns how many.
pub fn delete_all_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<usize, Error> {
    diesel::delete(security_events::table.filter(security_events::user_id.eq(user_id)))
        .execute_direct(conn)
}

/// A place in a user's listing: the last event of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub occurred_at: NaiveDateTime,
    pub id: String,
}

/// Up to `limit` events of `user_id`, newest first, starting after `after`
/// (from the newest event when `None`). Events inserted after the page
/// before it was read are newer than `after`, so they never shift a page.
pub fn page(
    conn: &mut AnyConnection,
    user_id: &str,
    after: Option<&EventPosition>,
    limit: i64,
) -> Result<Vec<SecurityEventRow>, Error> {
    let mut query = security_events::table
        .filter(security_events::user_id.eq(user_id))
        // Kept only until webhooks have delivered it: the user's data is gone.
        .filter(security_events::event_type.ne(USER_DATA_DELETED))
        .order((
            security_events::occurred_at.desc(),
            security_events::id.desc(),
        ))
        .limit(limit)
        .select(columns_of::<SecurityEventRow>())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(listed_after(after.occurred_at, after.id.clone()));
    }
    query.load(conn)
}

/// The events after (older than) the position `occurred_at`, `id`:
/// (occurred_at, id) < (occurred_at, id), written so that
/// `occurred_at <= …` can seek in the index on both backends.
#[diesel::dsl::auto_type]
fn listed_after(occurred_at: NaiveDateTime, id: String) -> _ {
    security_events::occurred_at.le(occurred_at).and(
        security_events::occurred_at
            .lt(occurred_at)
            .or(security_events::id.lt(id)),
    )
}

/// [`page`] for the caller `user_id`/`session_id`, with its session check
/// in the same query (a scalar subquery beside each event: the page is read
/// by its index, newest first, and stops at `limit`, which a join from the
/// caller's session would not let PostgreSQL do). `None` when the session
/// is not active at `now`, else the device of the caller's session and the
/// events. An empty page has no row to carry the check: it is made on its
/// own then, a second query.
pub fn page_for_session(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
    after: Option<&EventPosition>,
    limit: i64,
) -> Result<Checked<Vec<SecurityEventRow>>, Error> {
    let caller_device = sessions::table
        .filter(owned_active(user_id, session_id, now))
        .select(sessions::device_id)
        .single_value();
    let mut query = security_events::table
        .filter(security_events::user_id.eq(user_id))
        .filter(security_events::event_type.ne(USER_DATA_DELETED))
        .order((
            security_events::occurred_at.desc(),
            security_events::id.desc(),
        ))
        .limit(limit)
        .select((caller_device, columns_of::<SecurityEventRow>()))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(listed_after(after.occurred_at, after.id.clone()));
    }
    let rows: Vec<(Option<String>, SecurityEventRow)> = query.load(conn)?;
    super::sessions::checked_rows(conn, rows, user_id, session_id, now)
}

/// Deletes up to `batch` events (of any user) older than `cutoff`, oldest
/// first, and returns how many it deleted: one short write, so that
/// retention never holds the write lock for long.
pub fn prune_before(
    conn: &mut AnyConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, Error> {
    let ids: Vec<String> = security_events::table
        .filter(security_events::occurred_at.lt(cutoff))
        .order(security_events::occurred_at)
        .limit(batch)
        .select(security_events::id)
        .load_direct(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(security_events::table.filter(security_events::id.eq_any(&ids)))
        .execute_direct(conn)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::{
        connection::{Connection, InstrumentationEvent},
        sqlite::SqliteConnection,
    };

    use super::*;
    use crate::db::{now, run_migrations};

    #[test]
    fn events_with_and_without_their_optional_fields_share_one_prepared_insert() {
        let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        run_migrations(&mut conn).unwrap();
        let prepared = Arc::new(Mutex::new(Vec::new()));
        let seen = prepared.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        let actor = Actor {
            session_id: Some("s1".into()),
            ip_address: Some("127.0.0.1".into()),
            user_agent: None,
            service: None,
        };
        let bare = SecurityEventRow::new("alice", "SESSION_REVOKED", &Actor::default(), now());
        let full = SecurityEventRow::new("alice", "DEVICE_UNTRUSTED", &actor, now())
            .device("d1", "Laptop")
            .session("s2")
            .revoked(2);
        record(&mut conn, &bare).unwrap();
        record(&mut conn, &full).unwrap();

        let inserts: Vec<_> = prepared
            .lock()
            .unwrap()
            .iter()
            .filter(|sql| sql.contains("INSERT INTO `security_events`"))
            .cloned()
            .collect();
        assert_eq!(inserts.len(), 1, "{inserts:?}");
        let mut stored = page(&mut conn, "alice", None, 10).unwrap();
        let mut recorded = vec![bare, full];
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        recorded.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(stored, recorded);
    }
}
