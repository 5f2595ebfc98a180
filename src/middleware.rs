//! Cross-cutting HTTP behaviour: per-client rate limiting, security headers,
//! CORS, and the guarantee that every failure body has the JSON error shape.

use std::{
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use actix_cors::Cors;
use actix_web::{
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderValue},
        StatusCode,
    },
    middleware::Next,
    web, HttpResponse,
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{
    api::types::ErrorResponse,
    auth::TokenKeys,
    client_addr,
    telemetry::{self, Refusal},
};

/// Requests per second and burst allowed to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimitSettings {
    /// `None` when `per_second` is 0: rate limiting off (benchmarks).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Self {
            per_second,
            burst: NonZeroU32::new(burst).unwrap_or(per_second),
        })
    }
}

/// Whom a request counts against: the user its (validly signed) token names,
/// or else the client's address (`client_addr`: the peer, or behind a
/// trusted proxy the client it forwarded). Keyed by the verified `sub` so a
/// caller cannot spend another user's allowance, nor dodge its own by
/// varying the token; and by the resolved address so that clients behind a
/// proxy do not share one allowance, while a forged `X-Forwarded-For` from
/// anywhere else changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    User(String),
    /// A `platform` request's service key, by name.
    Service(String),
    Address(std::net::IpAddr),
    Unknown,
}

pub struct ClientRateLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    checks: AtomicU64,
}

/// Forget idle clients every this many checks, so memory stays flat.
const PRUNE_EVERY: u64 = 4096;

impl ClientRateLimiter {
    pub fn new(settings: RateLimitSettings) -> Arc<Self> {
        let quota = Quota::per_second(settings.per_second).allow_burst(settings.burst);
        Arc::new(Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        })
    }

    /// `Err(seconds to wait)` when the client is over its allowance.
    fn check(&self, key: &ClientKey) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Probes, metrics and docs are not limited: orchestrators must always reach
/// the probes, Prometheus must always reach the metrics (a gap in them is
/// worst when the API is busiest), and the docs are static.
fn is_rate_limited(path: &str) -> bool {
    !(path == "/healthz"
        || path == "/readyz"
        || path == "/metrics"
        || path.starts_with("/swagger-ui")
        || path.starts_with("/api-docs"))
}

pub async fn rate_limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limiter = request
        .app_data::<web::Data<Arc<ClientRateLimiter>>>()
        .cloned();
    let (Some(limiter), true) = (limiter, is_rate_limited(request.path())) else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let subject = request
        .app_data::<web::Data<TokenKeys>>()
        .and_then(|keys| keys.verified_subject(request.request()));
    let service = crate::service_auth::rate_limit_key(request.request()).await;
    let key = match (service, subject) {
        (Some(name), _) => ClientKey::Service(name),
        (None, Some(user)) => ClientKey::User(user),
        (None, None) => {
            client_addr::of(request.request()).map_or(ClientKey::Unknown, ClientKey::Address)
        }
    };
    match limiter.check(&key) {
        Ok(()) => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(wait_seconds) => {
            telemetry::note_refusal(Refusal::RateLimited);
            let wait_seconds = wait_seconds.max(1);
            let response = HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, wait_seconds))
                .json(ErrorResponse::new(format!(
                    "Too many requests; retry in {wait_seconds} s"
                )));
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

/// Headers for a JSON API, and a policy that lets the docs page run its own
/// scripts and styles but load nothing from elsewhere.
pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_docs = request.path().starts_with("/swagger-ui");
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    let policy = if is_docs {
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    };
    for (name, value) in [
        ("content-security-policy", policy),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !is_docs {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Rewrites any failure whose body is not JSON (CORS refusals, errors of
/// actix's own extractors or middleware that slipped past our handlers) into
/// `{"success": false, "error": …}` with the same status.
pub async fn json_errors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = match next.call(request).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.as_response_error().status_code();
            log::info!("{status}: {error}");
            return Err(actix_web::error::InternalError::from_response(
                error,
                error_response(status),
            )
            .into());
        }
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response.map_into_boxed_body());
    }
    let (request, original) = response.into_parts();
    let mut replacement = error_response(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, replacement))
}

fn error_response(status: StatusCode) -> HttpResponse {
    let message = match status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        s if s.is_server_error() => "Internal server error",
        s => s.canonical_reason().unwrap_or("Request failed"),
    };
    HttpResponse::build(status).json(ErrorResponse::new(message))
}

/// CORS is off unless origins are configured: without it a browser on
/// another origin cannot read responses, which is the safe default.
pub fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600);
    for origin in allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
