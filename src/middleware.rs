//! Cross-cutting HTTP behaviour: per-client rate limiting, security headers,
//! CORS, and the guarantee that every failure body has the JSON error shape.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::{
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderValue},
        StatusCode,
    },
    middleware::Next,
    web, HttpMessage, HttpResponse,
};

use crate::{
    api::types::ErrorResponse,
    client_addr,
    rate_limit::{Charge, Charged, ClientKey, RetryAfter},
    state::AppState,
    telemetry::{self, Refusal},
};

pub use crate::rate_limit::{ClientRateLimiter, RateLimitSettings};

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
    let limiter: Arc<ClientRateLimiter> = Arc::clone(&limiter);
    if let Some(name) = crate::service_auth::rate_limit_key(request.request()).await {
        // A platform request with a valid service key: counted per key.
        return match limiter.check(&ClientKey::Service(name)) {
            Ok(()) => next
                .call(request)
                .await
                .map(ServiceResponse::map_into_left_body),
            Err(wait_seconds) => Ok(too_many_requests(request.request().clone(), wait_seconds)),
        };
    }
    let address = limiter.address_key(client_addr::of(request.request()));
    let signed = AppState::of(request.request())
        .is_some_and(|state| crate::auth::verify_request(&state.tokens, request.request()));
    if !(signed && request.match_pattern().is_some()) {
        return match limiter.check(&address) {
            Ok(()) => next
                .call(request)
                .await
                .map(ServiceResponse::map_into_left_body),
            Err(wait_seconds) => Ok(too_many_requests(request.request().clone(), wait_seconds)),
        };
    }
    // A validly signed token for an operation: its session check charges
    // it (`auth::Bearer`), the user when the session is active, else the
    // address, so that a revoked token spends its real user's allowance.
    request.extensions_mut().insert(Charge {
        limiter: limiter.clone(),
        address: address.clone(),
    });
    let mut response = next.call(request).await?;
    let (charged, retry_after) = {
        let extensions = response.request().extensions();
        (
            extensions.get::<Charged>().is_some(),
            extensions.get::<RetryAfter>().copied(),
        )
    };
    if let Some(RetryAfter(wait_seconds)) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait_seconds));
    }
    if !charged {
        // It never reached a session check (a bad path or body, say): the
        // address pays, and past its allowance the answer is the 429 (a
        // refused request changed nothing, so nothing is lost).
        if let Err(wait_seconds) = limiter.check(&address) {
            if response.status().is_client_error() {
                return Ok(too_many_requests(response.request().clone(), wait_seconds));
            }
        }
    }
    Ok(response.map_into_left_body())
}

fn too_many_requests<B>(
    request: actix_web::HttpRequest,
    wait_seconds: u64,
) -> ServiceResponse<EitherBody<B>> {
    telemetry::note_refusal(Refusal::RateLimited);
    let response = HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, wait_seconds))
        .json(ErrorResponse::new(format!(
            "Too many requests; retry in {wait_seconds} s"
        )));
    ServiceResponse::new(request, response).map_into_right_body()
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
