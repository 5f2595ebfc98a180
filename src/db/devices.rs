//! All SQL on `devices`. Every function takes the owner's user id: a device
//! of another user is indistinguishable from a missing one.

use chrono::NaiveDateTime;
use diesel::{prelude::*, result::Error};

use super::{
    direct::Direct,
    models::{columns_of, DeviceRow, SessionRow},
    one_statement::Checked,
    prepared,
    schema::{devices, sessions},
    sessions::{active_at, owned_active},
    AnyConnection,
};

pub const TRUST_LEVEL_TRUSTED: &str = "HIGH";
pub const TRUST_LEVEL_UNTRUSTED: &str = "LOW";

pub fn list_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<DeviceRow>, Error> {
    devices::table
        .filter(devices::user_id.eq(user_id))
        .order((devices::last_seen.desc(), devices::id))
        .select(columns_of::<DeviceRow>())
        .load_direct(conn)
}

/// [`list_for_user`] for the caller `user_id`/`session_id`, with its
/// session check in the same query: a scalar subquery beside each device, so
/// the listing is read by its index as [`list_for_user`] reads it (a join from
/// the caller's session measured slower on PostgreSQL: docs/performance.md).
/// `None` when the session is not active at `now`, else the device of the
/// caller's session and the devices. A user without devices has no row to
/// carry the check: it is made on its own then, a second query.
pub fn list_for_session(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(String, Vec<DeviceRow>)>, Error> {
    let caller_device = sessions::table
        .filter(owned_active(user_id, session_id, now))
        .select(sessions::device_id)
        .single_value();
    let rows: Vec<(Option<String>, DeviceRow)> = devices::table
        .filter(devices::user_id.eq(user_id))
        .order((devices::last_seen.desc(), devices::id))
        .select((caller_device, columns_of::<DeviceRow>()))
        .load_direct(conn)?;
    super::sessions::checked_rows(conn, rows, user_id, session_id, now)
}

pub fn find_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    device_id: &str,
) -> Result<Option<DeviceRow>, Error> {
    devices::table
        .filter(devices::id.eq(device_id).and(devices::user_id.eq(user_id)))
        .select(columns_of::<DeviceRow>())
        .first_direct(conn)
        .optional()
}

/// A device and its active sessions, most recently active first.
pub type DeviceWithSessions = (DeviceRow, Vec<SessionRow>);

/// [`find_for_user`] with the device's active sessions (most recently
/// active first), for the caller `user_id`/`session_id` with its session
/// check in the same query: the caller's active session, left-joined to
/// their device `device_id` and that device's active sessions. `None` when
/// the session is not active at `now`, else the device of the caller's
/// session and the device found, if any.
pub fn find_for_session(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: &str,
    device_id: &str,
    now: NaiveDateTime,
) -> Result<Checked<Option<DeviceWithSessions>>, Error> {
    let listed = diesel::alias!(sessions as listed);
    let rows: Vec<(String, Option<DeviceRow>, Option<SessionRow>)> = sessions::table
        .left_join(
            // Owned: Diesel wants the ON clause's binds to outlive the query.
            devices::table.on(devices::id
                .eq(device_id.to_owned())
                .and(devices::user_id.eq(sessions::user_id))),
        )
        .left_join(
            listed.on(listed
                .field(sessions::device_id)
                .eq(devices::id)
                .and(listed.field(sessions::revoked_at).is_null())
                .and(listed.field(sessions::expires_at).gt(now))),
        )
        .filter(owned_active(user_id, session_id, now))
        .order((
            listed.field(sessions::last_activity).desc(),
            listed.field(sessions::id),
        ))
        .select((
            sessions::device_id,
            columns_of::<DeviceRow>().nullable(),
            listed.fields(sessions::all_columns).nullable(),
        ))
        .load_direct(conn)?;
    let Some((caller_device, device, _)) = rows.first() else {
        return Ok(None);
    };
    let (caller_device, device) = (caller_device.clone(), device.clone());
    let found = device.map(|device| {
        let sessions = rows
            .into_iter()
            .filter_map(|(_, _, session)| session)
            .collect();
        (device, sessions)
    });
    Ok(Some((caller_device, found)))
}

pub fn find_by_fingerprint(
    conn: &mut AnyConnection,
    user_id: &str,
    fingerprint: &str,
) -> Result<Option<DeviceRow>, Error> {
    devices::table
        .filter(
            devices::user_id
                .eq(user_id)
                .and(devices::fingerprint.eq(fingerprint)),
        )
        .select(columns_of::<DeviceRow>())
        .first_direct(conn)
        .optional()
}

pub fn insert(conn: &mut AnyConnection, device: &DeviceRow) -> Result<(), Error> {
    diesel::insert_into(devices::table)
        .values(device)
        .execute_direct(conn)
        .map(drop)
}

/// Refreshes what a new sign-in tells about a known device.
pub fn record_sign_in(conn: &mut AnyConnection, seen: &DeviceRow) -> Result<(), Error> {
    prepared::update(
        devices::table,
        devices::id.eq(&seen.id),
        (
            devices::device_name.eq(&seen.device_name),
            devices::device_type.eq(&seen.device_type),
            devices::os.eq(&seen.os),
            devices::browser.eq(&seen.browser),
            devices::user_agent.eq(&seen.user_agent),
            devices::ip_address.eq(&seen.ip_address),
            devices::country.eq(&seen.country),
            devices::city.eq(&seen.city),
            devices::last_seen.eq(seen.last_seen),
        ),
    )
    .execute_direct(conn)
    .map(drop)
}

/// A device a change was made to, as it was named at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub id: String,
    pub name: String,
    /// The active sessions the change ended.
    pub revoked_sessions: usize,
}

/// Trusts the caller's device with `fingerprint` until `until`.
/// Returns `None` when the caller has no such device.
pub fn trust(
    conn: &mut AnyConnection,
    user_id: &str,
    fingerprint: &str,
    until: NaiveDateTime,
) -> Result<Option<Changed>, Error> {
    let updated = prepared::update(
        devices::table,
        devices::user_id
            .eq(user_id)
            .and(devices::fingerprint.eq(fingerprint)),
        (
            devices::is_trusted.eq(true),
            devices::trust_level.eq(TRUST_LEVEL_TRUSTED),
            devices::trust_expires_at.eq(Some(until)),
        ),
    )
    .execute_direct(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    // Read after the update, which holds the row's lock on PostgreSQL.
    Ok(
        find_by_fingerprint(conn, user_id, fingerprint)?.map(|row| Changed {
            id: row.id,
            name: row.device_name,
            revoked_sessions: 0,
        }),
    )
}

/// Untrusts the caller's device and revokes all its active sessions. Must
/// run inside a write transaction so that both changes land or neither.
/// Returns `None` when the caller has no such device.
pub fn untrust(
    conn: &mut AnyConnection,
    user_id: &str,
    device_id: &str,
    now: NaiveDateTime,
) -> Result<Option<Changed>, Error> {
    // The name is read by the update itself (`RETURNING`): as it is once
    // the row is locked, in the same statement.
    let name = prepared::update(
        devices::table,
        devices::id.eq(device_id).and(devices::user_id.eq(user_id)),
        (
            devices::is_trusted.eq(false),
            devices::trust_level.eq(TRUST_LEVEL_UNTRUSTED),
            devices::trust_expires_at.eq(None::<NaiveDateTime>),
        ),
    )
    .returning(devices::device_name)
    .get_result_direct::<String>(conn)
    .optional()?;
    let Some(name) = name else {
        return Ok(None);
    };
    // Expired sessions are left as they are: they authenticate no more, and
    // the count is of the sessions this untrust ended.
    let revoked_sessions = prepared::update(
        sessions::table,
        sessions::device_id.eq(device_id).and(active_at(now)),
        sessions::revoked_at.eq(Some(now)),
    )
    .execute_direct(conn)?;
    Ok(Some(Changed {
        id: device_id.to_owned(),
        name,
        revoked_sessions,
    }))
}

/// Deletes the caller's device, and its sessions with it (ON DELETE
/// CASCADE; the explicit delete after it keeps that true should the
/// foreign-key pragma ever be off). Device row first, then sessions: the lock
/// order of every write, so concurrent transactions cannot deadlock. The
/// name and the active sessions are read first, for the device's last event.
/// Returns `None` when the caller has no such device.
pub fn delete(
    conn: &mut AnyConnection,
    user_id: &str,
    device_id: &str,
    now: NaiveDateTime,
) -> Result<Option<Changed>, Error> {
    let Some(device) = find_for_user(conn, user_id, device_id)? else {
        return Ok(None);
    };
    let active: i64 = sessions::table
        .filter(sessions::device_id.eq(device_id).and(active_at(now)))
        .count()
        .get_result_direct(conn)?;
    let deleted = diesel::delete(
        devices::table.filter(devices::id.eq(device_id).and(devices::user_id.eq(user_id))),
    )
    .execute_direct(conn)?;
    if deleted == 0 {
        return Ok(None);
    }
    diesel::delete(sessions::table.filter(sessions::device_id.eq(device_id)))
        .execute_direct(conn)?;
    Ok(Some(Changed {
        id: device.id,
        name: device.device_name,
        revoked_sessions: usize::try_from(active).unwrap_or(0),
    }))
}

pub fn count_all(conn: &mut AnyConnection) -> Result<i64, Error> {
    devices::table.count().get_result_direct(conn)
}

/// Renames the user's device; returns it as it is now, or `None` when the
/// user has no such device.
pub fn rename(
    conn: &mut AnyConnection,
    user_id: &str,
    device_id: &str,
    name: &str,
) -> Result<Option<DeviceRow>, Error> {
    let renamed = diesel::update(
        devices::table.filter(devices::id.eq(device_id).and(devices::user_id.eq(user_id))),
    )
    .set(devices::device_name.eq(name))
    .execute_direct(conn)?;
    if renamed == 0 {
        return Ok(None);
    }
    find_for_user(conn, user_id, device_id)
}

/// Deletes every device of the user, and their sessions with them (as
/// [`delete`] does, device rows first); returns how many sessions were
/// active.
pub fn delete_all_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let active: i64 = sessions::table
        .filter(sessions::user_id.eq(user_id).and(active_at(now)))
        .count()
        .get_result_direct(conn)?;
    diesel::delete(devices::table.filter(devices::user_id.eq(user_id))).execute_direct(conn)?;
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute_direct(conn)?;
    Ok(usize::try_from(active).unwrap_or(0))
}
