//! The `devices` tag: one handler per operationId.

use actix_web::{delete, get, patch, post, web};
use chrono::{NaiveDateTime, TimeZone, Utc};

use super::{
    common::{
        BadRequest, BodyFailures, DeviceIdParam, DeviceNotFound, InvalidPathId, SecuredFailures,
    },
    error::failure,
    extract::{IdPath, Origin, ValidatedJson},
    types::{
        responses, Device, DeviceDetails, DeviceDetailsResponse, DeviceListResponse,
        DeviceResponse, DeviceSession, DeviceType, ErrorResponse, MessageResponse,
        RenameDeviceRequest, SecurityEventType, TrustDeviceRequest, TrustDeviceResponse,
        TrustLevel,
    },
};
use crate::{
    auth::{Bearer, Caller},
    db::{
        self,
        devices::Changed,
        models::{DeviceRow, SecurityEventRow, SessionRow},
    },
    state::AppState,
};

pub(crate) fn utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

/// Trusted only while the trust period lasts.
fn is_trusted_now(row: &DeviceRow, now: NaiveDateTime) -> bool {
    row.is_trusted && row.trust_expires_at.is_none_or(|until| until > now)
}

/// A device as listed to `caller`, who is on it when it is their session's.
pub(crate) fn device(row: DeviceRow, now: NaiveDateTime, caller: &Caller) -> Device {
    device_seen_from(row, now, Some(&caller.device_id))
}

/// A device as listed to whoever runs on `current_device` (nobody: `None`).
pub(crate) fn device_seen_from(
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

fn device_details(
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

/// The event of a change to a device made by `caller` from `origin`.
fn device_event(
    kind: SecurityEventType,
    changed: &Changed,
    caller: &Caller,
    origin: &Origin,
    at: NaiveDateTime,
) -> SecurityEventRow {
    SecurityEventRow::new(&caller.user_id, kind.as_str(), &origin.actor(caller), at)
        .device(&changed.id, &changed.name)
        .revoked(changed.revoked_sessions)
}

fn device_not_found() -> ErrorResponse {
    ErrorResponse::new("Device not found")
}

/// List the caller's devices
#[utoipa::path(
    operation_id = "listDevices",
    responses(
        (status = 200, description = "The caller's devices.", body = DeviceListResponse),
        (status = 500, description = "The devices could not be read.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[get("/devices")]
pub async fn list_devices(bearer: Bearer, state: web::Data<AppState>) -> responses::ListDevices {
    let now = db::now();
    match bearer
        .read(&state.db, move |conn, caller| {
            Ok((
                db::devices::list_for_user(conn, &caller.user_id)?,
                caller.clone(),
            ))
        })
        .await
    {
        Ok((rows, caller)) => responses::ListDevices::Ok(DeviceListResponse {
            success: true,
            devices: rows
                .into_iter()
                .map(|row| device(row, now, &caller))
                .collect(),
        }),
        Err(e) => failure(e, "Failed to retrieve devices"),
    }
}

/// Trust one of the caller's devices
#[utoipa::path(
    operation_id = "trustDevice",
    request_body(content = TrustDeviceRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The device is trusted until `trustExpiresAt`.", body = TrustDeviceResponse),
        (status = 404, description = "The caller has no device with that fingerprint.", body = ErrorResponse),
        (status = 500, description = "The device could not be trusted.", body = ErrorResponse),
        BadRequest, BodyFailures, SecuredFailures,
    )
)]
#[post("/devices/trust")]
pub async fn trust_device(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
    body: ValidatedJson<TrustDeviceRequest>,
) -> responses::TrustDevice {
    let until = db::now() + state.policy.trust_period;
    let fingerprint = body.0.fingerprint;
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let Some(trusted) = db::devices::trust(conn, &caller.user_id, &fingerprint, until)?
            else {
                return Ok(false);
            };
            let event = device_event(
                SecurityEventType::DeviceTrusted,
                &trusted,
                caller,
                &origin,
                now,
            );
            db::events::record(conn, &event)?;
            Ok(true)
        })
        .await;
    match outcome {
        Ok(true) => responses::TrustDevice::Ok(TrustDeviceResponse {
            success: true,
            message: "Device trusted successfully".into(),
            trust_expires_at: utc(until),
        }),
        Ok(false) => responses::TrustDevice::NotFound(device_not_found()),
        Err(e) => failure(e, "Failed to trust device"),
    }
}

/// Get one device with its active sessions
#[utoipa::path(
    operation_id = "getDevice",
    params(DeviceIdParam),
    responses(
        (status = 200, description = "The device and its active sessions.", body = DeviceDetailsResponse),
        (status = 500, description = "The device could not be read.", body = ErrorResponse),
        InvalidPathId, DeviceNotFound, SecuredFailures,
    )
)]
#[get("/devices/{id}")]
pub async fn get_device(
    bearer: Bearer,
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> responses::GetDevice {
    let device_id = path.into_inner().id.into_inner();
    let now = db::now();
    let outcome = bearer
        .read(&state.db, move |conn, caller| {
            let Some(row) = db::devices::find_for_user(conn, &caller.user_id, &device_id)? else {
                return Ok(None);
            };
            let sessions = db::sessions::list_active_for_device(conn, &row.id, now)?;
            Ok(Some((row, sessions, caller.clone())))
        })
        .await;
    match outcome {
        Ok(Some((row, sessions, caller))) => responses::GetDevice::Ok(DeviceDetailsResponse {
            success: true,
            device: device_details(row, sessions, now, &caller),
        }),
        Ok(None) => responses::GetDevice::NotFound(device_not_found()),
        Err(e) => failure(e, "Failed to retrieve device details"),
    }
}

/// Untrust a device and end its sessions
#[utoipa::path(
    operation_id = "untrustDevice",
    params(DeviceIdParam),
    responses(
        (status = 200, description = "The device is untrusted and none of its sessions is active.", body = MessageResponse),
        (status = 500, description = "The device could not be untrusted; nothing was changed.", body = ErrorResponse),
        InvalidPathId, DeviceNotFound, SecuredFailures,
    )
)]
#[post("/devices/{id}/untrust")]
pub async fn untrust_device(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<IdPath>,
) -> responses::UntrustDevice {
    let device_id = path.into_inner().id.into_inner();
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let Some(untrusted) = db::devices::untrust(conn, &caller.user_id, &device_id, now)?
            else {
                return Ok(false);
            };
            let event = device_event(
                SecurityEventType::DeviceUntrusted,
                &untrusted,
                caller,
                &origin,
                now,
            );
            db::events::record(conn, &event)?;
            Ok(true)
        })
        .await;
    match outcome {
        Ok(true) => {
            responses::UntrustDevice::Ok(MessageResponse::new("Device untrusted successfully"))
        }
        Ok(false) => responses::UntrustDevice::NotFound(device_not_found()),
        Err(e) => failure(e, "Failed to untrust device"),
    }
}

/// Remove a device
#[utoipa::path(
    operation_id = "deleteDevice",
    params(DeviceIdParam),
    responses(
        (status = 200, description = "The device and its sessions are gone.", body = MessageResponse),
        (status = 500, description = "The device could not be removed.", body = ErrorResponse),
        InvalidPathId, DeviceNotFound, SecuredFailures,
    )
)]
#[delete("/devices/{id}")]
pub async fn delete_device(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<IdPath>,
) -> responses::DeleteDevice {
    let device_id = path.into_inner().id.into_inner();
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let Some(removed) = db::devices::delete(conn, &caller.user_id, &device_id, now)? else {
                return Ok(false);
            };
            let event = device_event(
                SecurityEventType::DeviceRemoved,
                &removed,
                caller,
                &origin,
                now,
            );
            db::events::record(conn, &event)?;
            Ok(true)
        })
        .await;
    match outcome {
        Ok(true) => {
            responses::DeleteDevice::Ok(MessageResponse::new("Device removed successfully"))
        }
        Ok(false) => responses::DeleteDevice::NotFound(device_not_found()),
        Err(e) => failure(e, "Failed to remove device"),
    }
}

/// Rename one of the caller's devices
#[utoipa::path(
    operation_id = "renameDevice",
    params(DeviceIdParam),
    request_body(content = RenameDeviceRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The device with its new name.", body = DeviceResponse),
        (status = 400, description = "The path's `id` or the body is malformed (a name that is blank or longer than 100 characters included); nothing was changed.", body = ErrorResponse),
        (status = 500, description = "The device could not be renamed; nothing was changed.", body = ErrorResponse),
        BodyFailures, DeviceNotFound, SecuredFailures,
    )
)]
#[patch("/devices/{id}")]
pub async fn rename_device(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<IdPath>,
    body: ValidatedJson<RenameDeviceRequest>,
) -> responses::RenameDevice {
    let device_id = path.into_inner().id.into_inner();
    let name = body.0.device_name.trim().to_owned();
    if name.is_empty() {
        return responses::RenameDevice::BadRequest(ErrorResponse::new(
            "Invalid request body: `deviceName` must not be blank",
        ));
    }
    let now = db::now();
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let Some(renamed) = db::devices::rename(conn, &caller.user_id, &device_id, &name)?
            else {
                return Ok(None);
            };
            let changed = Changed {
                id: renamed.id.clone(),
                name: renamed.device_name.clone(),
                revoked_sessions: 0,
            };
            let event = device_event(
                SecurityEventType::DeviceRenamed,
                &changed,
                caller,
                &origin,
                db::now(),
            );
            db::events::record(conn, &event)?;
            Ok(Some((renamed, caller.clone())))
        })
        .await;
    match outcome {
        Ok(Some((row, caller))) => responses::RenameDevice::Ok(DeviceResponse {
            success: true,
            device: device(row, now, &caller),
        }),
        Ok(None) => responses::RenameDevice::NotFound(device_not_found()),
        Err(e) => failure(e, "Failed to rename device"),
    }
}
