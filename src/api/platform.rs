//! The `platform` tag: one handler per operationId. These are called by the
//! deployment's own services with a service key ([`ServiceCaller`]), never
//! by end users; their events name the key as `actorService`.

use actix_web::{delete, get, post, web};

use super::{
    common::{BadRequest, BodyFailures, InvalidUserId, ServiceKeyFailures, UserIdParam},
    error::{failure, respond, Respond},
    extract::{Origin, UserPath, ValidatedJson},
    security::{event_page, EventPage, EventPageQuery, INVALID_CURSOR},
    types::{
        responses, CreateSessionRequest, CreateSessionResponse, DeviceListResponse, DeviceType,
        ErrorResponse, MessageResponse, RevokeUserSessionsResponse, SecurityEventListResponse,
        SessionListResponse,
    },
    views::{device_seen_from, session},
};
use crate::{
    auth::CallError,
    cursor::InvalidCursor,
    db, domain,
    provisioning::{self, ProvisionError, SignIn},
    service_auth::ServiceCaller,
    state::AppState,
};

/// Sign a user in
#[utoipa::path(
    operation_id = "createSession",
    security(("serviceKey" = [])),
    request_body(content = CreateSessionRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The session is started; `token` is its bearer token.", body = CreateSessionResponse),
        (status = 500, description = "The session could not be created; nothing was changed.", body = ErrorResponse),
        BadRequest, BodyFailures, ServiceKeyFailures,
    )
)]
#[post("/platform/sessions")]
pub async fn create_session(
    service: ServiceCaller,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateSessionRequest>,
) -> responses::CreateSession {
    let body = body.0;
    let ttl = body
        .ttl_seconds
        .map_or(state.policy.session_extension, |s| {
            std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let request = SignIn {
        user_id: body.user_id,
        device_name: body.device.device_name,
        fingerprint: Some(body.device.fingerprint),
        device_type: body.device.device_type.unwrap_or(DeviceType::Desktop),
        os: body.device.os.unwrap_or_else(|| "unknown".into()),
        browser: body.device.browser.unwrap_or_else(|| "unknown".into()),
        user_agent: body.user_agent,
        ip_address: body.ip_address,
        location: body.location,
        login_method: body.login_method.unwrap_or_else(|| "password".into()),
        ttl,
        trusted: body.trust_device.unwrap_or(false),
    };
    let now = db::now();
    let outcome = provisioning::sign_in_by_service(
        &state.db,
        &state.tokens,
        &state.policy,
        request,
        &service.name,
    )
    .await;
    match outcome {
        Ok(signed_in) => responses::CreateSession::Created(CreateSessionResponse {
            success: true,
            token: signed_in.issued.token,
            session: session(signed_in.session, signed_in.device.device_name.clone(), ""),
            device: device_seen_from(signed_in.device, now, None),
            new_device: signed_in.new_device,
        }),
        Err(ProvisionError::Invalid(reason)) => {
            log::info!("createSession: 400: {reason}");
            responses::CreateSession::BadRequest(ErrorResponse::new(
                "Invalid request body: `userId` or `device.fingerprint` is too long",
            ))
        }
        Err(ProvisionError::Database(e)) => failure(CallError::Db(e), "Failed to create session"),
        Err(e @ ProvisionError::Token(_)) => {
            log::error!("createSession: {e}");
            responses::CreateSession::InternalServerError(ErrorResponse::new(
                "Failed to create session",
            ))
        }
    }
}

/// List a user's devices
#[utoipa::path(
    operation_id = "listUserDevices",
    security(("serviceKey" = [])),
    params(UserIdParam),
    responses(
        (status = 200, description = "The user's devices.", body = DeviceListResponse),
        (status = 500, description = "The devices could not be read.", body = ErrorResponse),
        InvalidUserId, ServiceKeyFailures,
    )
)]
#[get("/platform/users/{userId}/devices")]
pub async fn list_user_devices(
    _service: ServiceCaller,
    state: web::Data<AppState>,
    path: web::Path<UserPath>,
) -> responses::ListUserDevices {
    let user_id = path.into_inner().user_id.into_inner();
    let now = db::now();
    match state
        .db
        .read(move |conn| db::devices::list_for_user(conn, &user_id))
        .await
    {
        Ok(rows) => responses::ListUserDevices::Ok(DeviceListResponse {
            success: true,
            devices: rows
                .into_iter()
                .map(|row| device_seen_from(row, now, None))
                .collect(),
        }),
        Err(e) => failure(CallError::Db(e), "Failed to retrieve devices"),
    }
}

/// List a user's active sessions
#[utoipa::path(
    operation_id = "listUserSessions",
    security(("serviceKey" = [])),
    params(UserIdParam),
    responses(
        (status = 200, description = "The user's active sessions.", body = SessionListResponse),
        (status = 500, description = "The sessions could not be read.", body = ErrorResponse),
        InvalidUserId, ServiceKeyFailures,
    )
)]
#[get("/platform/users/{userId}/sessions")]
pub async fn list_user_sessions(
    _service: ServiceCaller,
    state: web::Data<AppState>,
    path: web::Path<UserPath>,
) -> responses::ListUserSessions {
    let user_id = path.into_inner().user_id.into_inner();
    match state
        .db
        .read(move |conn| db::sessions::list_active_for_user(conn, &user_id, db::now()))
        .await
    {
        Ok(rows) => responses::ListUserSessions::Ok(SessionListResponse {
            success: true,
            sessions: rows
                .into_iter()
                .map(|listed| session(listed.session, listed.device_name, ""))
                .collect(),
        }),
        Err(e) => failure(CallError::Db(e), "Failed to retrieve sessions"),
    }
}

/// List a user's security events
#[utoipa::path(
    operation_id = "listUserSecurityEvents",
    security(("serviceKey" = [])),
    params(UserIdParam, EventPageQuery),
    responses(
        (status = 200, description = "One page of the user's security events, newest first.", body = SecurityEventListResponse),
        (status = 400, description = "The path's `userId` is not 1 to 128 characters, `limit` is not an integer from 1 to 100, or `cursor` is not a `nextCursor` this server issued for this user; nothing was read.", body = ErrorResponse),
        (status = 500, description = "The events could not be read.", body = ErrorResponse),
        ServiceKeyFailures,
    )
)]
#[get("/platform/users/{userId}/security-events")]
pub async fn list_user_security_events(
    _service: ServiceCaller,
    state: web::Data<AppState>,
    path: web::Path<UserPath>,
    query: web::Query<EventPageQuery>,
) -> responses::ListUserSecurityEvents {
    let user_id = path.into_inner().user_id.into_inner();
    let EventPageQuery { limit, cursor } = query.into_inner();
    let limit = limit.get();
    let key = state.cursor_key.clone();
    let page = state
        .db
        .read(move |conn| event_page(conn, &key, &user_id, cursor.as_deref(), limit))
        .await;
    respond(page.map_err(CallError::Db))
}

impl Respond<Result<EventPage, InvalidCursor>> for responses::ListUserSecurityEvents {
    const FAILED: &'static str = "Failed to retrieve security events";

    fn done(page: Result<EventPage, InvalidCursor>) -> Self {
        match page {
            Ok(page) => Self::Ok(page.into()),
            Err(InvalidCursor) => Self::BadRequest(ErrorResponse::new(INVALID_CURSOR)),
        }
    }
}

/// End all of a user's sessions
#[utoipa::path(
    operation_id = "revokeUserSessions",
    security(("serviceKey" = [])),
    params(UserIdParam),
    responses(
        (status = 200, description = "None of the user's sessions is active.", body = RevokeUserSessionsResponse),
        (status = 500, description = "The sessions could not be revoked; nothing was changed.", body = ErrorResponse),
        InvalidUserId, ServiceKeyFailures,
    )
)]
#[post("/platform/users/{userId}/sessions/revoke-all")]
pub async fn revoke_user_sessions(
    service: ServiceCaller,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<UserPath>,
) -> responses::RevokeUserSessions {
    let user_id = path.into_inner().user_id.into_inner();
    let actor = origin.service_actor(&service.name);
    let revoked = state
        .db
        .write(move |conn| domain::users::revoke_sessions(conn, &user_id, &actor))
        .await;
    respond(revoked.map_err(CallError::Db))
}

impl Respond<usize> for responses::RevokeUserSessions {
    const FAILED: &'static str = "Failed to revoke all sessions";

    fn done(revoked: usize) -> Self {
        Self::Ok(RevokeUserSessionsResponse {
            success: true,
            message: "All sessions revoked successfully".into(),
            revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        })
    }
}

/// Erase everything about a user
#[utoipa::path(
    operation_id = "deleteUserData",
    security(("serviceKey" = [])),
    params(UserIdParam),
    responses(
        (status = 200, description = "Nothing about the user is left.", body = MessageResponse),
        (status = 500, description = "The user's data could not be deleted; nothing was changed.", body = ErrorResponse),
        InvalidUserId, ServiceKeyFailures,
    )
)]
#[delete("/platform/users/{userId}")]
pub async fn delete_user_data(
    service: ServiceCaller,
    state: web::Data<AppState>,
    origin: Origin,
    path: web::Path<UserPath>,
) -> responses::DeleteUserData {
    let user_id = path.into_inner().user_id.into_inner();
    let actor = origin.service_actor(&service.name);
    let erased = state
        .db
        .write(move |conn| domain::users::erase(conn, &user_id, &actor))
        .await;
    respond(erased.map_err(CallError::Db))
}

impl Respond<()> for responses::DeleteUserData {
    const FAILED: &'static str = "Failed to delete user data";

    fn done((): ()) -> Self {
        Self::Ok(MessageResponse::new("User data deleted successfully"))
    }
}
