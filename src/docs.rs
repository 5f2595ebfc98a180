//! The spec as served: Swagger UI at `/swagger-ui/` and the document itself
//! at `/api-docs/openapi.json` and `/api-docs/openapi.yaml`. What is served
//! is `openapi/openapi.yaml`, the source of truth, compiled into the binary.

use std::sync::OnceLock;

use actix_web::{http::header::ContentType, web, HttpResponse};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The spec file as written.
pub const SPEC_YAML: &str = include_str!("../openapi/openapi.yaml");

/// The spec as JSON; parsed once (build.rs has already validated it).
pub fn spec_json() -> &'static serde_json::Value {
    static SPEC: OnceLock<serde_json::Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        yaml_serde::from_str(SPEC_YAML).expect("build.rs validated openapi/openapi.yaml")
    })
}

async fn spec_as_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(SPEC_YAML)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let swagger = SwaggerUi::new("/swagger-ui/{_:.*}")
        .external_url_unchecked("/api-docs/openapi.json", spec_json().clone())
        .config(
            Config::from("/api-docs/openapi.json")
                .persist_authorization(true)
                .try_it_out_enabled(true),
        );
    cfg.service(swagger)
        .route("/api-docs/openapi.yaml", web::get().to(spec_as_yaml))
        .route(
            "/swagger-ui",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/swagger-ui/"))
                    .insert_header(ContentType::plaintext())
                    .finish()
            }),
        );
}
