//! The HTTP API: handlers grouped by the spec's tags (one function per
//! operationId), the utoipa document they declare, and the router.

pub mod devices;
pub mod error;
pub mod extract;
pub mod health;
pub mod sessions;
pub mod types;

use actix_web::web;

use self::types::OPERATIONS;
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{Operation, PathItem},
        schema::{ObjectBuilder, Type},
        security::{Http, HttpAuthScheme, SecurityScheme},
        RefOr,
    },
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
    modifiers(&BearerAuth, &SharedResponseHeaders)
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

/// The headers of the spec's shared responses (`components.responses`):
/// `Unauthorized` (401) carries `WWW-Authenticate`, `TooManyRequests` (429)
/// `Retry-After`. Added once here rather than on every handler, as the spec
/// declares them once: `headers(...)` in `#[utoipa::path]` takes only a Rust
/// type, which cannot say `type: integer, minimum: 1` without a `format`.
struct SharedResponseHeaders;

impl Modify for SharedResponseHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in openapi.paths.paths.values_mut().flat_map(operations_mut) {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let (name, header) = match status.as_str() {
                    "401" => (
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .description(Some("The authentication scheme to use.")),
                    ),
                    "429" => (
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::Integer)
                                    .minimum(Some(1)),
                            ))
                            .description(Some("Seconds to wait before retrying.")),
                    ),
                    _ => continue,
                };
                response
                    .headers
                    .entry(name.to_owned())
                    .or_insert_with(|| RefOr::T(header.build()));
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}

/// Mounts every operation of the spec, and nothing else.
///
/// As OpenAPI matches a concrete path before a templated one, so does the
/// router: the operations on literal paths come first, then a catch-all per
/// literal path (any other method is a 405 there, so `GET /devices/trust`
/// never reaches `getDevice` as `id = "trust"`), then the templated paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(devices::list_devices)
        .service(devices::trust_device)
        .service(sessions::list_sessions)
        .service(sessions::revoke_all_sessions)
        .service(health::get_health)
        .service(health::get_readiness);
    let mut literal_paths: Vec<&str> = OPERATIONS
        .iter()
        .map(|o| o.path)
        .filter(|p| !p.contains('{'))
        .collect();
    literal_paths.dedup();
    for path in literal_paths {
        cfg.service(web::resource(path).to(error::route_not_found));
    }
    cfg.service(devices::get_device)
        .service(devices::delete_device)
        .service(devices::untrust_device)
        .service(sessions::revoke_session)
        .service(sessions::session_heartbeat);
}
