//! All SQL on `sessions`. A session is active while `revoked_at` is null and
//! `expires_at` is in the future; only active sessions authenticate, list or
//! take heartbeats.

use chrono::NaiveDateTime;
use diesel::{prelude::*, result::Error};

use super::{
    direct::Direct,
    models::{columns_of, DeviceRow, SessionRow, SessionWithDevice},
    prepared,
    schema::{devices, sessions},
    AnyConnection,
};

/// The filter "active at `now`": not revoked and not expired.
#[diesel::dsl::auto_type]
pub(crate) fn active_at(now: NaiveDateTime) -> _ {
    sessions::revoked_at
        .is_null()
        .and(sessions::expires_at.gt(now))
}

/// The filter "`session_id`, owned by `user_id` and active at `now`".
#[diesel::dsl::auto_type]
pub(crate) fn owned_active<'a>(user_id: &'a str, session_id: &'a str, now: NaiveDateTime) -> _ {
    let active: active_at = active_at(now);
    sessions::id
        .eq(session_id)
        .and(sessions::user_id.eq(user_id))
        .and(active)
}

/// The device of `session_id` when it is an active session of `user_id`,
/// else `None`: the check behind every authenticated request (one lookup by
/// primary key).
pub fn active_device(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, Error> {
    sessions::table
        .filter(owned_active(user_id, session_id, now))
        .select(sessions::device_id)
        .first_direct(conn)
        .optional()
}

/// [`active_device`], reading the whole session and its device in the same
/// query: the session check of `getCurrentSession`, which is all it does.
pub fn active_with_device(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(SessionRow, DeviceRow)>, Error> {
    sessions::table
        .inner_join(devices::table)
        .filter(owned_active(user_id, session_id, now))
        .select((columns_of::<SessionRow>(), columns_of::<DeviceRow>()))
        .first_direct(conn)
        .optional()
}

pub fn list_active_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<SessionWithDevice>, Error> {
    sessions::table
        .inner_join(devices::table)
        .filter(sessions::user_id.eq(user_id).and(active_at(now)))
        .order((sessions::last_activity.desc(), sessions::id))
        .select((columns_of::<SessionRow>(), devices::device_name))
        .load_direct(conn)
}

/// [`list_active_for_user`] for the caller `user_id`/`session_id` with its
/// session check in the same query: the caller's active session
/// left-joined to the user's active sessions and their devices. `None` when
/// the session is not active at `now`, else the device of the caller's
/// session and the sessions.
pub fn list_active_for_session(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(String, Vec<SessionWithDevice>)>, Error> {
    let listed = diesel::alias!(sessions as listed);
    let rows: Vec<(String, Option<SessionRow>, Option<String>)> = sessions::table
        .left_join(
            listed.on(listed
                .field(sessions::user_id)
                .eq(sessions::user_id)
                .and(listed.field(sessions::revoked_at).is_null())
                .and(listed.field(sessions::expires_at).gt(now))),
        )
        .left_join(devices::table.on(devices::id.eq(listed.field(sessions::device_id))))
        .filter(owned_active(user_id, session_id, now))
        .order((
            listed.field(sessions::last_activity).desc(),
            listed.field(sessions::id),
        ))
        .select((
            sessions::device_id,
            listed.fields(sessions::all_columns).nullable(),
            devices::device_name.nullable(),
        ))
        .load_direct(conn)?;
    let Some((caller_device, _, _)) = rows.first() else {
        return Ok(None);
    };
    let caller_device = caller_device.clone();
    let sessions = rows
        .into_iter()
        .filter_map(|(_, session, device_name)| {
            Some(SessionWithDevice {
                session: session?,
                device_name: device_name?,
            })
        })
        .collect();
    Ok(Some((caller_device, sessions)))
}

pub fn list_active_for_device(
    conn: &mut AnyConnection,
    device_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<SessionRow>, Error> {
    sessions::table
        .filter(sessions::device_id.eq(device_id).and(active_at(now)))
        .order((sessions::last_activity.desc(), sessions::id))
        .select(columns_of::<SessionRow>())
        .load_direct(conn)
}

pub fn insert(conn: &mut AnyConnection, session: &SessionRow) -> Result<(), Error> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute_direct(conn)
        .map(drop)
}

/// Revokes one active session of the caller. Returns the id and name of its
/// device, or `None` when the caller has no active session with that id.
pub fn revoke(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(String, String)>, Error> {
    let updated = prepared::update(
        sessions::table,
        owned_active(user_id, session_id, now),
        sessions::revoked_at.eq(Some(now)),
    )
    .execute_direct(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    sessions::table
        .inner_join(devices::table)
        .filter(sessions::id.eq(session_id))
        .select((devices::id, devices::device_name))
        .first_direct(conn)
        .optional()
}

/// Revokes every active session of the caller; returns how many.
pub fn revoke_all(
    conn: &mut AnyConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    prepared::update(
        sessions::table,
        sessions::user_id.eq(user_id).and(active_at(now)),
        sessions::revoked_at.eq(Some(now)),
    )
    .execute_direct(conn)
}

/// Revokes every active session of the caller but `keep`; returns how many.
pub fn revoke_all_except(
    conn: &mut AnyConnection,
    user_id: &str,
    keep: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    prepared::update(
        sessions::table,
        sessions::user_id
            .eq(user_id)
            .and(sessions::id.ne(keep))
            .and(active_at(now)),
        sessions::revoked_at.eq(Some(now)),
    )
    .execute_direct(conn)
}

/// Records activity on an active session of the caller (and its device) and
/// moves its expiry to `new_expiry`, when the session started at
/// `started_since` or later. Must run inside a write transaction. Returns
/// false when there is no such session.
pub fn heartbeat(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
    new_expiry: NaiveDateTime,
    started_since: NaiveDateTime,
) -> Result<bool, Error> {
    let session_activity = (
        sessions::last_activity.eq(now),
        sessions::expires_at.eq(new_expiry),
    );
    let target =
        || owned_active(user_id, session_id, now).and(sessions::started_at.ge(started_since));
    match conn {
        // A write transaction holds SQLite's one write lock from its start,
        // so the order rows are written in cannot deadlock there: the
        // session goes first and names its device, which is then updated by
        // its key. (Found through a subquery, `IN (SELECT …)`, SQLite builds
        // a temporary index for it on every run: docs/performance.md.)
        AnyConnection::Sqlite(conn) => {
            let device = prepared::update(sessions::table, target(), session_activity)
                .returning(sessions::device_id)
                .get_result::<String>(conn)
                .optional()?;
            let Some(device) = device else {
                return Ok(false);
            };
            prepared::update(
                devices::table,
                devices::id.eq(device),
                devices::last_seen.eq(now),
            )
            .execute(conn)?;
            Ok(true)
        }
        // Device first, then session: the order untrust and delete lock rows
        // in, so concurrent transactions cannot deadlock on PostgreSQL.
        AnyConnection::Postgresql(conn) => {
            let device_of_session = sessions::table.filter(target()).select(sessions::device_id);
            prepared::update(
                devices::table,
                devices::id.eq_any(device_of_session),
                devices::last_seen.eq(now),
            )
            .execute(conn)?;
            let updated =
                prepared::update(sessions::table, target(), session_activity).execute(conn)?;
            Ok(updated > 0)
        }
    }
}

/// When the active session `session_id` of `user_id` started; `None` when
/// there is no such active session.
pub fn active_started_at(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, Error> {
    sessions::table
        .filter(owned_active(user_id, session_id, now))
        .select(sessions::started_at)
        .first_direct(conn)
        .optional()
}

/// Revokes the user's active sessions beyond the `keep` most recently
/// active ones; returns each revoked session with its device's id and name,
/// for their events.
pub fn revoke_beyond(
    conn: &mut AnyConnection,
    user_id: &str,
    keep: i64,
    now: NaiveDateTime,
) -> Result<Vec<(String, String, String)>, Error> {
    let beyond: Vec<(String, String, String)> = sessions::table
        .inner_join(devices::table)
        .filter(sessions::user_id.eq(user_id).and(active_at(now)))
        .order((sessions::last_activity.desc(), sessions::id.desc()))
        .offset(keep)
        .limit(i64::MAX)
        .select((sessions::id, devices::id, devices::device_name))
        .load_direct(conn)?;
    if beyond.is_empty() {
        return Ok(beyond);
    }
    let ids: Vec<&str> = beyond.iter().map(|(id, _, _)| id.as_str()).collect();
    diesel::update(sessions::table.filter(sessions::id.eq_any(ids)))
        .set(sessions::revoked_at.eq(Some(now)))
        .execute_direct(conn)?;
    Ok(beyond)
}

/// The rows of a query that carried its session check as a scalar
/// subquery beside each row (`Some(device)` when the session is active):
/// `None` when it is not, else the caller's device and the rows. No row
/// carried the check when there were none: it is then made on its own.
pub(crate) fn checked_rows<T>(
    conn: &mut AnyConnection,
    rows: Vec<(Option<String>, T)>,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(String, Vec<T>)>, Error> {
    let Some((caller_device, _)) = rows.first() else {
        let caller_device = active_device(conn, user_id, session_id, now)?;
        return Ok(caller_device.map(|device| (device, Vec::new())));
    };
    let Some(caller_device) = caller_device.clone() else {
        return Ok(None);
    };
    Ok(Some((
        caller_device,
        rows.into_iter().map(|(_, row)| row).collect(),
    )))
}
