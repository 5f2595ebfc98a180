//! Rows of the tables, as Diesel reads and writes them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{devices, security_events, server_keys, service_keys, sessions};

/// The columns a row type reads, in its fields' order, for either backend:
/// what `as_select()` selects, without binding the query to one backend (as
/// `as_select()` does), so that it can run on the connection inside an
/// `AnyConnection` (see `db::direct`). The row is read by `Queryable`.
pub fn columns_of<T: Selectable<diesel::sqlite::Sqlite>>() -> T::SelectExpression {
    T::construct_selection()
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub fingerprint: String,
    pub device_name: String,
    pub device_type: String,
    pub os: String,
    pub browser: String,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub is_trusted: bool,
    pub trust_level: String,
    pub trust_expires_at: Option<NaiveDateTime>,
    pub last_seen: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub device_id: String,
    pub ip_address: Option<String>,
    pub location: Option<String>,
    pub login_method: String,
    pub started_at: NaiveDateTime,
    pub last_activity: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A session as listed across devices: the row and its device's name.
#[derive(Debug, Clone, Queryable)]
pub struct SessionWithDevice {
    pub session: SessionRow,
    pub device_name: String,
}

/// A security event: what happened to one user's devices or sessions, as it
/// was at that moment (see `db::events`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = security_events)]
pub struct SecurityEventRow {
    pub id: String,
    pub user_id: String,
    /// The spec's `SecurityEventType` wire value.
    pub event_type: String,
    pub occurred_at: NaiveDateTime,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub session_id: Option<String>,
    pub revoked_session_count: i32,
    pub actor_session_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The service key whose platform request made the change.
    pub actor_service: Option<String>,
}

/// A service key, as stored: its name and the SHA-256 of the key (see
/// `db::service_keys`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_keys)]
pub struct ServiceKeyRow {
    pub name: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// A secret shared by every server of a deployment (see `db::server_keys`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = server_keys)]
pub struct ServerKeyRow {
    pub purpose: String,
    pub secret: String,
    pub created_at: NaiveDateTime,
}
