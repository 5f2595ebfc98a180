//! The outermost middleware: request id, request context, metrics and the
//! access log line of every request.

use std::time::Instant;

use actix_web::{
    body::{BodySize, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    web, HttpMessage,
};

use super::{context::RequestContext, Metrics, RequestId, REQUEST_ID_HEADER};
use crate::client_addr;

/// The `log` target of the access log lines (`RUST_LOG=flashback_devices::access=off` silences them).
pub const ACCESS_LOG_TARGET: &str = "flashback_devices::access";

/// Gives every request an id (the caller's, if well formed) and every
/// response, whatever layer made it, the `X-Request-Id` header; runs the
/// request's handling as its [`RequestContext`] (so every log line about it
/// carries the id); counts it in the [`Metrics`] registered as app data; and
/// writes its access log line. Outermost, so it sees every answer, the rate
/// limiter's and CORS's included.
///
/// The operationId comes from the route the router matches for the path
/// (`match_pattern`, from the same resource map the router uses) and the
/// method, looked up in the spec's table of operations; it is known before
/// the handler runs, so the lines logged during the request carry it too,
/// and requests the rate limiter refuses before routing are still labelled
/// with the operation they asked for.
pub async fn instrument(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::new_random);
    let header_value = HeaderValue::from_str(id.as_str()).expect("a request id is visible ASCII");
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let operation_id = metrics.as_ref().and_then(|metrics| {
        let pattern = request.match_pattern()?;
        metrics.operation_id(request.method().as_str(), &pattern)
    });
    // Formatted only when the access log is on (`RUST_LOG=warn` turns it off).
    let access = log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info).then(|| {
        // The peer, or behind a trusted proxy the client it names.
        let peer = client_addr::of(request.request())
            .map_or_else(|| "-".to_owned(), |address| address.to_string());
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.path(), |p| p.as_str());
        format!(
            "{peer} \"{} {target} {:?}\"",
            request.method(),
            request.version()
        )
    });
    request.extensions_mut().insert(id.clone());

    let context = RequestContext::new(id, operation_id);
    let outcome = context.clone().scope(next.call(request)).await;

    let elapsed = started.elapsed();
    let (status, bytes) = match &outcome {
        Ok(response) => (
            response.status(),
            match response.response().body().size() {
                BodySize::Sized(bytes) => Some(bytes),
                BodySize::None => Some(0),
                BodySize::Stream => None,
            },
        ),
        Err(error) => (error.as_response_error().status_code(), None),
    };
    if let Some(metrics) = &metrics {
        metrics.observe(operation_id, status, elapsed, context.refusal());
    }
    if let Some(access) = access {
        let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        context.sync_scope(|| {
            log::info!(
                target: ACCESS_LOG_TARGET,
                status = status.as_u16(),
                bytes = bytes,
                latency_ms = latency_ms;
                "{access}"
            );
        });
    }

    let mut response = outcome?;
    response
        .headers_mut()
        .insert(HeaderName::from_static("x-request-id"), header_value);
    Ok(response)
}
