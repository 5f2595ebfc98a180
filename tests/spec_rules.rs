//! The rules of `src/build_support/validate.rs`: the real document passes them,
//! and each rule catches the one breakage made to a fresh copy of it.

#[path = "../src/build_support/validate.rs"]
mod validate;

use serde_json::{json, Value};
use validate::{validate, SpecViolation};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Validates a copy of the real document after `f` broke it.
fn break_spec(f: impl FnOnce(&mut Value)) -> Vec<SpecViolation> {
    let mut spec = spec();
    f(&mut spec);
    validate(&spec)
}

/// The node at `pointer`, which the test expects to exist.
fn at<'a>(spec: &'a mut Value, pointer: &str) -> &'a mut Value {
    spec.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("the spec has no {pointer}"))
}

/// Removes the member named by the last token of `pointer`, which must exist.
fn remove(spec: &mut Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    let key = key.replace("~1", "/").replace("~0", "~");
    at(spec, parent)
        .as_object_mut()
        .and_then(|object| object.shift_remove(&key))
        .unwrap_or_else(|| panic!("the spec has no {pointer}"))
}

fn rename_path(spec: &mut Value, from: &str, to: &str) {
    let paths = at(spec, "/paths").as_object_mut().expect("paths is a map");
    let item = paths.shift_remove(from).expect("the path exists");
    paths.insert(to.to_owned(), item);
}

fn list(violations: &[SpecViolation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

/// Asserts a violation of `rule` at exactly `pointer`, whose message contains
/// `words`; returns it.
#[track_caller]
fn assert_found<'v>(
    violations: &'v [SpecViolation],
    rule: &str,
    pointer: &str,
    words: &str,
) -> &'v SpecViolation {
    violations
        .iter()
        .find(|v| v.rule == rule && v.pointer == pointer && v.message.contains(words))
        .unwrap_or_else(|| {
            panic!(
                "expected [{rule}] at {pointer} mentioning {words:?}, got:\n{}",
                list(violations)
            )
        })
}

fn count(violations: &[SpecViolation], rule: &str) -> usize {
    violations.iter().filter(|v| v.rule == rule).count()
}

#[test]
fn the_real_spec_breaks_no_rule() {
    let violations = validate(&spec());
    assert!(violations.is_empty(), "violations:\n{}", list(&violations));
}

#[test]
fn violations_display_pointer_rule_and_message() {
    let violation = SpecViolation {
        pointer: "/openapi".to_owned(),
        rule: "openapi-version",
        message: "wrong".to_owned(),
    };
    assert_eq!(violation.to_string(), "/openapi: [openapi-version] wrong");
}

#[test]
fn violations_are_sorted_by_pointer() {
    let violations = break_spec(|spec| {
        *at(spec, "/openapi") = json!("3.0.3");
        remove(spec, "/paths/~1devices/get/summary");
        remove(spec, "/components/responses/BadRequest/content");
    });
    assert_eq!(violations.len(), 3, "{}", list(&violations));
    assert!(violations.windows(2).all(|w| w[0].pointer <= w[1].pointer));
}

// ----- openapi-version -------------------------------------------------------

#[test]
fn openapi_version_must_be_3_1() {
    let violations = break_spec(|spec| *at(spec, "/openapi") = json!("3.0.3"));
    assert_found(&violations, "openapi-version", "/openapi", "3.0.3");
}

#[test]
fn openapi_version_must_be_a_string() {
    let violations = break_spec(|spec| *at(spec, "/openapi") = json!(3.1));
    assert_found(&violations, "openapi-version", "/openapi", "string");
}

// ----- unresolved-ref --------------------------------------------------------

#[test]
fn a_ref_to_a_missing_schema_is_reported() {
    let schema = "/paths/~1devices/get/responses/200/content/application~1json/schema";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{schema}/$ref")) = json!("#/components/schemas/Nope");
    });
    assert_found(
        &violations,
        "unresolved-ref",
        schema,
        "#/components/schemas/Nope",
    );
}

#[test]
fn a_ref_to_another_document_is_reported() {
    let parameter = "/paths/~1devices~1{id}/get/parameters/0";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{parameter}/$ref")) = json!("common.yaml#/DeviceId");
    });
    assert_found(
        &violations,
        "unresolved-ref",
        parameter,
        "common.yaml#/DeviceId",
    );
}

#[test]
fn a_ref_inside_a_component_schema_is_checked() {
    let property = "/components/schemas/Device/properties/deviceType";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{property}/$ref")) = json!("#/components/schemas/DeviceKind");
    });
    assert_found(&violations, "unresolved-ref", property, "DeviceKind");
}

#[test]
fn a_ref_chain_that_loops_is_reported() {
    let violations = break_spec(|spec| {
        spec["components"]["responses"]["Loop"] = json!({"$ref": "#/components/responses/Loop"});
    });
    assert_found(
        &violations,
        "unresolved-ref",
        "/components/responses/Loop",
        "loops",
    );
}

#[test]
fn a_ref_inside_example_data_is_not_a_reference() {
    let violations = break_spec(|spec| {
        let media = at(
            spec,
            "/paths/~1healthz/get/responses/200/content/application~1json",
        );
        media["example"]["status"] = json!({"$ref": "#/nowhere"});
    });
    assert_eq!(
        count(&violations, "unresolved-ref"),
        0,
        "{}",
        list(&violations)
    );
}

// ----- path-params -----------------------------------------------------------

#[test]
fn a_template_parameter_must_be_declared() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1devices~1{id}~1untrust/post/parameters");
    });
    assert_found(
        &violations,
        "path-params",
        "/paths/~1devices~1{id}~1untrust/post",
        "`{id}`",
    );
}

#[test]
fn a_declared_path_parameter_must_be_in_the_template() {
    let violations = break_spec(|spec| {
        at(spec, "/paths/~1devices/get")["parameters"] =
            json!([{"$ref": "#/components/parameters/DeviceId"}]);
    });
    assert_found(
        &violations,
        "path-params",
        "/paths/~1devices/get",
        "`{id}` is not in the template",
    );
}

#[test]
fn renaming_a_template_parameter_alone_breaks_both_directions() {
    let violations = break_spec(|spec| {
        rename_path(
            spec,
            "/sessions/{id}/revoke",
            "/sessions/{sessionId}/revoke",
        );
    });
    let operation = "/paths/~1sessions~1{sessionId}~1revoke/post";
    assert_found(&violations, "path-params", operation, "`{sessionId}`");
    assert_found(
        &violations,
        "path-params",
        operation,
        "`{id}` is not in the template",
    );
}

#[test]
fn a_path_parameter_must_be_required() {
    let violations = break_spec(|spec| {
        *at(spec, "/components/parameters/SessionId/required") = json!(false);
    });
    let operation = "/paths/~1sessions~1{id}~1heartbeat/post";
    assert_found(&violations, "path-params", operation, "required: true");
}

#[test]
fn path_parameters_may_be_declared_on_the_path_item() {
    let violations = break_spec(|spec| {
        let parameters = remove(spec, "/paths/~1sessions~1{id}~1revoke/post/parameters");
        at(spec, "/paths/~1sessions~1{id}~1revoke")["parameters"] = parameters;
    });
    assert!(violations.is_empty(), "violations:\n{}", list(&violations));
}

// ----- operation-id ----------------------------------------------------------

#[test]
fn an_operation_needs_an_operation_id() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1sessions~1revoke-all/post/operationId");
    });
    assert_found(
        &violations,
        "operation-id",
        "/paths/~1sessions~1revoke-all/post",
        "operationId",
    );
}

#[test]
fn an_empty_operation_id_is_reported_at_the_id() {
    let violations = break_spec(|spec| {
        *at(spec, "/paths/~1sessions/get/operationId") = json!("");
    });
    assert_found(
        &violations,
        "operation-id",
        "/paths/~1sessions/get/operationId",
        "non-empty",
    );
}

#[test]
fn a_duplicate_operation_id_names_the_first_use() {
    let violations = break_spec(|spec| {
        *at(spec, "/paths/~1readyz/get/operationId") = json!("getHealth");
    });
    assert_found(
        &violations,
        "operation-id",
        "/paths/~1readyz/get/operationId",
        "/paths/~1healthz/get",
    );
    assert_eq!(count(&violations, "operation-id"), 1);
}

// ----- operation-tag / operation-summary -------------------------------------

#[test]
fn an_operation_needs_tags() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1devices~1trust/post/tags");
    });
    assert_found(
        &violations,
        "operation-tag",
        "/paths/~1devices~1trust/post",
        "tags",
    );
}

#[test]
fn an_empty_tag_list_is_reported_at_the_tags() {
    let violations = break_spec(|spec| {
        *at(spec, "/paths/~1devices~1trust/post/tags") = json!([]);
    });
    assert_found(
        &violations,
        "operation-tag",
        "/paths/~1devices~1trust/post/tags",
        "non-empty",
    );
}

#[test]
fn an_operation_needs_a_summary() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1devices~1{id}/delete/summary");
    });
    assert_found(
        &violations,
        "operation-summary",
        "/paths/~1devices~1{id}/delete",
        "summary",
    );
}

// ----- secured-401 -----------------------------------------------------------

#[test]
fn a_secured_operation_documents_401() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1devices/get/responses/401");
    });
    assert_found(
        &violations,
        "secured-401",
        "/paths/~1devices/get/responses",
        "401",
    );
}

#[test]
fn an_operation_inherits_top_level_security() {
    let violations = break_spec(|spec| {
        spec["security"] = json!([{"bearerAuth": []}]);
        remove(spec, "/paths/~1healthz/get/security");
    });
    assert_found(
        &violations,
        "secured-401",
        "/paths/~1healthz/get/responses",
        "401",
    );
    // /readyz keeps its own `security: []`, which overrides the top level.
    assert_eq!(
        count(&violations, "secured-401"),
        1,
        "{}",
        list(&violations)
    );
}

#[test]
fn optional_security_does_not_need_401() {
    let violations = break_spec(|spec| {
        *at(spec, "/paths/~1devices/get/security") = json!([{}]);
        remove(spec, "/paths/~1devices/get/responses/401");
    });
    assert!(violations.is_empty(), "violations:\n{}", list(&violations));
}

// ----- response-json-schema --------------------------------------------------

#[test]
fn a_response_needs_json_content() {
    let violations = break_spec(|spec| {
        remove(spec, "/paths/~1readyz/get/responses/503/content");
    });
    assert_found(
        &violations,
        "response-json-schema",
        "/paths/~1readyz/get/responses/503",
        "content",
    );
}

#[test]
fn a_shared_response_is_checked_once_where_it_is_defined() {
    let violations = break_spec(|spec| {
        remove(
            spec,
            "/components/responses/DeviceNotFound/content/application~1json/schema",
        );
    });
    assert_found(
        &violations,
        "response-json-schema",
        "/components/responses/DeviceNotFound/content/application~1json",
        "schema",
    );
    assert_eq!(count(&violations, "response-json-schema"), 1);
}

// ----- response-media-type ---------------------------------------------------

const METRICS_TEXT: &str = "/paths/~1metrics/get/responses/200/content/text~1plain; version=0.0.4";

#[test]
fn a_text_response_passes_with_a_string_schema() {
    // The real document has one (getMetrics); without parameters it passes too.
    let violations = break_spec(|spec| {
        let content = at(spec, "/paths/~1metrics/get/responses/200/content");
        let media = content
            .as_object_mut()
            .unwrap()
            .shift_remove("text/plain; version=0.0.4");
        content["text/plain"] = media.expect("getMetrics documents its text body");
    });
    assert!(violations.is_empty(), "violations:\n{}", list(&violations));
}

#[test]
fn a_text_response_needs_a_string_schema() {
    let violations = break_spec(|spec| {
        *at(spec, &format!("{METRICS_TEXT}/schema")) = json!({"type": "object"});
    });
    assert_found(
        &violations,
        "response-media-type",
        METRICS_TEXT,
        "type: string",
    );
    let violations = break_spec(|spec| {
        remove(spec, &format!("{METRICS_TEXT}/schema"));
    });
    assert_found(
        &violations,
        "response-media-type",
        METRICS_TEXT,
        "type: string",
    );
}

#[test]
fn other_media_types_are_refused() {
    let json = "/paths/~1readyz/get/responses/503/content/application~1json";
    let violations = break_spec(|spec| {
        let media = remove(spec, json);
        at(spec, "/paths/~1readyz/get/responses/503/content")["application/xml"] = media;
    });
    assert_found(
        &violations,
        "response-media-type",
        "/paths/~1readyz/get/responses/503/content/application~1xml",
        "not supported",
    );
}

#[test]
fn a_response_has_one_media_type() {
    let violations = break_spec(|spec| {
        let text = at(spec, METRICS_TEXT).clone();
        at(spec, "/paths/~1readyz/get/responses/503/content")["text/plain"] = text;
    });
    assert_found(
        &violations,
        "response-media-type",
        "/paths/~1readyz/get/responses/503/content",
        "2 media types",
    );
    assert_eq!(
        count(&violations, "response-media-type"),
        1,
        "{}",
        list(&violations)
    );
}

// ----- inline-object-schema --------------------------------------------------

#[test]
fn a_json_response_schema_must_be_a_component_ref() {
    let schema = "/paths/~1devices~1trust/post/responses/200/content/application~1json/schema";
    let violations = break_spec(|spec| {
        *at(spec, schema) = json!({
            "type": "object",
            "properties": {"success": {"type": "boolean"}},
        });
    });
    assert_found(&violations, "inline-object-schema", schema, "inline");
    assert_eq!(count(&violations, "inline-object-schema"), 1);
}

#[test]
fn a_json_request_body_schema_must_be_a_component_ref() {
    let schema = "/paths/~1devices~1trust/post/requestBody/content/application~1json/schema";
    let violations = break_spec(|spec| {
        *at(spec, schema) = json!({
            "type": "object",
            "required": ["fingerprint"],
            "properties": {"fingerprint": {"type": "string"}},
        });
    });
    assert_found(&violations, "inline-object-schema", schema, "inline");
}

// ----- example-invalid -------------------------------------------------------

#[test]
fn a_response_example_must_match_its_schema() {
    let example = "/paths/~1devices/get/responses/200/content/application~1json/example";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{example}/success")) = json!("yes");
    });
    assert_found(
        &violations,
        "example-invalid",
        &format!("{example}/success"),
        "\"yes\" is not of type \"boolean\"",
    );
}

#[test]
fn example_formats_are_checked() {
    let example = "/paths/~1devices/get/responses/200/content/application~1json/example";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{example}/devices/0/lastSeen")) = json!("yesterday");
    });
    assert_found(
        &violations,
        "example-invalid",
        &format!("{example}/devices/0/lastSeen"),
        "date-time",
    );
}

#[test]
fn null_is_a_valid_example_for_a_nullable_type() {
    let example = "/paths/~1devices/get/responses/200/content/application~1json/example";
    let violations = break_spec(|spec| {
        *at(spec, &format!("{example}/devices/0/city")) = Value::Null;
        *at(spec, &format!("{example}/devices/0/trustExpiresAt")) = Value::Null;
    });
    assert!(violations.is_empty(), "violations:\n{}", list(&violations));
}

#[test]
fn a_shared_response_example_is_checked_once_where_it_is_defined() {
    let example = "/components/responses/DeviceNotFound/content/application~1json/example";
    let violations = break_spec(|spec| {
        remove(spec, &format!("{example}/error"));
    });
    assert_found(
        &violations,
        "example-invalid",
        example,
        "\"error\" is a required property",
    );
    assert_eq!(count(&violations, "example-invalid"), 1);
}

#[test]
fn named_example_values_must_match_their_schema() {
    let media = "/paths/~1healthz/get/responses/200/content/application~1json";
    let violations = break_spec(|spec| {
        let media = at(spec, media);
        media["examples"] = json!({"up": {"value": {"success": true, "status": 1}}});
    });
    assert_found(
        &violations,
        "example-invalid",
        &format!("{media}/examples/up/value/status"),
        "not of type \"string\"",
    );
}

#[test]
fn a_request_body_example_must_match_its_schema() {
    let example = "/paths/~1devices~1trust/post/requestBody/content/application~1json/example";
    let violations = break_spec(|spec| {
        at(spec, example)["deviceId"] = json!("abc");
    });
    assert_found(&violations, "example-invalid", example, "deviceId");
}

#[test]
fn a_component_parameter_example_must_match_its_schema() {
    let violations = break_spec(|spec| {
        at(spec, "/components/parameters/DeviceId")["example"] = json!("not an id!");
    });
    assert_found(
        &violations,
        "example-invalid",
        "/components/parameters/DeviceId/example",
        "does not match",
    );
    assert_eq!(count(&violations, "example-invalid"), 1);
}

#[test]
fn an_inline_parameter_example_must_match_its_schema() {
    let parameter = "/paths/~1devices~1{id}/get/parameters/0";
    let violations = break_spec(|spec| {
        let mut inline = at(spec, "/components/parameters/DeviceId").clone();
        inline["example"] = json!("");
        *at(spec, parameter) = inline;
    });
    assert_found(
        &violations,
        "example-invalid",
        &format!("{parameter}/example"),
        "shorter than 1 character",
    );
}

#[test]
fn a_component_schema_that_is_not_json_schema_is_reported_once() {
    let violations = break_spec(|spec| {
        *at(
            spec,
            "/components/schemas/ErrorResponse/properties/error/type",
        ) = json!("strin");
    });
    assert_found(
        &violations,
        "example-invalid",
        "/components/schemas/ErrorResponse/properties/error/type",
        "not a valid JSON Schema",
    );
    assert_eq!(
        count(&violations, "example-invalid"),
        1,
        "{}",
        list(&violations)
    );
}

#[test]
fn a_component_schema_that_cannot_compile_is_reported_once() {
    let violations = break_spec(|spec| {
        at(spec, "/components/schemas/ErrorResponse/properties/error")["pattern"] = json!("([");
    });
    assert_found(
        &violations,
        "example-invalid",
        "/components/schemas/ErrorResponse/properties/error/pattern",
        "regex",
    );
    assert_eq!(
        count(&violations, "example-invalid"),
        1,
        "{}",
        list(&violations)
    );
}

#[test]
fn webhooks_are_held_to_the_operation_and_body_rules() {
    const HOOK: &str = "/webhooks/securityEvent/post";
    let violations = break_spec(|spec| {
        remove(spec, &format!("{HOOK}/summary"));
        remove(spec, &format!("{HOOK}/responses"));
        // The same operationId as a path operation: one namespace.
        *at(spec, &format!("{HOOK}/operationId")) = json!("listDevices");
        // An example that does not match the payload schema.
        *at(
            spec,
            &format!("{HOOK}/requestBody/content/application~1json/example/data/userId"),
        ) = json!(42);
    });
    assert_found(&violations, "operation-summary", HOOK, "no `summary`");
    assert_found(&violations, "webhook-shape", HOOK, "`responses`");
    assert_found(
        &violations,
        "operation-id",
        &format!("{HOOK}/operationId"),
        "already used",
    );
    assert_found(
        &violations,
        "example-invalid",
        &format!("{HOOK}/requestBody/content/application~1json/example/data/userId"),
        "",
    );

    let violations = break_spec(|spec| {
        remove(spec, &format!("{HOOK}/requestBody"));
    });
    assert_found(&violations, "webhook-shape", HOOK, "`requestBody`");

    let violations = break_spec(|spec| {
        *at(
            spec,
            &format!("{HOOK}/requestBody/content/application~1json/schema"),
        ) = json!({"type": "object"});
    });
    assert_found(
        &violations,
        "inline-object-schema",
        &format!("{HOOK}/requestBody/content/application~1json/schema"),
        "inline",
    );
}

// ----- the public document ---------------------------------------------------

/// The operations of a document: (method, path, operationId, tags).
fn operations(spec: &Value) -> Vec<(String, String, String, Vec<String>)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let tags = operation["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            found.push((method.clone(), path.clone(), id.to_owned(), tags));
        }
    }
    found
}

#[test]
fn the_public_document_is_the_spec_without_the_platform_operations() {
    let full = spec();
    let public = flashback_devices::docs::public_spec_json();
    // It passes every rule (no dangling $ref among them).
    assert_eq!(validate(public), Vec::new());
    let (platform, rest): (Vec<_>, Vec<_>) = operations(&full)
        .into_iter()
        .partition(|(_, _, _, tags)| tags.iter().any(|t| t == "platform"));
    assert!(platform.len() >= 6, "{platform:?}");
    assert_eq!(operations(public), rest);
    for (path, item) in public["paths"].as_object().unwrap() {
        assert!(!path.starts_with("/platform"), "{path}");
        // Every operation the public document keeps is the spec's, unchanged.
        assert_eq!(item, &full["paths"][path], "{path}");
    }
    assert!(public
        .pointer("/components/securitySchemes/serviceKey")
        .is_none());
    assert!(public
        .pointer("/components/securitySchemes/bearerAuth")
        .is_some());
    for name in [
        "CreateSessionRequest",
        "SignInDevice",
        "CreateSessionResponse",
    ] {
        assert!(
            public["components"]["schemas"].get(name).is_none(),
            "{name}"
        );
    }
    assert!(public["components"]["responses"]
        .get("ServiceKeyUnauthorized")
        .is_none());
    assert!(!public["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "platform"));
    assert_eq!(public["webhooks"], full["webhooks"]);
}
