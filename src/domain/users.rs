//! Writes to a whole user's data by a platform service (the `platform` tag).

use diesel::result::Error;

use crate::{
    api::types::SecurityEventType,
    db::{self, events::Actor, models::SecurityEventRow, AnyConnection},
};

/// `revokeUserSessions`: ends every active session of `user_id`; the
/// outcome is how many.
pub fn revoke_sessions(
    conn: &mut AnyConnection,
    user_id: &str,
    actor: &Actor,
) -> Result<usize, Error> {
    let now = db::now();
    let revoked = db::sessions::revoke_all(conn, user_id, now)?;
    let event = SecurityEventRow::new(
        user_id,
        SecurityEventType::AllSessionsRevoked.as_str(),
        actor,
        now,
    )
    .revoked(revoked);
    db::events::record(conn, &event)?;
    Ok(revoked)
}

/// `deleteUserData`: erases the user's events, devices and sessions.
pub fn erase(conn: &mut AnyConnection, user_id: &str, actor: &Actor) -> Result<(), Error> {
    let now = db::now();
    db::events::delete_all_for_user(conn, user_id)?;
    let revoked = db::devices::delete_all_for_user(conn, user_id, now)?;
    // Recorded after the erasure, so that webhooks deliver it; the listings
    // never show it (see `db::events::page`).
    let event = SecurityEventRow::new(
        user_id,
        SecurityEventType::UserDataDeleted.as_str(),
        actor,
        now,
    )
    .revoked(revoked);
    db::events::record(conn, &event)
}
