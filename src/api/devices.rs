//! The `devices` tag: one handler per operationId, each followed by the
//! mapping of its outcome to the operation's responses.

use actix_web::{delete, get, patch, post, web};
use chrono::NaiveDateTime;

use super::{
    common::{
        BadRequest, BodyFailures, DeviceIdParam, DeviceNotFound, InvalidPathId, SecuredFailures,
    },
    error::{respond, Respond},
    extract::{IdPath, Origin, ValidatedJson},
    types::{
        responses, DeviceDetailsResponse, DeviceListResponse, DeviceResponse, ErrorResponse,
        MessageResponse, RenameDeviceRequest, TrustDeviceRequest, TrustDeviceResponse,
    },
    views::{device, device_details, utc},
};
use crate::{
    auth::{Bearer, Caller},
    db::{
        self,
        devices::Changed,
        models::{DeviceRow, SessionRow},
    },
    domain::{self, Outcome},
    state::AppState,
};

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
    let listed = bearer
        .read_checked(&state.db, move |conn, session| {
            let listed = db::devices::list_for_session(
                conn,
                &session.user_id,
                &session.session_id,
                session.now,
            )?;
            Ok(listed.map(|(caller_device, rows)| {
                let caller = session.caller(caller_device.clone());
                let now = session.now;
                (caller_device, Listed { rows, caller, now })
            }))
        })
        .await;
    respond(listed)
}

/// The caller's devices, as read at `now`.
pub struct Listed {
    rows: Vec<DeviceRow>,
    caller: Caller,
    now: NaiveDateTime,
}

impl Respond<Listed> for responses::ListDevices {
    const FAILED: &'static str = "Failed to retrieve devices";

    fn done(Listed { rows, caller, now }: Listed) -> Self {
        Self::Ok(DeviceListResponse {
            success: true,
            devices: rows
                .into_iter()
                .map(|row| device(row, now, &caller))
                .collect(),
        })
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
    let trust = domain::devices::Trust {
        fingerprint: body.0.fingerprint,
        until,
        origin: origin.client(),
    };
    let trusted = bearer.write_one(&state.db, trust).await;
    respond(trusted.map(|outcome| Trusted { outcome, until }))
}

/// What `trustDevice` did, and until when the device is trusted.
pub struct Trusted {
    outcome: Outcome<Changed>,
    until: NaiveDateTime,
}

impl Respond<Trusted> for responses::TrustDevice {
    const FAILED: &'static str = "Failed to trust device";

    fn done(Trusted { outcome, until }: Trusted) -> Self {
        match outcome {
            Outcome::Done(_) => Self::Ok(TrustDeviceResponse {
                success: true,
                message: "Device trusted successfully".into(),
                trust_expires_at: utc(until),
            }),
            Outcome::NotFound => Self::NotFound(device_not_found()),
        }
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
    let found = bearer
        .read_checked(&state.db, move |conn, session| {
            let found = db::devices::find_for_session(
                conn,
                &session.user_id,
                &session.session_id,
                &device_id,
                session.now,
            )?;
            Ok(found.map(|(caller_device, device)| {
                let caller = session.caller(caller_device.clone());
                let details = device.map(|(row, sessions)| Details {
                    row,
                    sessions,
                    caller,
                    now: session.now,
                });
                (caller_device, details.into())
            }))
        })
        .await;
    respond(found)
}

/// One device of the caller and its active sessions, as read at `now`.
pub struct Details {
    row: DeviceRow,
    sessions: Vec<SessionRow>,
    caller: Caller,
    now: NaiveDateTime,
}

impl Respond<Outcome<Details>> for responses::GetDevice {
    const FAILED: &'static str = "Failed to retrieve device details";

    fn done(found: Outcome<Details>) -> Self {
        match found {
            Outcome::Done(Details {
                row,
                sessions,
                caller,
                now,
            }) => Self::Ok(DeviceDetailsResponse {
                success: true,
                device: device_details(row, sessions, now, &caller),
            }),
            Outcome::NotFound => Self::NotFound(device_not_found()),
        }
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
    let untrust = domain::devices::Untrust {
        device_id,
        origin: origin.client(),
    };
    let untrusted = bearer.write_one(&state.db, untrust).await;
    respond(untrusted)
}

impl Respond<Outcome<Changed>> for responses::UntrustDevice {
    const FAILED: &'static str = "Failed to untrust device";

    fn done(untrusted: Outcome<Changed>) -> Self {
        match untrusted {
            Outcome::Done(_) => Self::Ok(MessageResponse::new("Device untrusted successfully")),
            Outcome::NotFound => Self::NotFound(device_not_found()),
        }
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
    let delete = domain::devices::Delete {
        device_id: path.into_inner().id.into_inner(),
        origin: origin.client(),
    };
    let removed = bearer.write_one(&state.db, delete).await;
    respond(removed)
}

impl Respond<Outcome<Changed>> for responses::DeleteDevice {
    const FAILED: &'static str = "Failed to remove device";

    fn done(removed: Outcome<Changed>) -> Self {
        match removed {
            Outcome::Done(_) => Self::Ok(MessageResponse::new("Device removed successfully")),
            Outcome::NotFound => Self::NotFound(device_not_found()),
        }
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
    let rename = domain::devices::Rename {
        device_id,
        name,
        origin: origin.client(),
    };
    let renamed = bearer.write_one(&state.db, rename).await;
    respond(renamed.map(|(outcome, caller)| Renamed {
        outcome,
        caller,
        now,
    }))
}

/// What `renameDevice` did, as seen by its caller at `now`.
pub struct Renamed {
    outcome: Outcome<DeviceRow>,
    caller: Caller,
    now: NaiveDateTime,
}

impl Respond<Renamed> for responses::RenameDevice {
    const FAILED: &'static str = "Failed to rename device";

    fn done(
        Renamed {
            outcome,
            caller,
            now,
        }: Renamed,
    ) -> Self {
        match outcome {
            Outcome::Done(row) => Self::Ok(DeviceResponse {
                success: true,
                device: device(row, now, &caller),
            }),
            Outcome::NotFound => Self::NotFound(device_not_found()),
        }
    }
}
