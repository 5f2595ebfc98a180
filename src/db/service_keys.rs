//! All SQL on `service_keys`: the keys of the deployment's own services,
//! stored as the SHA-256 of the key (see `crate::service_auth`).

use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error},
};

use super::{
    direct::Direct,
    models::{columns_of, ServiceKeyRow},
    schema::service_keys,
    AnyConnection,
};

/// Stores a new key; `false` when a key of that name exists already.
pub fn create(conn: &mut AnyConnection, row: &ServiceKeyRow) -> Result<bool, Error> {
    match diesel::insert_into(service_keys::table)
        .values(row)
        .execute_direct(conn)
    {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every key, by name.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<ServiceKeyRow>, Error> {
    service_keys::table
        .order(service_keys::name)
        .select(columns_of::<ServiceKeyRow>())
        .load_direct(conn)
}

/// Deletes the key named `name`; `false` when there is none.
pub fn revoke(conn: &mut AnyConnection, name: &str) -> Result<bool, Error> {
    diesel::delete(service_keys::table.filter(service_keys::name.eq(name)))
        .execute_direct(conn)
        .map(|deleted| deleted > 0)
}

/// The key whose hash is `key_hash`, if any.
pub fn find_by_hash(
    conn: &mut AnyConnection,
    key_hash: &str,
) -> Result<Option<ServiceKeyRow>, Error> {
    service_keys::table
        .filter(service_keys::key_hash.eq(key_hash))
        .select(columns_of::<ServiceKeyRow>())
        .first_direct(conn)
        .optional()
}

/// Records that the key was used at `now`, unless that was recorded after
/// `unless_after` already (so a busy key costs a write a minute, not one a
/// request).
pub fn touch(
    conn: &mut AnyConnection,
    name: &str,
    now: NaiveDateTime,
    unless_after: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(
        service_keys::table.filter(
            service_keys::name.eq(name).and(
                service_keys::last_used_at
                    .is_null()
                    .or(service_keys::last_used_at.lt(unless_after)),
            ),
        ),
    )
    .set(service_keys::last_used_at.eq(Some(now)))
    .execute_direct(conn)
    .map(drop)
}
