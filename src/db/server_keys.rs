//! All SQL on `server_keys`: secrets every server of a deployment shares,
//! kept in the database they share, so that they need no configuration and
//! survive restarts.

use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error},
};

use super::{direct::Direct, models::ServerKeyRow, schema::server_keys, AnyConnection};

/// The secret kept for `purpose`; the first caller stores `fresh()`. Two
/// servers starting at once on an empty database agree: the second insert
/// fails on the primary key, and both read the one that won. Runs outside a
/// transaction (on PostgreSQL a failed insert would abort one).
pub fn load_or_create(
    conn: &mut AnyConnection,
    purpose: &str,
    fresh: impl FnOnce() -> String,
) -> Result<String, Error> {
    if let Some(secret) = find(conn, purpose)? {
        return Ok(secret);
    }
    let row = ServerKeyRow {
        purpose: purpose.to_owned(),
        secret: fresh(),
        created_at: super::now(),
    };
    match diesel::insert_into(server_keys::table)
        .values(&row)
        .execute_direct(conn)
    {
        Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(e) => return Err(e),
    }
    find(conn, purpose)?.ok_or(Error::NotFound)
}

fn find(conn: &mut AnyConnection, purpose: &str) -> Result<Option<String>, Error> {
    server_keys::table
        .filter(server_keys::purpose.eq(purpose))
        .select(server_keys::secret)
        .first_direct(conn)
        .optional()
}
