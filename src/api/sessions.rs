//! The `sessions` tag: one handler per operationId.

use actix_web::{get, post, web};

use super::{
    common::{BadRequest, SecuredFailures, SessionIdParam},
    devices::utc,
    error::failure,
    extract::IdPath,
    types::{
        responses, ErrorResponse, MessageResponse, Session, SessionHeartbeatResponse,
        SessionListResponse,
    },
};
use crate::{
    auth::Bearer,
    db::{self, models::SessionWithDevice},
    state::AppState,
};

fn session(listed: SessionWithDevice) -> Session {
    let row = listed.session;
    Session {
        id: row.id,
        device_name: listed.device_name,
        ip_address: row.ip_address,
        location: row.location,
        started_at: utc(row.started_at),
        last_activity: utc(row.last_activity),
        expires_at: utc(row.expires_at),
        login_method: row.login_method,
    }
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
        .run(&state.db, move |conn, caller| {
            db::sessions::list_active_for_user(conn, &caller.user_id, db::now())
        })
        .await;
    match outcome {
        Ok(rows) => responses::ListSessions::Ok(SessionListResponse {
            success: true,
            sessions: rows.into_iter().map(session).collect(),
        }),
        Err(e) => failure(e, "Failed to retrieve sessions"),
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
) -> responses::RevokeAllSessions {
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            db::sessions::revoke_all(conn, &caller.user_id, db::now())
        })
        .await;
    match outcome {
        Ok(_) => responses::RevokeAllSessions::Ok(MessageResponse::new(
            "All sessions revoked successfully",
        )),
        Err(e) => failure(e, "Failed to revoke all sessions"),
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
        BadRequest, SecuredFailures,
    )
)]
#[post("/sessions/{id}/revoke")]
pub async fn revoke_session(
    bearer: Bearer,
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> responses::RevokeSession {
    let session_id = path.into_inner().id.into_inner();
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            db::sessions::revoke(conn, &caller.user_id, &session_id, db::now())
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
        BadRequest, SecuredFailures,
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
    let new_expiry = now + state.policy.session_extension;
    let outcome = bearer
        .write(&state.db, move |conn, caller| {
            db::sessions::heartbeat(conn, &caller.user_id, &session_id, now, new_expiry)
        })
        .await;
    match outcome {
        Ok(true) => responses::SessionHeartbeat::Ok(SessionHeartbeatResponse {
            success: true,
            message: "Session updated successfully".into(),
            new_expiry: utc(new_expiry),
        }),
        Ok(false) => responses::SessionHeartbeat::NotFound(ErrorResponse::new(
            "Session not found or expired",
        )),
        Err(e) => failure(e, "Failed to update session"),
    }
}
