//! The HTTP API: handlers grouped by the spec's tags (one function per
//! operationId), the utoipa document they declare, and the router.

pub mod common;
pub mod devices;
pub mod error;
pub mod extract;
pub mod health;
pub mod platform;
pub mod security;
pub mod sessions;
pub mod types;
pub mod views;

use actix_web::web;

use self::{common::RequestIdEverywhere, types::OPERATIONS};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

/// Declares [`ApiDoc`] and [`configure`] from the one list of handlers that
/// `build.rs` derives from the spec (see `types::with_operation_handlers`):
/// an operation of the spec without its handler does not compile, and no
/// handler outside the spec is mounted or documented.
macro_rules! declare_api {
    (concrete: [$($concrete:path),*], templated: [$($templated:path),*],) => {
        /// The document the handlers' annotations add up to. It is not served
        /// (the spec file is); a contract test proves it and
        /// `openapi/openapi.yaml` agree.
        #[derive(OpenApi)]
        #[openapi(
            paths($($concrete,)* $($templated,)*),
            components(schemas(types::SecurityEventWebhook, types::SecurityEventWebhookData)),
            security(("bearerAuth" = [])),
            modifiers(&BearerAuth, &ServiceKeyAuth, &RequestIdEverywhere, &Webhooks)
        )]
        pub struct ApiDoc;

        /// Mounts every operation of the spec, and nothing else.
        ///
        /// As OpenAPI matches a concrete path before a templated one, so does
        /// the router: the operations on concrete paths first, then a
        /// catch-all per concrete path (any other method is a 405 there, so
        /// `GET /devices/trust` never reaches `getDevice` as `id = "trust"`),
        /// then the templated paths.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service($concrete);)*
            let mut concrete_paths: Vec<&str> = OPERATIONS
                .iter()
                .map(|o| o.path)
                .filter(|p| !p.contains('{'))
                .collect();
            concrete_paths.sort_unstable();
            concrete_paths.dedup();
            for path in concrete_paths {
                cfg.service(web::resource(path).to(error::route_not_found));
            }
            $(cfg.service($templated);)*
        }
    };
}

types::with_operation_handlers!(declare_api);

/// The spec's top-level `webhooks`: the requests this server sends. The
/// derive has no `webhooks(...)`, so the one `#[utoipa::path]` that declares
/// `securityEvent` (`security::security_event_webhook`) is placed here.
struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::{__dev::Tags, openapi::path::PathItem, Path};
        type Declared = security::__path_security_event_webhook;
        let mut webhooks = openapi.webhooks.take().unwrap_or_default();
        for method in Declared::methods() {
            let mut operation = Declared::operation();
            // What the derive does for `paths(...)`: the `tag` attribute.
            operation.tags = Some(Declared::tags().into_iter().map(str::to_owned).collect());
            webhooks
                .paths
                .insert(Declared::path(), PathItem::new(method, operation));
        }
        openapi.webhooks = Some(webhooks);
    }
}

/// `bearerAuth`, the scheme the document's default `security` names; the
/// probes opt out with `security(())`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// `serviceKey`, the scheme of the `platform` operations.
struct ServiceKeyAuth;

impl Modify for ServiceKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "serviceKey",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
