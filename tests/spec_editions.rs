//! The OpenAPI 3.0 edition that build.rs derives (`src/build_support/downgrade.rs`)
//! means the same API as `openapi/openapi.yaml`: the same paths, operations,
//! parameters, statuses, media types, schemas, properties, types, formats,
//! enums, bounds, nullability and required fields, in the words of each
//! version. And each rewrite of the converter, on the shapes the spec may
//! grow into.

#[path = "../src/build_support/downgrade.rs"]
mod downgrade;

use std::collections::BTreeSet;

use serde_json::{json, Value};

fn source() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The served 3.0 edition, as compiled into the server.
fn edition() -> Value {
    flashback_devices::docs::spec_3_0_json().clone()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Follows a local `$ref` (one level at a time) to the object it names.
fn deref<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    while let Some(Value::String(r)) = node.get("$ref") {
        let pointer = r.strip_prefix('#').expect("local reference");
        node = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling {r}"));
    }
    node
}

/// What a schema says, version-independently: one line per fact, prefixed
/// with where it is. Nullability is read from `type: [X, 'null']` (3.1) and
/// from `nullable: true` (3.0); a `$ref` alone and `allOf: [$ref]` are the same.
fn schema_facts(at: &str, schema: &Value, facts: &mut BTreeSet<String>) {
    let Some(map) = schema.as_object() else {
        facts.insert(format!("{at} = {schema}"));
        return;
    };
    if let Some(Value::Array(all)) = map.get("allOf") {
        if all.len() == 1 && all[0].get("$ref").is_some() && map.get("$ref").is_none() {
            facts.insert(format!("{at} $ref {}", all[0]["$ref"]));
            if map.get("nullable") == Some(&json!(true)) {
                facts.insert(format!("{at} nullable"));
            }
            for key in ["description"] {
                if let Some(v) = map.get(key) {
                    facts.insert(format!("{at} {key} {v}"));
                }
            }
            return;
        }
    }
    let mut types: Vec<String> = match map.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().map(|t| t.as_str().unwrap().to_owned()).collect(),
        _ => vec![],
    };
    if map.get("nullable") == Some(&json!(true)) {
        types.push("null".into());
    }
    if types.contains(&"null".to_owned()) {
        facts.insert(format!("{at} nullable"));
    }
    types.retain(|t| t != "null");
    types.sort();
    if !types.is_empty() {
        facts.insert(format!("{at} type {}", types.join("|")));
    }
    for (key, value) in map {
        match key.as_str() {
            "type" | "nullable" | "examples" | "example" => {}
            "properties" => {
                for (name, child) in value.as_object().unwrap() {
                    facts.insert(format!("{at} property {name}"));
                    schema_facts(&format!("{at}.{name}"), child, facts);
                }
            }
            "required" => {
                for name in value.as_array().unwrap() {
                    facts.insert(format!("{at} required {name}"));
                }
            }
            "items" | "additionalProperties" | "not" if value.is_object() => {
                schema_facts(&format!("{at}[{key}]"), value, facts);
            }
            "allOf" | "anyOf" | "oneOf" => {
                for (i, child) in value.as_array().unwrap().iter().enumerate() {
                    schema_facts(&format!("{at}[{key} {i}]"), child, facts);
                }
            }
            "const" => {
                facts.insert(format!("{at} enum [{value}]"));
            }
            "enum" => {
                let values: Vec<String> = value
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(Value::to_string)
                    .collect();
                facts.insert(format!("{at} enum [{}]", values.join(",")));
            }
            _ => {
                facts.insert(format!("{at} {key} {value}"));
            }
        }
    }
}

/// Parameters, request body and responses of one operation.
fn operation_facts(doc: &Value, at: &str, op: &Value, facts: &mut BTreeSet<String>) {
    facts.insert(format!("{at} operationId {}", op["operationId"]));
    for key in ["tags", "security", "deprecated"] {
        if let Some(v) = op.get(key) {
            facts.insert(format!("{at} {key} {v}"));
        }
    }
    for param in op["parameters"].as_array().into_iter().flatten() {
        let param = deref(doc, param);
        let p = format!("{at} parameter {} {}", param["in"], param["name"]);
        facts.insert(format!("{p} required {}", param["required"]));
        schema_facts(&p, deref(doc, &param["schema"]), facts);
    }
    if let Some(body) = op.get("requestBody") {
        let body = deref(doc, body);
        facts.insert(format!("{at} requestBody required {}", body["required"]));
        for (media, content) in body["content"].as_object().unwrap() {
            schema_facts(
                &format!("{at} requestBody {media}"),
                &content["schema"],
                facts,
            );
        }
    }
    for (status, response) in op["responses"].as_object().unwrap() {
        let response = deref(doc, response);
        let r = format!("{at} response {status}");
        facts.insert(r.clone());
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = deref(doc, header);
            schema_facts(
                &format!("{r} header {name}"),
                deref(doc, &header["schema"]),
                facts,
            );
        }
        for (media, content) in response["content"].as_object().into_iter().flatten() {
            schema_facts(&format!("{r} {media}"), &content["schema"], facts);
        }
    }
}

/// Everything the two editions must agree on.
fn facts(doc: &Value, webhooks_key: &str) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    for (kind, key) in [("path", "paths"), ("webhook", webhooks_key)] {
        for (path, item) in doc[key].as_object().unwrap() {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    operation_facts(doc, &format!("{kind} {method} {path}"), op, &mut facts);
                }
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        facts.insert(format!("schema {name}"));
        schema_facts(&format!("schema {name}"), schema, &mut facts);
    }
    for (name, scheme) in doc["components"]["securitySchemes"].as_object().unwrap() {
        facts.insert(format!("securityScheme {name} {scheme}"));
    }
    facts.insert(format!("security {}", doc["security"]));
    facts.insert(format!("servers {}", doc["servers"]));
    facts.insert(format!("version {}", doc["info"]["version"]));
    facts
}

#[test]
fn the_3_0_edition_means_the_same_api() {
    let source = source();
    let edition = edition();
    assert_eq!(edition["openapi"], "3.0.3");
    let want = facts(&source, "webhooks");
    let got = facts(&edition, "x-webhooks");
    // Spot checks that the comparison sees what it must (it cannot pass empty).
    for fact in [
        "path get /devices operationId \"listDevices\"",
        "path post /devices/{id}/untrust response 404",
        "path get /security-events parameter \"query\" \"cursor\" required false",
        "schema Device required \"trustExpiresAt\"",
        "schema Device.trustExpiresAt nullable",
        "schema Device.trustExpiresAt type string",
        "schema Device.isCurrent type boolean",
        "schema SecurityEventType enum [\"SESSION_STARTED\",\"DEVICE_TRUSTED\",\"DEVICE_UNTRUSTED\",\"DEVICE_REMOVED\",\"SESSION_REVOKED\",\"ALL_SESSIONS_REVOKED\",\"OTHER_SESSIONS_REVOKED\",\"NEW_DEVICE_SIGN_IN\",\"DEVICE_RENAMED\",\"USER_DATA_DELETED\"]",
        "webhook post securityEvent operationId \"securityEventWebhook\"",
    ] {
        assert!(want.contains(fact), "the 3.1 facts lack {fact}");
    }
    let missing: Vec<&String> = want.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the 3.0 edition differs from openapi/openapi.yaml\nonly in 3.1:\n  {}\nonly in 3.0:\n  {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
    // Nothing 3.1-only is left anywhere in the edition.
    let text = edition.to_string();
    for needle in ["\"null\"", "\"const\"", "\"identifier\"", "\"webhooks\""] {
        assert!(!text.contains(needle), "the 3.0 edition still has {needle}");
    }
}

/// What a mutation breaks, and how.
type Mutation = (&'static str, fn(&mut Value));

#[test]
fn a_mutated_edition_is_caught() {
    let source = source();
    let want = facts(&source, "webhooks");
    let mutations: [Mutation; 4] = [
        ("a nullable lost", |e| {
            e["components"]["schemas"]["Device"]["properties"]["city"]
                .as_object_mut()
                .unwrap()
                .remove("nullable");
        }),
        ("a required field lost", |e| {
            e["components"]["schemas"]["Session"]["required"]
                .as_array_mut()
                .unwrap()
                .pop();
        }),
        ("a status lost", |e| {
            e["paths"]["/devices/{id}"]["get"]["responses"]
                .as_object_mut()
                .unwrap()
                .remove("404");
        }),
        ("a parameter made required", |e| {
            e["paths"]["/security-events"]["get"]["parameters"][0]["required"] = json!(true);
        }),
    ];
    for (what, mutate) in mutations {
        let mut edition = edition();
        mutate(&mut edition);
        assert_ne!(facts(&edition, "x-webhooks"), want, "{what} went unnoticed");
    }
}

fn convert(schema: Value) -> Value {
    let doc = json!({"openapi": "3.1.0", "components": {"schemas": {"S": schema}}});
    downgrade::downgrade(&doc).unwrap()["components"]["schemas"]["S"].clone()
}

#[test]
fn each_3_1_construct_becomes_its_3_0_equivalent() {
    assert_eq!(
        convert(json!({"type": ["string", "null"], "format": "date-time"})),
        json!({"type": "string", "format": "date-time", "nullable": true})
    );
    assert_eq!(
        convert(json!({"oneOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]})),
        json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/T"}]})
    );
    assert_eq!(
        convert(json!({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]})),
        json!({"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": true})
    );
    assert_eq!(
        convert(json!({"$ref": "#/components/schemas/T", "description": "why"})),
        json!({"description": "why", "allOf": [{"$ref": "#/components/schemas/T"}]})
    );
    assert_eq!(
        convert(json!({"type": "string", "const": "ok", "examples": ["ok", "other"]})),
        json!({"type": "string", "enum": ["ok"], "example": "ok"})
    );
    assert_eq!(
        convert(json!({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})),
        json!({"type": "integer", "exclusiveMinimum": true, "minimum": 0, "exclusiveMaximum": true, "maximum": 10})
    );
    assert_eq!(
        convert(
            json!({"type": "object", "properties": {"a": {"type": ["integer", "null"]}}, "additionalProperties": {"type": ["string", "null"]}})
        ),
        json!({"type": "object", "properties": {"a": {"type": "integer", "nullable": true}}, "additionalProperties": {"type": "string", "nullable": true}})
    );
    assert_eq!(
        convert(json!({"type": "array", "items": {"type": ["boolean", "null"]}})),
        json!({"type": "array", "items": {"type": "boolean", "nullable": true}})
    );
}

#[test]
fn the_document_level_3_1_parts_are_rewritten() {
    let doc = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "urn:example",
        "info": {"title": "t", "version": "1", "summary": "s", "license": {"name": "MIT", "identifier": "MIT"}},
        "paths": {"/x": {"get": {"parameters": [{"$ref": "#/components/parameters/P", "description": "d"}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": ["string", "null"]},
                "examples": {"a": {"value": {"type": ["stays", "null"]}}}}}}}}}},
        "webhooks": {"w": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": ["string", "null"]}}}}}}}
    });
    let out = downgrade::downgrade(&doc).unwrap();
    assert_eq!(out["openapi"], "3.0.3");
    assert!(out.get("jsonSchemaDialect").is_none() && out.get("webhooks").is_none());
    assert_eq!(out["info"]["license"], json!({"name": "MIT"}));
    assert_eq!(out["info"]["x-summary"], "s");
    assert_eq!(
        out["paths"]["/x"]["get"]["parameters"][0],
        json!({"$ref": "#/components/parameters/P"})
    );
    let content = &out["paths"]["/x"]["get"]["responses"]["200"]["content"]["application/json"];
    assert_eq!(
        content["schema"],
        json!({"type": "string", "nullable": true})
    );
    // Examples are data: left as written.
    assert_eq!(
        content["examples"]["a"]["value"],
        json!({"type": ["stays", "null"]})
    );
    assert_eq!(
        out["x-webhooks"]["w"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        json!({"type": "string", "nullable": true})
    );
}

#[test]
fn what_3_0_cannot_say_fails_with_its_pointer() {
    let doc = json!({"openapi": "3.1.0", "components": {"schemas": {
        "A": {"type": "array", "prefixItems": [{"type": "string"}]},
        "B": {"type": "object", "properties": {"n": {"type": "null"}}},
        "C": {"if": {"type": "string"}, "then": {"minLength": 1}}
    }}});
    let errors = downgrade::downgrade(&doc).unwrap_err();
    assert_eq!(
        errors,
        vec![
            "/components/schemas/A/prefixItems: no 3.0 equivalent",
            "/components/schemas/B/properties/n/type: only 'null' has no 3.0 equivalent",
            "/components/schemas/C/if: no 3.0 equivalent",
            "/components/schemas/C/then: no 3.0 equivalent",
        ]
    );
}
