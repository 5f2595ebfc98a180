//! Rows of the two tables, as Diesel reads and writes them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{devices, sessions};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
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
