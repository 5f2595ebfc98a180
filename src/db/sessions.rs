//! All SQL on `sessions`. A session is active while `revoked_at` is null and
//! `expires_at` is in the future; only active sessions authenticate, list or
//! take heartbeats.

use chrono::NaiveDateTime;
use diesel::{prelude::*, result::Error};

use super::{
    models::{SessionRow, SessionWithDevice},
    schema::{devices, sessions},
    AnyConnection,
};

/// Whether `session_id` is an active session of `user_id`: the check behind
/// every authenticated request.
pub fn is_active(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<bool, Error> {
    diesel::select(diesel::dsl::exists(
        sessions::table.filter(
            sessions::id
                .eq(session_id)
                .and(sessions::user_id.eq(user_id))
                .and(sessions::revoked_at.is_null())
                .and(sessions::expires_at.gt(now)),
        ),
    ))
    .get_result(conn)
}

pub fn list_active_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<SessionWithDevice>, Error> {
    sessions::table
        .inner_join(devices::table)
        .filter(
            sessions::user_id
                .eq(user_id)
                .and(sessions::revoked_at.is_null())
                .and(sessions::expires_at.gt(now)),
        )
        .order((sessions::last_activity.desc(), sessions::id))
        .select((SessionRow::as_select(), devices::device_name))
        .load(conn)
}

pub fn list_active_for_device(
    conn: &mut AnyConnection,
    device_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<SessionRow>, Error> {
    sessions::table
        .filter(
            sessions::device_id
                .eq(device_id)
                .and(sessions::revoked_at.is_null())
                .and(sessions::expires_at.gt(now)),
        )
        .order((sessions::last_activity.desc(), sessions::id))
        .select(SessionRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut AnyConnection, session: &SessionRow) -> Result<(), Error> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

/// Revokes one active session of the caller. Returns false when the caller
/// has no active session with that id.
pub fn revoke(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<bool, Error> {
    let updated = diesel::update(
        sessions::table.filter(
            sessions::id
                .eq(session_id)
                .and(sessions::user_id.eq(user_id))
                .and(sessions::revoked_at.is_null())
                .and(sessions::expires_at.gt(now)),
        ),
    )
    .set(sessions::revoked_at.eq(Some(now)))
    .execute(conn)?;
    Ok(updated > 0)
}

/// Revokes every session of the caller that is not revoked yet.
pub fn revoke_all(
    conn: &mut AnyConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    diesel::update(
        sessions::table.filter(
            sessions::user_id
                .eq(user_id)
                .and(sessions::revoked_at.is_null()),
        ),
    )
    .set(sessions::revoked_at.eq(Some(now)))
    .execute(conn)
}

/// Records activity on an active session of the caller and moves its expiry
/// to `new_expiry`. Returns false when there is no such active session.
pub fn heartbeat(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
    new_expiry: NaiveDateTime,
) -> Result<bool, Error> {
    let updated = diesel::update(
        sessions::table.filter(
            sessions::id
                .eq(session_id)
                .and(sessions::user_id.eq(user_id))
                .and(sessions::revoked_at.is_null())
                .and(sessions::expires_at.gt(now)),
        ),
    )
    .set((
        sessions::last_activity.eq(now),
        sessions::expires_at.eq(new_expiry),
    ))
    .execute(conn)?;
    Ok(updated > 0)
}
