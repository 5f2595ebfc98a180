//! Every response a test receives is checked against `openapi/openapi.yaml`:
//! its status must be documented for the operation, and its body must
//! validate (JSON Schema 2020-12, formats included) against that status's
//! schema. Every header the response documents must validate against its
//! schema when present, and `X-Request-Id`, which every response of the spec
//! documents, must be present. A response that breaks any of these fails the
//! test that made it.

use std::sync::OnceLock;

use serde_json::{json, Value};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
                .unwrap();
        yaml_serde::from_str(&text).unwrap()
    })
}

fn template_matches(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// The operation serving `method path`, matched as OpenAPI does: the most
/// specific path template (fewest parameters) first, then the method.
pub fn find_operation(method: &str, path: &str) -> Option<(String, &'static Value)> {
    let method = method.to_ascii_lowercase();
    let paths = spec()["paths"].as_object()?;
    let matching: Vec<(&String, &Value)> = paths
        .iter()
        .filter(|(template, _)| template_matches(template, path))
        .collect();
    let fewest = matching
        .iter()
        .map(|(template, _)| template.matches('{').count())
        .min()?;
    matching
        .into_iter()
        .filter(|(template, item)| {
            template.matches('{').count() == fewest && item.get(&method).is_some()
        })
        .map(|(template, item)| (template.clone(), &item[&method]))
        .next()
}

fn resolve(node: &Value) -> &Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec()
            .pointer(reference.trim_start_matches('#'))
            .expect("ref resolves"),
        None => node,
    }
}

pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    assert!(
        METHODS.contains(&method.to_ascii_lowercase().as_str()),
        "unexpected method {method}"
    );
    let Some((template, operation)) = find_operation(method, path) else {
        panic!(
            "{method} {path} is not an operation of the spec; use call_unchecked for such requests"
        );
    };
    let id = operation["operationId"].as_str().unwrap_or("?");
    let Some(response) = operation["responses"].get(status.to_string()) else {
        panic!("{id} ({method} {template}) answered status {status}, which the spec does not document; body: {body}");
    };
    let response = resolve(response);
    let content = response["content"].as_object().expect("documented content");
    let (media_type, media) = content.iter().next().expect("one media type");
    let schema = &media["schema"];
    if !media_type.starts_with("application/json") {
        // A text body (the metrics): `into_test_response` keeps it as a string.
        assert!(
            body.is_string(),
            "{id} ({method} {template}) status {status}: a {media_type} body must be text, got {body}"
        );
    }
    let mut root = json!({"components": spec()["components"]});
    for (key, value) in schema.as_object().expect("schema object") {
        root[key] = value.clone();
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{id} ({method} {template}) status {status}: body does not match its schema: {}\nbody: {body}",
        errors.join("; ")
    );
}

/// `text/plain; version=0.0.4` → (`text/plain`, [(`version`, `0.0.4`)]),
/// lower case, spaces dropped.
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';').map(|p| p.trim().to_ascii_lowercase());
    let essence = parts.next().unwrap_or_default();
    let parameters = parts
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect();
    (essence, parameters)
}

/// The documented response headers of `method path` at `status`: each one
/// present must match its schema; `X-Request-Id` must be present. The
/// `Content-Type` must be the documented media type, with every parameter
/// the spec gives it (such as the metrics' `version=0.0.4`).
pub fn check_headers(method: &str, path: &str, status: u16, headers: &reqwest::header::HeaderMap) {
    let (template, operation) = find_operation(method, path).expect("checked by `check`");
    let id = operation["operationId"].as_str().unwrap_or("?");
    let response = resolve(&operation["responses"][status.to_string()]);
    let documented_type = response["content"]
        .as_object()
        .and_then(|content| content.keys().next())
        .expect("documented content");
    let sent_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{id} ({method} {template}) status {status}: no Content-Type"));
    let (documented_essence, documented_parameters) = media_type(documented_type);
    let (sent_essence, sent_parameters) = media_type(sent_type);
    assert!(
        sent_essence == documented_essence
            && documented_parameters
                .iter()
                .all(|p| sent_parameters.contains(p)),
        "{id} ({method} {template}) status {status}: Content-Type {sent_type:?}, the spec documents {documented_type:?}"
    );
    let documented = response["headers"].as_object();
    assert!(
        documented.is_some_and(|h| h.contains_key("X-Request-Id")),
        "{id} ({method} {template}) status {status}: the spec does not document X-Request-Id"
    );
    for (name, header) in documented.into_iter().flatten() {
        let header = resolve(header);
        let Some(value) = headers.get(name.as_str()) else {
            assert_ne!(
                name, "X-Request-Id",
                "{id} ({method} {template}) status {status}: no X-Request-Id header"
            );
            continue;
        };
        let value = value.to_str().expect("a visible ASCII header");
        let instance = match header["schema"]["type"].as_str() {
            Some("integer") => value.parse::<i64>().map_or(json!(value), |n| json!(n)),
            _ => json!(value),
        };
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&header["schema"])
            .expect("header schema compiles");
        assert!(
            validator.is_valid(&instance),
            "{id} ({method} {template}) status {status}: header {name}: {value:?} does not match {}",
            header["schema"]
        );
    }
}
