//! The `sessions` tag: one handler per operationId, each followed by the
//! mapping of its outcome to the operation's responses.

use actix_web::{get, post, web};
use chrono::NaiveDateTime;

use super::{
    common::{InvalidPathId, SecuredFailures, SessionIdParam},
    error::{respond, Respond},
    extract::{IdPath, Origin},
    types::{
        responses, CurrentSessionResponse, ErrorResponse, MessageResponse,
        RevokeOtherSessionsResponse, SessionHeartbeatResponse, SessionListResponse,
    },
    views::{device, session, utc},
};
use crate::{
    auth::{Bearer, CurrentSession},
    db::{self, models::SessionWithDevice},
    domain::{self, Outcome},
    state::AppState,
};

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
    let listed = bearer
        .read_checked(&state.db, move |conn, session| {
            let listed = db::sessions::list_active_for_session(
                conn,
                &session.user_id,
                &session.session_id,
                session.now,
            )?;
            Ok(listed.map(|(caller_device, rows)| {
                let own = session.session_id.clone();
                (caller_device, Listed { rows, own })
            }))
        })
        .await;
    respond(listed)
}

/// The caller's active sessions, and which one is theirs.
pub struct Listed {
    rows: Vec<SessionWithDevice>,
    own: String,
}

impl Respond<Listed> for responses::ListSessions {
    const FAILED: &'static str = "Failed to retrieve sessions";

    fn done(Listed { rows, own }: Listed) -> Self {
        Self::Ok(SessionListResponse {
            success: true,
            sessions: rows
                .into_iter()
                .map(|listed| session(listed.session, listed.device_name, &own))
                .collect(),
        })
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
    respond(bearer.current_session(&state.db).await)
}

impl Respond<CurrentSession> for responses::GetCurrentSession {
    const FAILED: &'static str = "Failed to retrieve current session";

    fn done(current: CurrentSession) -> Self {
        Self::Ok(CurrentSessionResponse {
            success: true,
            session: session(
                current.session,
                current.device.device_name.clone(),
                &current.caller.session_id,
            ),
            device: device(current.device, db::now(), &current.caller),
        })
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
    let revoke = domain::sessions::RevokeAll {
        keep_own: false,
        origin: origin.client(),
    };
    let revoked = bearer.write_one(&state.db, revoke).await;
    respond(revoked)
}

impl Respond<usize> for responses::RevokeAllSessions {
    const FAILED: &'static str = "Failed to revoke all sessions";

    fn done(_revoked: usize) -> Self {
        Self::Ok(MessageResponse::new("All sessions revoked successfully"))
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
    let revoke = domain::sessions::RevokeAll {
        keep_own: true,
        origin: origin.client(),
    };
    let revoked = bearer.write_one(&state.db, revoke).await;
    respond(revoked)
}

impl Respond<usize> for responses::RevokeOtherSessions {
    const FAILED: &'static str = "Failed to revoke other sessions";

    fn done(revoked: usize) -> Self {
        Self::Ok(RevokeOtherSessionsResponse {
            success: true,
            message: "Other sessions revoked successfully".into(),
            revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        })
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
    let revoke = domain::sessions::Revoke {
        session_id: path.into_inner().id.into_inner(),
        origin: origin.client(),
    };
    let revoked = bearer.write_one(&state.db, revoke).await;
    respond(revoked)
}

impl Respond<Outcome<()>> for responses::RevokeSession {
    const FAILED: &'static str = "Failed to revoke session";

    fn done(revoked: Outcome<()>) -> Self {
        match revoked {
            Outcome::Done(()) => Self::Ok(MessageResponse::new("Session revoked successfully")),
            Outcome::NotFound => Self::NotFound(ErrorResponse::new("Session not found")),
        }
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
    let heartbeat = domain::sessions::Heartbeat {
        session_id,
        policy: state.policy,
        now: db::now(),
    };
    let extended = bearer.write_one(&state.db, heartbeat).await;
    respond(extended)
}

impl Respond<Outcome<NaiveDateTime>> for responses::SessionHeartbeat {
    const FAILED: &'static str = "Failed to update session";

    fn done(extended: Outcome<NaiveDateTime>) -> Self {
        match extended {
            Outcome::Done(new_expiry) => Self::Ok(SessionHeartbeatResponse {
                success: true,
                message: "Session updated successfully".into(),
                new_expiry: utc(new_expiry),
            }),
            Outcome::NotFound => Self::NotFound(ErrorResponse::new("Session not found or expired")),
        }
    }
}
