//! The JSON bodies, field for field and in the order of the server's
//! (openapi/openapi.yaml's schemas), and the rows they are built from.

use actix_web::{http::StatusCode, HttpResponse};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::{auth::Claims, Outcome};

/// A device as both databases return it (columns `DEVICE_COLUMNS`).
pub struct DeviceRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub os: String,
    pub browser: String,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub trusted: bool,
    pub level: String,
    pub trust_expires_at: Option<NaiveDateTime>,
    pub last_seen: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// The columns of a `DeviceRow`, of `devices d`, in its order.
#[macro_export]
macro_rules! device_columns {
    () => {
        "d.id, d.device_name, d.device_type, d.os, d.browser, d.ip_address, d.country, d.city, \
         d.is_trusted, d.trust_level, d.trust_expires_at, d.last_seen, d.created_at"
    };
}
pub const DEVICE_COLUMN_COUNT: usize = 13;

/// A session as both databases return it (columns `SESSION_COLUMNS`).
pub struct SessionRow {
    pub id: String,
    pub device_id: String,
    pub ip: Option<String>,
    pub location: Option<String>,
    pub login_method: String,
    pub started_at: NaiveDateTime,
    pub last_activity: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// The columns of a `SessionRow`, of `sessions x`, in its order.
#[macro_export]
macro_rules! session_columns {
    () => {
        "x.id, x.device_id, x.ip_address, x.location, x.login_method, x.started_at, \
         x.last_activity, x.expires_at"
    };
}

/// The caller's devices and the device of the caller's session.
pub struct Listed {
    pub current_device: String,
    pub devices: Vec<DeviceRow>,
}

pub struct Details {
    pub device: DeviceRow,
    pub user_agent: Option<String>,
    pub fingerprint: String,
    pub sessions: Vec<SessionRow>,
}

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Device<'a> {
    id: &'a str,
    device_name: &'a str,
    device_type: &'a str,
    os: &'a str,
    browser: &'a str,
    ip_address: Option<&'a str>,
    country: Option<&'a str>,
    city: Option<&'a str>,
    is_trusted: bool,
    trust_level: &'a str,
    last_seen: DateTime<Utc>,
    created_at: DateTime<Utc>,
    trust_expires_at: Option<DateTime<Utc>>,
    is_current: bool,
}

impl<'a> Device<'a> {
    fn of(row: &'a DeviceRow, now: NaiveDateTime, current_device: &str) -> Self {
        Device {
            id: &row.id,
            device_name: &row.name,
            // As the server shows values outside the spec's enums.
            device_type: match row.kind.as_str() {
                k @ ("DESKTOP" | "MOBILE" | "TABLET") => k,
                _ => "DESKTOP",
            },
            os: &row.os,
            browser: &row.browser,
            ip_address: row.ip.as_deref(),
            country: row.country.as_deref(),
            city: row.city.as_deref(),
            is_trusted: row.trusted && row.trust_expires_at.is_none_or(|until| until > now),
            trust_level: match row.level.as_str() {
                l @ ("HIGH" | "MEDIUM" | "LOW" | "UNKNOWN") => l,
                _ => "UNKNOWN",
            },
            last_seen: utc(row.last_seen),
            created_at: utc(row.created_at),
            trust_expires_at: row.trust_expires_at.map(utc),
            is_current: row.id == current_device,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceSession<'a> {
    id: &'a str,
    ip_address: Option<&'a str>,
    location: Option<&'a str>,
    started_at: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    login_method: &'a str,
    is_current: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceDetails<'a> {
    #[serde(flatten)]
    device: Device<'a>,
    user_agent: Option<&'a str>,
    device_fingerprint: &'a str,
    sessions: Vec<DeviceSession<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Session<'a> {
    id: &'a str,
    device_id: &'a str,
    device_name: &'a str,
    ip_address: Option<&'a str>,
    location: Option<&'a str>,
    started_at: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    login_method: &'a str,
    is_current: bool,
}

#[derive(Serialize)]
struct DeviceList<'a> {
    success: bool,
    devices: Vec<Device<'a>>,
}

#[derive(Serialize)]
struct OneDevice<'a> {
    success: bool,
    device: DeviceDetails<'a>,
}

#[derive(Serialize)]
struct Current<'a> {
    success: bool,
    session: Session<'a>,
    device: Device<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat<'a> {
    success: bool,
    message: &'a str,
    new_expiry: DateTime<Utc>,
}

#[derive(Serialize)]
struct Message<'a> {
    success: bool,
    message: &'a str,
}

#[derive(Serialize)]
pub struct Health {
    pub success: bool,
    pub status: &'static str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    success: bool,
    error: &'a str,
}

pub fn json<T: Serialize>(status: u16, body: &T) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status)
            .content_type("application/json")
            .body(bytes),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

pub fn error(status: u16, message: &str) -> HttpResponse {
    json(
        status,
        &ErrorBody {
            success: false,
            error: message,
        },
    )
}

pub fn unauthorized(message: &str) -> HttpResponse {
    let mut response = error(401, message);
    response.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        actix_web::http::header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// The answer to a failed statement: the cause in the log, the
/// operation's public message in the body.
fn failed<E: std::fmt::Display>(error: E, public: &str) -> HttpResponse {
    eprintln!("ERROR {public}: {error}");
    self::error(500, public)
}

fn inactive() -> HttpResponse {
    unauthorized("Session is no longer active")
}

pub type Result<T> = std::result::Result<Outcome<T>, String>;

pub fn list(outcome: Result<Listed>, now: NaiveDateTime, public: &str) -> HttpResponse {
    match outcome {
        Ok(Outcome::Done(listed)) => json(
            200,
            &DeviceList {
                success: true,
                devices: listed
                    .devices
                    .iter()
                    .map(|row| Device::of(row, now, &listed.current_device))
                    .collect(),
            },
        ),
        Ok(Outcome::Inactive) => inactive(),
        Ok(Outcome::NotFound) => error(404, "Not found"),
        Err(e) => failed(e, public),
    }
}

pub fn current(
    outcome: Result<(SessionRow, DeviceRow)>,
    claims: &Claims,
    now: NaiveDateTime,
    public: &str,
) -> HttpResponse {
    match outcome {
        Ok(Outcome::Done((session, device))) => json(
            200,
            &Current {
                success: true,
                session: Session {
                    id: &session.id,
                    device_id: &session.device_id,
                    device_name: &device.name,
                    ip_address: session.ip.as_deref(),
                    location: session.location.as_deref(),
                    started_at: utc(session.started_at),
                    last_activity: utc(session.last_activity),
                    expires_at: utc(session.expires_at),
                    login_method: &session.login_method,
                    is_current: session.id == claims.sid,
                },
                device: Device::of(&device, now, &session.device_id),
            },
        ),
        Ok(Outcome::Inactive) => inactive(),
        Ok(Outcome::NotFound) => error(404, "Not found"),
        Err(e) => failed(e, public),
    }
}

pub fn details(
    outcome: Result<(String, Details)>,
    claims: &Claims,
    now: NaiveDateTime,
    public: &str,
) -> HttpResponse {
    match outcome {
        Ok(Outcome::Done((current_device, d))) => json(
            200,
            &OneDevice {
                success: true,
                device: DeviceDetails {
                    device: Device::of(&d.device, now, &current_device),
                    user_agent: d.user_agent.as_deref(),
                    device_fingerprint: &d.fingerprint,
                    sessions: d
                        .sessions
                        .iter()
                        .map(|s| DeviceSession {
                            id: &s.id,
                            ip_address: s.ip.as_deref(),
                            location: s.location.as_deref(),
                            started_at: utc(s.started_at),
                            last_activity: utc(s.last_activity),
                            expires_at: utc(s.expires_at),
                            login_method: &s.login_method,
                            is_current: s.id == claims.sid,
                        })
                        .collect(),
                },
            },
        ),
        Ok(Outcome::Inactive) => inactive(),
        Ok(Outcome::NotFound) => error(404, "Device not found"),
        Err(e) => failed(e, public),
    }
}

pub fn message(outcome: Result<()>, ok: &str, not_found: &str, public: &str) -> HttpResponse {
    match outcome {
        Ok(Outcome::Done(())) => json(
            200,
            &Message {
                success: true,
                message: ok,
            },
        ),
        Ok(Outcome::Inactive) => inactive(),
        Ok(Outcome::NotFound) => error(404, not_found),
        Err(e) => failed(e, public),
    }
}

pub fn heartbeat(outcome: Result<NaiveDateTime>) -> HttpResponse {
    match outcome {
        Ok(Outcome::Done(new_expiry)) => json(
            200,
            &Heartbeat {
                success: true,
                message: "Session updated successfully",
                new_expiry: utc(new_expiry),
            },
        ),
        Ok(Outcome::Inactive) => inactive(),
        Ok(Outcome::NotFound) => error(404, "Session not found or expired"),
        Err(e) => failed(e, "Failed to update session"),
    }
}
