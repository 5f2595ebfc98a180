//! Failures that happen before a handler runs (authentication, extractors,
//! unknown routes) and the mapping of data-access failures at the handler
//! edge. As in dropshot, each carries a public message for the body and an
//! internal one for the log; internals never reach a client.

use actix_web::{
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{header, StatusCode},
    HttpRequest, HttpResponse, ResponseError,
};

use super::types::{responses::GetMetrics, ErrorResponse, StandardFailures, OPERATIONS};
use crate::{
    auth::{CallError, Refused},
    db::DbError,
    telemetry::{self, Refusal},
};

/// The public message of every 503.
pub const UNAVAILABLE: &str = "Service temporarily unavailable";
/// The public message of a 401 for a well-formed token whose session is over.
pub const SESSION_INACTIVE: &str = "Session is no longer active";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    public: String,
    internal: Option<String>,
}

impl ApiError {
    pub fn bad_request(public: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            public: public.into(),
            internal: None,
        }
    }

    pub fn not_found(public: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            public: public.into(),
            internal: None,
        }
    }

    pub fn unsupported_media_type(public: &str) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            public: public.into(),
            internal: None,
        }
    }

    /// 408: the connection is closed after it, since the rest of the body
    /// may still arrive and could not be told from the next request.
    pub fn request_timeout(public: &str) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            public: public.into(),
            internal: None,
        }
    }

    pub fn internal(internal: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            public: "Internal server error".into(),
            internal: Some(internal.into()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.public)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(internal) = &self.internal {
            if self.status.is_server_error() {
                log::error!("{} {}: {internal}", self.status.as_u16(), self.public);
            } else {
                log::info!("{} {}: {internal}", self.status.as_u16(), self.public);
            }
        }
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response.force_close();
        }
        response.json(ErrorResponse::new(self.public.clone()))
    }
}

/// A token refused before any database call: 401 with `WWW-Authenticate`.
impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        telemetry::note_refusal(if self.is_missing() {
            Refusal::MissingToken
        } else {
            Refusal::BadToken
        });
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            public: self.public.into(),
            internal: Some(self.reason.clone()),
        }
        .error_response()
    }
}

/// How an operation answers the typed outcome of its work: the one mapping
/// from what a write or read did to the operation's response enum, next to
/// each handler. The failures every secured operation shares are mapped by
/// [`failure`] once, for all of them.
pub trait Respond<O>: StandardFailures {
    /// The public message of this operation's 500.
    const FAILED: &'static str;

    fn done(outcome: O) -> Self;
}

/// The response to `outcome`: its success mapped by the operation's
/// [`Respond`], its failure by [`failure`].
pub fn respond<O, R: Respond<O>>(outcome: Result<O, CallError>) -> R {
    match outcome {
        Ok(done) => R::done(done),
        Err(error) => failure(error, R::FAILED),
    }
}

/// Maps a failure of an authenticated database call to the operation's own
/// 401, 429, 500 or 503, logging the cause: the handler edge of every secured
/// operation goes through here. Only the operation's public message, or the
/// generic ones, reach the client.
pub fn failure<R: StandardFailures>(error: CallError, public: &str) -> R {
    let operation = R::OPERATION_ID;
    match error {
        CallError::SessionInactive { .. } => {
            telemetry::note_refusal(Refusal::InactiveSession);
            log::info!("{operation}: 401: {error}");
            R::unauthorized(ErrorResponse::new(SESSION_INACTIVE))
        }
        CallError::RateLimited { wait_seconds } => {
            telemetry::note_refusal(Refusal::RateLimited);
            log::info!("{operation}: 429: {error}");
            // `Retry-After` is set by the rate limiter's middleware.
            R::too_many_requests(ErrorResponse::new(format!(
                "Too many requests; retry in {wait_seconds} s"
            )))
        }
        CallError::Db(DbError::Unavailable(cause)) => {
            log::warn!("{operation}: database unavailable: {cause}");
            R::service_unavailable(ErrorResponse::new(UNAVAILABLE))
        }
        CallError::Db(DbError::Query(cause)) => {
            log::error!("{operation}: {cause}");
            R::internal_server_error(ErrorResponse::new(public))
        }
        CallError::Db(error @ DbError::Commit(_)) => {
            log::error!("{operation}: {error}");
            R::internal_server_error(ErrorResponse::new(public))
        }
    }
}

pub fn json_error_handler(error: JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    let public = match &error {
        JsonPayloadError::ContentType => "Content-Type must be application/json".to_owned(),
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            format!("Request body is larger than {limit} bytes")
        }
        JsonPayloadError::Deserialize(cause) => format!("Invalid request body: {cause}"),
        _ => "Invalid request body".to_owned(),
    };
    ApiError::bad_request(public).into()
}

pub fn path_error_handler(error: PathError, _request: &HttpRequest) -> actix_web::Error {
    let PathError::Deserialize(cause) = &error else {
        return ApiError::bad_request("Invalid path parameter").into();
    };
    ApiError::bad_request(format!("Invalid path parameter: {cause}")).into()
}

pub fn query_error_handler(error: QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    let QueryPayloadError::Deserialize(cause) = &error else {
        return ApiError::bad_request("Invalid query parameter").into();
    };
    ApiError::bad_request(format!("Invalid query parameter: {cause}")).into()
}

/// Answers every request that matches no operation of the spec: 405 with
/// `Allow` when the path is one of the spec's with another method, else 404.
pub async fn route_not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = allowed_methods(request.path());
    if allowed.is_empty() {
        return Err(ApiError::not_found("Not found"));
    }
    Ok(HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allowed.join(", ")))
        .json(ErrorResponse::new("Method not allowed")))
}

/// The default service of the `METRICS_BIND_ADDR` listener, which serves
/// `getMetrics` only: 405 with `Allow` for its path, else 404.
pub async fn metrics_route_not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed: Vec<&str> = OPERATIONS
        .iter()
        .filter(|o| o.operation_id == GetMetrics::OPERATION_ID && o.path == request.path())
        .map(|o| o.method)
        .collect();
    if allowed.is_empty() {
        return Err(ApiError::not_found("Not found"));
    }
    Ok(HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allowed.join(", ")))
        .json(ErrorResponse::new("Method not allowed")))
}

/// The methods the spec documents for a concrete path. As in OpenAPI's
/// matching, the most specific template wins (a literal segment over a
/// `{param}`, which matches any non-empty segment).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let matching: Vec<_> = OPERATIONS
        .iter()
        .filter(|operation| {
            let template: Vec<&str> = operation.path.split('/').collect();
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .collect();
    let Some(fewest_params) = matching.iter().map(|o| o.path.matches('{').count()).min() else {
        return Vec::new();
    };
    let mut methods = Vec::new();
    for operation in matching {
        if operation.path.matches('{').count() == fewest_params
            && !methods.contains(&operation.method)
        {
            methods.push(operation.method);
        }
    }
    methods
}
