//! The OpenAPI 3.0.3 edition of the 3.1 document, for the generators, mock
//! servers and validators that read 3.0 only (progenitor, oapi-codegen,
//! NSwag, older Swagger tooling). Derived by build.rs; never written by hand.
//!
//! Every 3.1 construct 3.0 lacks is rewritten to its 3.0 equivalent, and a
//! construct without one fails the build with its JSON pointer, so that the
//! editions cannot silently mean different APIs.

use serde_json::{json, Map, Value};

/// The 3.0.3 edition of `spec` (an OpenAPI 3.1 document), or the JSON
/// pointers of the parts that have no 3.0 equivalent.
pub fn downgrade(spec: &Value) -> Result<Value, Vec<String>> {
    let mut out = spec.clone();
    let mut errors = Vec::new();
    let root = out
        .as_object_mut()
        .ok_or_else(|| vec!["/: not an object".to_owned()])?;
    root.insert("openapi".into(), json!("3.0.3"));
    // 3.1 only: the JSON Schema dialect, info.summary, license.identifier.
    root.remove("jsonSchemaDialect");
    if let Some(info) = root.get_mut("info").and_then(Value::as_object_mut) {
        if let Some(Value::String(summary)) = info.remove("summary") {
            info.insert("x-summary".into(), json!(summary));
        }
        if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut) {
            license.remove("identifier");
        }
    }
    // 3.0 has no webhooks: the extension keeps them readable for people and
    // for the tools that know it (Redocly); their schemas stay in components.
    if let Some(webhooks) = root.remove("webhooks") {
        root.insert("x-webhooks".into(), webhooks);
    }
    if let Some(components) = root.get_mut("components").and_then(Value::as_object_mut) {
        if components.contains_key("pathItems") {
            errors.push("/components/pathItems: no 3.0 equivalent".to_owned());
        }
    }
    walk(&mut out, "", &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Rewrites every schema under `node`, found by the keys that hold schemas
/// in OpenAPI objects (`schema`, `schemas`) and in schemas themselves.
fn walk(node: &mut Value, pointer: &str, errors: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            // A Reference Object's `summary` and `description` are 3.1 only.
            if map.contains_key("$ref") {
                map.retain(|k, _| k != "summary" && k != "description");
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child = format!("{pointer}/{}", escape(&key));
                let value = map.get_mut(&key).expect("key listed above");
                match key.as_str() {
                    "schema" => schema(value, &child, errors),
                    "schemas" if value.is_object() => {
                        for (name, s) in value.as_object_mut().expect("checked") {
                            schema(s, &format!("{child}/{}", escape(name)), errors);
                        }
                    }
                    // Examples are data, not schemas: left exactly as written.
                    "example" | "examples" => {}
                    _ => walk(value, &child, errors),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{pointer}/{i}"), errors);
            }
        }
        _ => {}
    }
}

/// Rewrites one JSON Schema 2020-12 schema (and the schemas inside it) into
/// the OpenAPI 3.0 Schema Object.
fn schema(node: &mut Value, pointer: &str, errors: &mut Vec<String>) {
    let Some(map) = node.as_object_mut() else {
        if node.is_boolean() {
            errors.push(format!("{pointer}: a boolean schema has no 3.0 equivalent"));
        }
        return;
    };
    for unsupported in [
        "$defs",
        "$id",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "prefixItems",
        "contains",
        "minContains",
        "maxContains",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "dependentRequired",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "patternProperties",
        "contentSchema",
    ] {
        if map.contains_key(unsupported) {
            errors.push(format!(
                "{pointer}/{}: no 3.0 equivalent",
                escape(unsupported)
            ));
        }
    }
    map.remove("$schema");
    map.remove("$comment");
    // Annotations 3.0 does not know and that change nothing a client checks.
    map.remove("contentEncoding");
    map.remove("contentMediaType");

    // `type: [X, 'null']` -> `type: X, nullable: true`.
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let nullable = types.iter().any(|t| t == "null");
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        match rest.as_slice() {
            [one] => {
                map.insert("type".into(), one.clone());
            }
            [] => {
                errors.push(format!("{pointer}/type: only 'null' has no 3.0 equivalent"));
            }
            _ => {
                // Several types: one branch per type, nullable on the whole.
                map.remove("type");
                let branches = rest.into_iter().map(|t| json!({ "type": t })).collect();
                map.insert("anyOf".into(), Value::Array(branches));
            }
        }
        if nullable {
            map.insert("nullable".into(), json!(true));
        }
    } else if map.get("type").is_some_and(|t| t == "null") {
        errors.push(format!("{pointer}/type: only 'null' has no 3.0 equivalent"));
    }

    // `oneOf`/`anyOf` with a `{type: 'null'}` branch: the branch goes,
    // `nullable` comes; a lone remaining `$ref` becomes `allOf: [$ref]`
    // because 3.0 ignores the siblings of a `$ref`.
    for key in ["oneOf", "anyOf"] {
        let Some(Value::Array(branches)) = map.get(key).cloned() else {
            continue;
        };
        let is_null = |b: &Value| {
            b.get("type").is_some_and(|t| t == "null")
                && b.as_object().is_some_and(|o| o.len() == 1)
        };
        if !branches.iter().any(is_null) {
            continue;
        }
        let rest: Vec<Value> = branches.into_iter().filter(|b| !is_null(b)).collect();
        map.insert("nullable".into(), json!(true));
        if rest.len() == 1 && rest[0].get("$ref").is_some() {
            map.remove(key);
            map.insert("allOf".into(), Value::Array(rest));
        } else {
            map.insert(key.into(), Value::Array(rest));
        }
    }

    // A `$ref` with siblings: 3.0 ignores the siblings, so the reference
    // moves into `allOf` and the siblings stay on the wrapper.
    if map.contains_key("$ref") && map.len() > 1 {
        let reference = map.remove("$ref").expect("checked");
        let siblings_are_annotations = map
            .keys()
            .all(|k| matches!(k.as_str(), "description" | "summary"));
        if siblings_are_annotations && !map.contains_key("description") {
            // Only `summary`: 3.0 has no such keyword on a schema.
            map.clear();
            map.insert("$ref".into(), reference);
        } else {
            map.remove("summary");
            map.insert("allOf".into(), json!([{ "$ref": reference }]));
        }
    }

    if let Some(value) = map.remove("const") {
        map.insert("enum".into(), json!([value]));
    }
    if let Some(Value::Array(examples)) = map.remove("examples") {
        if let Some(first) = examples.into_iter().next() {
            map.insert("example".into(), first);
        }
    }
    for (bound, limit) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(value) = map.get(bound).filter(|v| v.is_number()).cloned() {
            map.insert(limit.into(), value);
            map.insert(bound.into(), json!(true));
        }
    }

    recurse(map, pointer, errors);
}

/// The schemas a schema holds.
fn recurse(map: &mut Map<String, Value>, pointer: &str, errors: &mut Vec<String>) {
    for key in ["items", "not", "additionalProperties"] {
        if let Some(child) = map.get_mut(key) {
            if child.is_object() {
                schema(child, &format!("{pointer}/{key}"), errors);
            }
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for (i, child) in children.iter_mut().enumerate() {
                schema(child, &format!("{pointer}/{key}/{i}"), errors);
            }
        }
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for (name, child) in properties.iter_mut() {
            schema(
                child,
                &format!("{pointer}/properties/{}", escape(name)),
                errors,
            );
        }
    }
}

/// One JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
