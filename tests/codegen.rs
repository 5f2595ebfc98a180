//! What `src/build_support/codegen.rs` generates for shapes the spec may
//! grow into, beyond what `tests/contract.rs` sees of today's document.

#[path = "../src/build_support/codegen.rs"]
#[allow(dead_code)]
mod codegen;

use serde_json::{json, Value};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The generated items of one type, from its `pub struct NAME` to the end
/// of its `impl Validate`.
fn generated_for(code: &str, name: &str) -> String {
    let start = code
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let end = code[start..]
        .find("Ok(())\n    }\n}")
        .unwrap_or_else(|| panic!("no impl Validate for {name}"));
    code[start..start + end].to_owned()
}

#[test]
fn integer_ranges_reach_utoipa_and_the_body_validation() {
    let mut spec = spec();
    spec.pointer_mut("/components/schemas/TrustDeviceRequest/properties")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(
            "days".into(),
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 365}),
        );
    let code = codegen::generate(&spec).unwrap();
    let request = generated_for(&code, "TrustDeviceRequest");
    assert!(
        request
            .contains("#[schema(required = false, nullable = false, minimum = 1, maximum = 365)]"),
        "{request}"
    );
    assert!(request.contains("pub days: Option<i32>,"), "{request}");
    assert!(
        request.contains("if let Some(value) = self.days {"),
        "{request}"
    );
    assert!(
        request.contains("if value < 1 { return Err(\"`days` must be at least 1\".to_owned()); }"),
        "{request}"
    );
    assert!(
        request
            .contains("if value > 365 { return Err(\"`days` must be at most 365\".to_owned()); }"),
        "{request}"
    );
    // A count in a response of today's spec: its minimum is in the document.
    let response = generated_for(&code, "RevokeOtherSessionsResponse");
    assert!(response.contains("#[schema(minimum = 0)]"), "{response}");
}
