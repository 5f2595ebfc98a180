//! The `sessions` tag: one handler per operationId.

use actix_web::{get, post, web};

use super::{
    common::{InvalidPathId, SecuredFailures, SessionIdParam},
    devices::{device, utc},
    error::failure,
    extract::{IdPath, Origin},
    types::{
        responses, CurrentSessionResponse, ErrorResponse, MessageResponse,
        RevokeOtherSessionsResponse, SecurityEventType, Session, SessionHeartbeatResponse,
        SessionListResponse,
    },
};
use crate::{
    auth::{Bearer, Caller},
    db::{
        self,
        models::{SecurityEventRow, SessionRow},
    },
    state::AppState,
};

/// A session as listed to `caller`; `isCurrent` when it is theirs.
pub(crate) fn session(row: SessionRow, device_name: String, caller_session: &str) -> Session {
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

/// The event of a change to `caller`'s sessions made from `origin`.
fn sessions_event(
    kind: SecurityEventType,
    caller: &Caller,
    origin: &Origin,
    at: chrono::NaiveDateTime,
) -> SecurityEventRow {
    SecurityEventRow::new(&caller.user_id, kind.as_str(), &origin.actor(caller), at)
}

/// List the caller's active sessions
#[utoipa::path(
    operation_id = "listSessions",
    responses(
        (status = 200, description = "The caller's active sessions.", body = SessionListResponse),
        (status = 500, description = "The sessions could not be read.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[get("/sessions")]
pub async fn list_sessions(bearer: Bearer, state: web::Data<AppState>) -> responses::ListSessions {
    let outcome = bearer
        .read(&state.db, move |conn, caller| {
            let rows = db::sessions::list_active_for_user(conn, &caller.user_id, db::now())?;
            Ok((rows, caller.session_id.clone()))
        })
        .await;
    match outcome {
        Ok((rows, own)) => responses::ListSessions::Ok(SessionListResponse {
            success: true,
            sessions: rows
                .into_iter()
                .map(|listed| session(listed.session, listed.device_name, &own))
                .collect(),
        }),
        Err(e) => failure(e, "Failed to retrieve sessions"),
    }
}

/// Get the session of this token
#[utoipa::path(
    operation_id = "getCurrentSession",
    responses(
        (status = 200, description = "The caller's own session and its device.", body = CurrentSessionResponse),
        (status = 500, description = "The session could not be read.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[get("/sessions/current")]
pub async fn get_current_session(
    bearer: Bearer,
    state: web::Data<AppState>,
) -> responses::GetCurrentSession {
    let now = db::now();
    match bearer.current_session(&state.db).await {
        Ok(current) => responses::GetCurrentSession::Ok(CurrentSessionResponse {
            success: true,
            session: session(
                current.session,
                current.device.device_name.clone(),
                &current.caller.session_id,
            ),
            device: device(current.device, now, &current.caller),
        }),
        Err(e) => failure(e, "Failed to retrieve current session"),
    }
}

/// Sign out everywhere
#[utoipa::path(
    operation_id = "revokeAllSessions",
    responses(
        (status = 200, description = "No session of the caller is active any more.", body = MessageResponse),
        (status = 500, description = "The sessions could not be revoked; nothing was changed.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[post("/sessions/revoke-all")]
pub async fn revoke_all_sessions(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
) -> responses::RevokeAllSessions {
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let revoked = db::sessions::revoke_all(conn, &caller.user_id, now)?;
            let event = sessions_event(SecurityEventType::AllSessionsRevoked, caller, &origin, now)
                .revoked(revoked);
            db::events::record(conn, &event)
        })
        .await;
    match outcome {
        Ok(_) => responses::RevokeAllSessions::Ok(MessageResponse::new(
            "All sessions revoked successfully",
        )),
        Err(e) => failure(e, "Failed to revoke all sessions"),
    }
}

/// Sign out everywhere else
#[utoipa::path(
    operation_id = "revokeOtherSessions",
    responses(
        (status = 200, description = "No session of the caller other than this one is active any more.", body = RevokeOtherSessionsResponse),
        (status = 500, description = "The sessions could not be revoked; nothing was changed.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[post("/sessions/revoke-others")]
pub async fn revoke_other_sessions(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
) -> responses::RevokeOtherSessions {
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let revoked =
                db::sessions::revoke_all_except(conn, &caller.user_id, &caller.session_id, now)?;
            let event = sessions_event(
                SecurityEventType::OtherSessionsRevoked,
                caller,
                &origin,
                now,
            )
            .revoked(revoked);
            db::events::record(conn, &event)?;
            Ok(revoked)
        })
        .await;
    match outcome {
        Ok(revoked) => responses::RevokeOtherSessions::Ok(RevokeOtherSessionsResponse {
            success: true,
            message: "Other sessions revoked successfully".into(),
            revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }),
        Err(e) => failure(e, "Failed to revoke other sessions"),
    }
}

/// End one session
#[utoipa::path(
    operation_id = "revokeSession",
    params(SessionIdParam),
    responses(
        (status = 200, description = "The session is revoked.", body = MessageResponse),
        (status = 404, description = "The caller has no active session with that identifier.", body = ErrorResponse),
        (status = 500, description = "The session could not be revoked.", body = ErrorResponse),
        InvalidPathId, SecuredFailures,
    )
)]
#[post("/sessions/{id}/revoke")]
pub async fn revoke_session(
    bearer: Bearer,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<IdPath>,
) -> responses::RevokeSession {
    let session_id = path.into_inner().id.into_inner();
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            let now = db::now();
            let Some((device_id, device_name)) =
                db::sessions::revoke(conn, &caller.user_id, &session_id, now)?
            else {
                return Ok(false);
            };
            let event = sessions_event(SecurityEventType::SessionRevoked, caller, &origin, now)
                .device(&device_id, &device_name)
                .session(&session_id)
                .revoked(1);
            db::events::record(conn, &event)?;
            Ok(true)
        })
        .await;
    match outcome {
        Ok(true) => {
            responses::RevokeSession::Ok(MessageResponse::new("Session revoked successfully"))
        }
        Ok(false) => responses::RevokeSession::NotFound(ErrorResponse::new("Session not found")),
        Err(e) => failure(e, "Failed to revoke session"),
    }
}

/// Keep a session alive
#[utoipa::path(
    operation_id = "sessionHeartbeat",
    params(SessionIdParam),
    responses(
        (status = 200, description = "The session's expiry moved to `newExpiry`.", body = SessionHeartbeatResponse),
        (status = 404, description = "The caller has no session with that identifier, or it is revoked or expired.", body = ErrorResponse),
        (status = 500, description = "The session could not be updated.", body = ErrorResponse),
        InvalidPathId, SecuredFailures,
    )
)]
#[post("/sessions/{id}/heartbeat")]
pub async fn session_heartbeat(
    bearer: Bearer,
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> responses::SessionHeartbeat {
    let session_id = path.into_inner().id.into_inner();
    let now = db::now();
    let wanted = now + state.policy.session_extension;
    let policy = state.policy;
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            // Never past the session's absolute lifetime.
            let new_expiry = match policy.session_max_lifetime {
                None => wanted,
                Some(_) => {
                    match db::sessions::active_started_at(conn, &caller.user_id, &session_id, now)?
                    {
                        Some(started_at) => policy.cap_expiry(started_at, wanted),
                        None => return Ok(None),
                    }
                }
            };
            let updated =
                db::sessions::heartbeat(conn, &caller.user_id, &session_id, now, new_expiry)?;
            Ok(updated.then_some(new_expiry))
        })
        .await;
    match outcome {
        Ok(Some(new_expiry)) => responses::SessionHeartbeat::Ok(SessionHeartbeatResponse {
            success: true,
            message: "Session updated successfully".into(),
            new_expiry: utc(new_expiry),
        }),
        Ok(None) => responses::SessionHeartbeat::NotFound(ErrorResponse::new(
            "Session not found or expired",
        )),
        Err(e) => failure(e, "Failed to update session"),
    }
}
