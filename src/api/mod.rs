//! The HTTP API: handlers grouped by the spec's tags (one function per
//! operationId), the utoipa document they declare, and the router.

pub mod devices;
pub mod error;
pub mod extract;
pub mod health;
pub mod sessions;
pub mod types;

use actix_web::web;
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

/// The document the handlers' annotations add up to. It is not served (the
/// spec file is); a contract test proves it and `openapi/openapi.yaml` agree.
#[derive(OpenApi)]
#[openapi(
    paths(
        devices::list_devices,
        devices::trust_device,
        devices::get_device,
        devices::delete_device,
        devices::untrust_device,
        sessions::list_sessions,
        sessions::revoke_all_sessions,
        sessions::revoke_session,
        sessions::session_heartbeat,
        health::get_health,
        health::get_readiness,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// Mounts every operation of the spec, and nothing else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(devices::list_devices)
        .service(devices::trust_device)
        .service(devices::get_device)
        .service(devices::delete_device)
        .service(devices::untrust_device)
        .service(sessions::list_sessions)
        .service(sessions::revoke_all_sessions)
        .service(sessions::revoke_session)
        .service(sessions::session_heartbeat)
        .service(health::get_health)
        .service(health::get_readiness);
}
