//! Database rows as the API's JSON types: the one place where a stored row
//! becomes what a client sees, shared by the handlers and by the webhooks
//! (which send the same event a listing shows).

use chrono::{NaiveDateTime, TimeZone, Utc};

use super::types::{
    Device, DeviceDetails, DeviceSession, DeviceType, SecurityEvent, SecurityEventType, Session,
    TrustLevel,
};
use crate::{
    auth::Caller,
    db::models::{DeviceRow, SecurityEventRow, SessionRow},
};

pub fn utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

/// Trusted only while the trust period lasts.
fn is_trusted_now(row: &DeviceRow, now: NaiveDateTime) -> bool {
    row.is_trusted && row.trust_expires_at.is_none_or(|until| until > now)
}

/// A device as listed to `caller`, who is on it when it is their session's.
pub fn device(row: DeviceRow, now: NaiveDateTime, caller: &Caller) -> Device {
    device_seen_from(row, now, Some(&caller.device_id))
}

/// A device as listed to whoever runs on `current_device` (nobody: `None`).
pub fn device_seen_from(
    row: DeviceRow,
    now: NaiveDateTime,
    current_device: Option<&str>,
) -> Device {
    Device {
        is_current: current_device == Some(row.id.as_str()),
        is_trusted: is_trusted_now(&row, now),
        // Values outside the spec's enums can only come from a foreign writer
        // of the table; they are shown as the most cautious value.
        device_type: DeviceType::from_wire(&row.device_type).unwrap_or(DeviceType::Desktop),
        trust_level: TrustLevel::from_wire(&row.trust_level).unwrap_or(TrustLevel::Unknown),
        id: row.id,
        device_name: row.device_name,
        os: row.os,
        browser: row.browser,
        ip_address: row.ip_address,
        country: row.country,
        city: row.city,
        last_seen: utc(row.last_seen),
        created_at: utc(row.created_at),
        trust_expires_at: row.trust_expires_at.map(utc),
    }
}

fn device_session(row: SessionRow, caller: &Caller) -> DeviceSession {
    DeviceSession {
        is_current: row.id == caller.session_id,
        id: row.id,
        ip_address: row.ip_address,
        location: row.location,
        started_at: utc(row.started_at),
        last_activity: utc(row.last_activity),
        expires_at: utc(row.expires_at),
        login_method: row.login_method,
    }
}

pub fn device_details(
    row: DeviceRow,
    sessions: Vec<SessionRow>,
    now: NaiveDateTime,
    caller: &Caller,
) -> DeviceDetails {
    let user_agent = row.user_agent.clone();
    let fingerprint = row.fingerprint.clone();
    let summary = device(row, now, caller);
    DeviceDetails {
        id: summary.id,
        device_name: summary.device_name,
        device_type: summary.device_type,
        os: summary.os,
        browser: summary.browser,
        ip_address: summary.ip_address,
        country: summary.country,
        city: summary.city,
        is_trusted: summary.is_trusted,
        trust_level: summary.trust_level,
        last_seen: summary.last_seen,
        created_at: summary.created_at,
        trust_expires_at: summary.trust_expires_at,
        is_current: summary.is_current,
        user_agent,
        device_fingerprint: fingerprint,
        sessions: sessions
            .into_iter()
            .map(|session| device_session(session, caller))
            .collect(),
    }
}

/// A session as listed to `caller`; `isCurrent` when it is theirs.
pub fn session(row: SessionRow, device_name: String, caller_session: &str) -> Session {
    Session {
        is_current: row.id == caller_session,
        id: row.id,
        device_id: row.device_id,
        device_name,
        ip_address: row.ip_address,
        location: row.location,
        started_at: utc(row.started_at),
        last_activity: utc(row.last_activity),
        expires_at: utc(row.expires_at),
        login_method: row.login_method,
    }
}

/// The event as `listSecurityEvents` shows it (and the webhooks send it).
pub fn security_event(row: SecurityEventRow) -> Option<SecurityEvent> {
    let Some(kind) = SecurityEventType::from_wire(&row.event_type) else {
        // Only a foreign writer of the table can store another type.
        log::warn!(
            "security event {} has an unknown type {:?}; not listed",
            row.id,
            row.event_type
        );
        return None;
    };
    Some(SecurityEvent {
        id: row.id,
        r#type: kind,
        occurred_at: utc(row.occurred_at),
        device_id: row.device_id,
        device_name: row.device_name,
        session_id: row.session_id,
        revoked_session_count: row.revoked_session_count.max(0),
        actor_session_id: row.actor_session_id,
        actor_service: row.actor_service,
        ip_address: row.ip_address,
        user_agent: row.user_agent,
    })
}
