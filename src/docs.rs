//! The spec as served: Swagger UI at `/swagger-ui/` and the document itself
//! at `/api-docs/openapi.json` and `/api-docs/openapi.yaml`. What is served
//! is `openapi/openapi.yaml`, the source of truth, compiled into the binary,
//! and its OpenAPI 3.0 edition (derived by build.rs, for the tools that read
//! 3.0 only) at `/api-docs/openapi-3.0.json` and `/api-docs/openapi-3.0.yaml`.
//! `/api-docs/public.json` is the 3.1 document without the `platform`
//! operations (and what only they use), for frontend teams who generate a
//! client: its users can never call those.

use std::sync::OnceLock;

use actix_web::{http::header::ContentType, web, HttpResponse};
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

/// The spec file as written.
pub const SPEC_YAML: &str = include_str!("../openapi/openapi.yaml");

/// The spec as JSON; parsed once (build.rs has already validated it).
pub fn spec_json() -> &'static serde_json::Value {
    static SPEC: OnceLock<serde_json::Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        yaml_serde::from_str(SPEC_YAML).expect("build.rs validated openapi/openapi.yaml")
    })
}

/// The OpenAPI 3.0.3 edition as JSON, derived from `SPEC_YAML` by build.rs.
pub const SPEC_3_0_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi-3.0.json"));

/// The OpenAPI 3.0.3 edition as YAML.
pub const SPEC_3_0_YAML: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi-3.0.yaml"));

/// The OpenAPI 3.0.3 edition, parsed once.
pub fn spec_3_0_json() -> &'static serde_json::Value {
    static SPEC: OnceLock<serde_json::Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(SPEC_3_0_JSON).expect("build.rs wrote JSON"))
}

/// The tag of the operations for the deployment's own services.
pub const PLATFORM_TAG: &str = "platform";

/// The spec without the operations tagged `platform`, their tag, their
/// security scheme and every component nothing else refers to.
pub fn public_spec_json() -> &'static serde_json::Value {
    static PUBLIC: OnceLock<serde_json::Value> = OnceLock::new();
    PUBLIC.get_or_init(|| without_platform(spec_json().clone()))
}

fn without_platform(mut spec: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let is_platform = |operation: &Value| {
        operation["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t == PLATFORM_TAG))
    };
    if let Some(paths) = spec["paths"].as_object_mut() {
        for item in paths.values_mut() {
            if let Some(item) = item.as_object_mut() {
                item.retain(|_, operation| !is_platform(operation));
            }
        }
        paths.retain(|_, item| {
            item.as_object().is_some_and(|item| {
                item.keys()
                    .any(|k| !matches!(k.as_str(), "parameters" | "summary" | "description"))
            })
        });
    }
    if let Some(tags) = spec["tags"].as_array_mut() {
        tags.retain(|tag| tag["name"] != PLATFORM_TAG);
    }
    if let Some(schemes) = spec
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        schemes.shift_remove("serviceKey");
    }
    // Components only the platform operations used: drop each that nothing
    // else refers to, until none is left (one may be used by another).
    loop {
        let text = serde_json::to_string(&spec).unwrap_or_default();
        let mut unused = Vec::new();
        for kind in [
            "schemas",
            "responses",
            "parameters",
            "requestBodies",
            "headers",
            "examples",
        ] {
            for name in spec["components"][kind]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, _)| n)
            {
                let reference = format!("\"#/components/{kind}/{name}\"");
                if !text.contains(&reference) {
                    unused.push((kind, name.clone()));
                }
            }
        }
        if unused.is_empty() {
            return spec;
        }
        for (kind, name) in unused {
            if let Some(group) = spec["components"][kind].as_object_mut() {
                group.shift_remove(&name);
            }
        }
    }
}

async fn spec_as_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(SPEC_YAML)
}

async fn spec_3_0_as_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(SPEC_3_0_YAML)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The 3.1 document first: the selector opens it unless asked otherwise.
    let swagger = SwaggerUi::new("/swagger-ui/{_:.*}")
        .external_url_unchecked("/api-docs/openapi.json", spec_json().clone())
        .external_url_unchecked("/api-docs/openapi-3.0.json", spec_3_0_json().clone())
        .config(
            Config::new([
                Url::new("OpenAPI 3.1 (source)", "/api-docs/openapi.json"),
                Url::new("OpenAPI 3.0 edition", "/api-docs/openapi-3.0.json"),
            ])
            .persist_authorization(true)
            .try_it_out_enabled(true),
        );
    cfg.service(swagger)
        .route("/api-docs/openapi.yaml", web::get().to(spec_as_yaml))
        .route(
            "/api-docs/openapi-3.0.yaml",
            web::get().to(spec_3_0_as_yaml),
        )
        .route(
            "/api-docs/public.json",
            web::get().to(|| async { HttpResponse::Ok().json(public_spec_json()) }),
        )
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
