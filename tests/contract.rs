//! The contract between the handlers' `#[utoipa::path]` annotations (and the
//! generated body types) and `openapi/openapi.yaml`, the single source of
//! truth: the document utoipa assembles (`ApiDoc::openapi()`) and the spec
//! describe the same API, checked both ways. Neither document is rewritten.
//!
//! Both documents are reduced to comparable shapes ([`Shape`]): flat maps from
//! a field (`responses.401.headers`, `properties.ipAddress.nullable`, ...) to
//! a value or a set of names. Sets report each member one side lacks (and
//! nothing below that member); values report both sides. Compared:
//!
//! - the paths and, per path, the methods; likewise the top-level `webhooks`
//!   (by name: `securityEvent`), whose one operation utoipa's derive cannot
//!   declare, so `ApiDoc`'s `Webhooks` modifier places the
//!   `#[utoipa::path]` of `api::security::security_event_webhook` there;
//! - per operation: `operationId`, the tags, the effective security, the
//!   parameters (by `in` and `name`: `required`, `deprecated`, the schema),
//!   the request body (`required`, the media types, each one's schema), the
//!   response statuses and per status the media types with their schemas and
//!   the headers with theirs;
//! - `components.schemas`, by name: `$ref` (by target name), `type`,
//!   nullability, `format`, `pattern`, length/size/range bounds, `const`,
//!   `default`, `enum`, `required`, the property names, `additionalProperties`,
//!   the read/write/deprecated flags, and recursively every property, `items`
//!   and composition (`allOf`/`oneOf`/`anyOf`) member;
//! - `components.securitySchemes`, by name: `type`, `scheme`, `bearerFormat`,
//!   `in`, `name`, `openIdConnectUrl`, `flows`.
//!
//! Not compared: descriptions, summaries and examples; `info`, `servers` and
//! the top-level `tags` list; `components.parameters`, `.responses`,
//! `.requestBodies` and `.headers`, which the spec keeps as reusable pieces:
//! they are resolved where they are used (utoipa writes the same things
//! inline), so what they say is compared at every use.
//!
//! Normalisations, each between two spellings of the same meaning (none skips
//! a comparison):
//!
//! - security: an operation without `security` takes the document's; none at
//!   all, `[]` and `[{}]` all mean "none" (utoipa writes `security(())` as
//!   `[{}]`); otherwise the set of alternatives, each the `+`-joined scheme
//!   names (with scopes when there are any), `{}` among others being
//!   `(anonymous)`;
//! - nullability: `type: [T, "null"]` (in either order), 3.0's
//!   `nullable: true`, `null` among the `enum` values, and a two-member
//!   `oneOf`/`anyOf` one of whose members is `{type: "null"}` (how utoipa
//!   writes `Option<Ref>`) all become `type: T` plus `nullable: true`;
//! - a one-member `allOf` is its member (how utoipa can attach a description
//!   to a `$ref`);
//! - defaults are the same as absence: `required` of a parameter, body or
//!   header defaults to false, `additionalProperties: true`, and `false` for
//!   `uniqueItems`, `deprecated`, `readOnly`, `writeOnly`; an absent list
//!   (`tags`, `parameters`, `required`, `properties`, ...) is the empty set;
//! - HTTP header names and the HTTP auth scheme name compare without case
//!   (RFC 9110 and RFC 7235 make them case-insensitive), and so do media
//!   types and their parameter names, spaces around `;` and `=` aside
//!   (`text/plain;version=0.0.4` is `text/plain; version=0.0.4`, but
//!   `text/plain` is not: the parameter is part of what is compared);
//! - a number compares by value (`1` and `1.0` are the same).
//!
//! Where utoipa's side comes from: each handler's `#[utoipa::path]`, the
//! shared pieces of `src/api/common.rs` that handlers list (the 400, 401,
//! 429, 503 and device 404 responses with their headers, the path ids), and
//! `ApiDoc`'s default `security` and modifiers (the `bearerAuth` scheme, the
//! `X-Request-Id` parameter and response header on every operation). Each is
//! declared once, as the spec declares it once under `components`; nothing
//! here is relaxed for it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use utoipa::OpenApi;

/// The fixed operation fields of a path item (utoipa 6 also knows `query`,
/// and writes any other method under `additionalOperations`).
const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace", "query",
];

/// Schema keywords whose value is compared as it is.
const VALUE_KEYWORDS: [&str; 17] = [
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "const",
    "default",
    "contentEncoding",
    "contentMediaType",
];

/// Schema keywords that default to false: only `true` is recorded.
const FLAG_KEYWORDS: [&str; 4] = ["uniqueItems", "deprecated", "readOnly", "writeOnly"];

/// Schema keywords holding one subschema.
const SUBSCHEMA_KEYWORDS: [&str; 4] = ["items", "not", "contains", "propertyNames"];

/// Schema keywords holding a list of subschemas.
const SUBSCHEMA_LIST_KEYWORDS: [&str; 4] = ["allOf", "oneOf", "anyOf", "prefixItems"];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn utoipa_doc() -> Value {
    serde_json::to_value(flashback_devices::api::ApiDoc::openapi())
        .expect("the utoipa document serialises")
}

// ----- the comparable shape ---------------------------------------------------

/// A field of a shape: its path of names, e.g. `["responses", "200", "content"]`.
type Key = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// Something that exists (a request body); what it holds is compared below it.
    Present,
    /// A value compared as a whole.
    Value(Value),
    /// Names compared member by member; an absent set is an empty one.
    Set(BTreeSet<String>),
}

#[derive(Debug, Default)]
struct Shape(BTreeMap<Key, Entry>);

impl Shape {
    fn value(&mut self, key: Key, value: &Value) {
        self.0.insert(key, Entry::Value(canon(value)));
    }

    fn set(&mut self, key: Key, members: impl IntoIterator<Item = String>) {
        self.0
            .insert(key, Entry::Set(members.into_iter().collect()));
    }

    fn present(&mut self, key: Key) {
        self.0.insert(key, Entry::Present);
    }
}

fn key(name: &str) -> Key {
    vec![name.to_owned()]
}

fn child(base: &[String], name: &str) -> Key {
    let mut key = base.to_vec();
    key.push(name.to_owned());
    key
}

/// `responses.200.content[application/json].schema.$ref`
fn show(key: &[String]) -> String {
    let mut out = String::new();
    for (i, name) in key.iter().enumerate() {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_$-".contains(c));
        if !plain {
            out.push_str(&format!("[{name}]"));
        } else {
            if i > 0 {
                out.push('.');
            }
            out.push_str(name);
        }
    }
    out
}

fn show_entry(entry: &Entry) -> String {
    match entry {
        Entry::Present => "present".to_owned(),
        Entry::Value(value) => value.to_string(),
        Entry::Set(members) => format!("{members:?}"),
    }
}

/// Numbers by value: `1.0` becomes `1`.
fn canon(value: &Value) -> Value {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canon).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canon(v))).collect())
        }
        _ => value.clone(),
    }
}

/// Every difference between two shapes, each line starting with `label`.
fn diff(label: &str, spec: &Shape, utoipa: &Shape, out: &mut Vec<String>) {
    let keys: BTreeSet<&Key> = spec.0.keys().chain(utoipa.0.keys()).collect();
    // Fields below something only one side has are not reported again.
    let mut pruned: Vec<Key> = Vec::new();
    let as_set = |entry: Option<&Entry>| match entry {
        Some(Entry::Set(members)) => Some(members.clone()),
        None => Some(BTreeSet::new()),
        Some(_) => None,
    };
    for key in keys {
        if pruned.iter().any(|p| key.starts_with(p)) {
            continue;
        }
        let at = show(key);
        let (s, u) = (spec.0.get(key), utoipa.0.get(key));
        if let (Some(s), Some(u)) = (as_set(s), as_set(u)) {
            for member in s.difference(&u) {
                out.push(format!("{label}: {at}: {member} in spec, not in utoipa"));
                pruned.push(child(key, member));
            }
            for member in u.difference(&s) {
                out.push(format!("{label}: {at}: {member} in utoipa, not in spec"));
                pruned.push(child(key, member));
            }
            continue;
        }
        match (s, u) {
            (Some(s), Some(u)) if s == u => {}
            (Some(s), Some(u)) => out.push(format!(
                "{label}: {at}: spec {}, utoipa {}",
                show_entry(s),
                show_entry(u)
            )),
            (Some(only), None) | (None, Some(only)) => {
                let (has, lacks) = if s.is_some() {
                    ("spec", "utoipa")
                } else {
                    ("utoipa", "spec")
                };
                out.push(match only {
                    Entry::Present => format!("{label}: {at}: in {has}, not in {lacks}"),
                    _ => format!(
                        "{label}: {at}: {} in {has}, absent in {lacks}",
                        show_entry(only)
                    ),
                });
                pruned.push(key.clone());
            }
            (None, None) => unreachable!("the key comes from one of the shapes"),
        }
    }
}

// ----- reading a document -----------------------------------------------------

struct Doc<'a> {
    side: &'static str,
    root: &'a Value,
}

impl<'a> Doc<'a> {
    /// Follows local `$ref`s (`#/components/parameters/X`, `#/components/responses/X`, ...).
    fn resolve(&self, node: &'a Value, at: &str, out: &mut Vec<String>) -> Option<&'a Value> {
        let mut node = node;
        for _ in 0..16 {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                return Some(node);
            };
            match reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer))
            {
                Some(target) => node = target,
                None => {
                    out.push(format!(
                        "{at}: $ref {reference:?} does not resolve in the {} document",
                        self.side
                    ));
                    return None;
                }
            }
        }
        out.push(format!(
            "{at}: $ref chain loops in the {} document",
            self.side
        ));
        None
    }

    /// path (or webhook name) → (path item, METHOD → operation), of the
    /// `paths` or the `webhooks` section.
    fn operations(
        &self,
        section: &str,
    ) -> BTreeMap<&'a str, (&'a Value, BTreeMap<String, &'a Value>)> {
        let mut paths = BTreeMap::new();
        for (path, item) in self
            .root
            .get(section)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let extra = item.get("additionalOperations").and_then(Value::as_object);
            let operations = METHODS
                .iter()
                .filter_map(|m| item.get(*m).map(|op| (m.to_uppercase(), op)))
                .chain(
                    extra
                        .into_iter()
                        .flatten()
                        .map(|(m, op)| (m.to_uppercase(), op)),
                )
                .collect();
            paths.insert(path.as_str(), (item, operations));
        }
        paths
    }

    fn components(&self, kind: &str) -> BTreeMap<&'a str, &'a Value> {
        self.root
            .get("components")
            .and_then(|c| c.get(kind))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str(), value))
            .collect()
    }
}

fn strings(list: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

fn flag(node: &Value, name: &str) -> bool {
    node.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn operation_id(op: &Value) -> &str {
    op.get("operationId")
        .and_then(Value::as_str)
        .unwrap_or("(no operationId)")
}

/// `"none"`, or the sorted alternatives, e.g. `["bearerAuth"]`.
fn security(requirements: Option<&Value>) -> Value {
    let Some(requirements) = requirements else {
        return json!("none");
    };
    let Some(list) = requirements.as_array() else {
        return requirements.clone();
    };
    let alternatives: BTreeSet<String> = list
        .iter()
        .map(|requirement| match requirement.as_object() {
            Some(schemes) if schemes.is_empty() => "(anonymous)".to_owned(),
            Some(schemes) => schemes
                .iter()
                .map(|(name, scopes)| {
                    let scopes: Vec<String> = strings(Some(scopes)).collect();
                    if scopes.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}[{}]", scopes.join(","))
                    }
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("+"),
            None => requirement.to_string(),
        })
        .collect();
    if alternatives.iter().all(|a| a == "(anonymous)") {
        json!("none")
    } else {
        json!(alternatives)
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.as_object().is_some_and(|o| {
        o.len() == 1
            && (o.get("type") == Some(&json!("null")) || o.get("type") == Some(&json!(["null"])))
    })
}

/// Unwraps one-member `allOf`s and `{T, null}` unions; says whether a union
/// with null was unwrapped.
fn normalise_schema(schema: &Value) -> (Value, bool) {
    let Some(object) = schema.as_object() else {
        return (schema.clone(), false);
    };
    let mut object = object.clone();
    let mut nullable = false;
    'unwrap: loop {
        if let Some(Value::Array(members)) = object.get("allOf") {
            if let [Value::Object(member)] = members.as_slice() {
                let member = member.clone();
                object.shift_remove("allOf");
                for (k, v) in member {
                    object.entry(k).or_insert(v);
                }
                continue 'unwrap;
            }
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(Value::Array(members)) = object.get(keyword) {
                if members.len() == 2 {
                    if let Some(null_at) = members.iter().position(is_null_schema) {
                        let other = members[1 - null_at].clone();
                        object.shift_remove(keyword);
                        nullable = true;
                        if let Value::Object(other) = other {
                            for (k, v) in other {
                                object.entry(k).or_insert(v);
                            }
                        }
                        continue 'unwrap;
                    }
                }
            }
        }
        break;
    }
    (Value::Object(object), nullable)
}

fn schema_name(reference: &str) -> &str {
    reference
        .strip_prefix("#/components/schemas/")
        .unwrap_or(reference)
}

/// Records what a schema says under `base`; `$ref`s are compared by name,
/// never followed.
fn schema_shape(schema: &Value, base: &[String], shape: &mut Shape) {
    let (schema, null_union) = normalise_schema(schema);
    let Some(object) = schema.as_object() else {
        // A boolean schema.
        shape.value(base.to_vec(), &schema);
        return;
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        shape.value(child(base, "$ref"), &json!(schema_name(reference)));
    }

    let mut types: BTreeSet<String> = match object.get("type") {
        Some(Value::String(kind)) => BTreeSet::from([kind.clone()]),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
            .collect(),
        Some(other) => BTreeSet::from([other.to_string()]),
        None => BTreeSet::new(),
    };
    let mut nullable = null_union | types.remove("null") | flag(&schema, "nullable");
    match types.len() {
        0 => {}
        1 => shape.value(child(base, "type"), &json!(types.first())),
        _ => shape.value(child(base, "type"), &json!(types)),
    }

    if let Some(values) = object.get("enum") {
        let values: Vec<&Value> = values.as_array().into_iter().flatten().collect();
        nullable |= values.iter().any(|v| v.is_null());
        shape.set(
            child(base, "enum"),
            values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| canon(v).to_string()),
        );
    }
    if nullable {
        shape.value(child(base, "nullable"), &json!(true));
    }
    for keyword in VALUE_KEYWORDS {
        if let Some(value) = object.get(keyword) {
            shape.value(child(base, keyword), value);
        }
    }
    for keyword in FLAG_KEYWORDS {
        if flag(&schema, keyword) {
            shape.value(child(base, keyword), &json!(true));
        }
    }

    shape.set(child(base, "required"), strings(object.get("required")));
    let properties = object.get("properties").and_then(Value::as_object);
    shape.set(
        child(base, "properties"),
        properties
            .into_iter()
            .flatten()
            .map(|(name, _)| name.clone()),
    );
    for (name, property) in properties.into_iter().flatten() {
        schema_shape(property, &child(&child(base, "properties"), name), shape);
    }
    match object.get("additionalProperties") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => shape.value(child(base, "additionalProperties"), &json!(false)),
        Some(other) => schema_shape(other, &child(base, "additionalProperties"), shape),
    }
    for keyword in SUBSCHEMA_KEYWORDS {
        if let Some(subschema) = object.get(keyword) {
            schema_shape(subschema, &child(base, keyword), shape);
        }
    }
    for keyword in SUBSCHEMA_LIST_KEYWORDS {
        if let Some(members) = object.get(keyword).and_then(Value::as_array) {
            shape.value(
                child(base, keyword),
                &json!(format!("{} member(s)", members.len())),
            );
            for (i, member) in members.iter().enumerate() {
                schema_shape(member, &child(&child(base, keyword), &i.to_string()), shape);
            }
        }
    }
}

/// `Text/Plain ;version=0.0.4` → `text/plain; version=0.0.4`: the type and
/// parameter names without case (RFC 9110), spaces around `;` and `=` dropped.
fn media_type(name: &str) -> String {
    let mut parts = name.split(';').map(str::trim);
    let mut out = parts.next().unwrap_or_default().to_ascii_lowercase();
    for parameter in parts.filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        out.push_str(&format!(
            "; {}={}",
            key.trim().to_ascii_lowercase(),
            value.trim()
        ));
    }
    out
}

/// `content`: the media types (with their parameters), and each one's schema.
fn content_shape(content: Option<&Value>, base: &[String], shape: &mut Shape) {
    let base = child(base, "content");
    let media = content.and_then(Value::as_object);
    shape.set(
        base.clone(),
        media.into_iter().flatten().map(|(t, _)| media_type(t)),
    );
    for (name, body) in media.into_iter().flatten() {
        if let Some(schema) = body.get("schema") {
            schema_shape(
                schema,
                &child(&child(&base, &media_type(name)), "schema"),
                shape,
            );
        }
    }
}

fn operation_shape(
    doc: &Doc,
    item: &Value,
    op: &Value,
    label: &str,
    out: &mut Vec<String>,
) -> Shape {
    let mut shape = Shape::default();
    if let Some(id) = op.get("operationId") {
        shape.value(key("operationId"), id);
    }
    shape.set(key("tags"), strings(op.get("tags")));
    shape.value(
        key("security"),
        &security(op.get("security").or_else(|| doc.root.get("security"))),
    );

    // Path-item parameters apply too; the operation's override them.
    let mut parameters: BTreeMap<String, &Value> = BTreeMap::new();
    for list in [item.get("parameters"), op.get("parameters")] {
        for (i, parameter) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{label}: parameters[{i}]");
            let Some(parameter) = doc.resolve(parameter, &at, out) else {
                continue;
            };
            match (
                parameter.get("in").and_then(Value::as_str),
                parameter.get("name").and_then(Value::as_str),
            ) {
                (Some(place), Some(name)) => {
                    parameters.insert(format!("{place}:{name}"), parameter);
                }
                _ => out.push(format!(
                    "{at}: no `in` or `name` in the {} document",
                    doc.side
                )),
            }
        }
    }
    shape.set(key("parameters"), parameters.keys().cloned());
    for (id, parameter) in &parameters {
        let base = vec!["parameters".to_owned(), id.clone()];
        shape.value(
            child(&base, "required"),
            &json!(flag(parameter, "required")),
        );
        if flag(parameter, "deprecated") {
            shape.value(child(&base, "deprecated"), &json!(true));
        }
        if let Some(schema) = parameter.get("schema") {
            schema_shape(schema, &child(&base, "schema"), &mut shape);
        }
        if parameter.get("content").is_some() {
            content_shape(parameter.get("content"), &base, &mut shape);
        }
    }

    if let Some(body) = op.get("requestBody") {
        if let Some(body) = doc.resolve(body, &format!("{label}: requestBody"), out) {
            let base = key("requestBody");
            shape.present(base.clone());
            shape.value(child(&base, "required"), &json!(flag(body, "required")));
            content_shape(body.get("content"), &base, &mut shape);
        }
    }

    let responses = op.get("responses").and_then(Value::as_object);
    shape.set(
        key("responses"),
        responses.into_iter().flatten().map(|(s, _)| s.clone()),
    );
    for (status, response) in responses.into_iter().flatten() {
        let base = vec!["responses".to_owned(), status.clone()];
        let Some(response) = doc.resolve(response, &format!("{label}: responses.{status}"), out)
        else {
            continue;
        };
        content_shape(response.get("content"), &base, &mut shape);
        let headers_key = child(&base, "headers");
        let headers: BTreeMap<String, &Value> = response
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, header)| (name.to_ascii_lowercase(), header))
            .collect();
        shape.set(headers_key.clone(), headers.keys().cloned());
        for (name, header) in headers {
            let at = format!("{label}: {}", show(&child(&headers_key, &name)));
            let Some(header) = doc.resolve(header, &at, out) else {
                continue;
            };
            let base = child(&headers_key, &name);
            shape.value(child(&base, "required"), &json!(flag(header, "required")));
            if let Some(schema) = header.get("schema") {
                schema_shape(schema, &child(&base, "schema"), &mut shape);
            }
        }
    }
    shape
}

fn security_scheme_shape(scheme: &Value) -> Shape {
    let mut shape = Shape::default();
    for keyword in [
        "type",
        "in",
        "name",
        "bearerFormat",
        "openIdConnectUrl",
        "flows",
    ] {
        if let Some(value) = scheme.get(keyword) {
            shape.value(key(keyword), value);
        }
    }
    if let Some(name) = scheme.get("scheme").and_then(Value::as_str) {
        shape.value(key("scheme"), &json!(name.to_ascii_lowercase()));
    }
    shape
}

// ----- the comparison -----------------------------------------------------------

/// Every difference between the spec and the utoipa document, one readable
/// line each; empty when they describe the same API.
fn compare(spec: &Value, utoipa: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let spec = Doc {
        side: "spec",
        root: spec,
    };
    let utoipa = Doc {
        side: "utoipa",
        root: utoipa,
    };
    compare_paths(&spec, &utoipa, "paths", &mut out);
    compare_paths(&spec, &utoipa, "webhooks", &mut out);
    compare_components(&spec, &utoipa, &mut out);
    out
}

/// The operations of `section` (`paths`, or `webhooks`: the requests the
/// server sends, keyed by name), compared alike.
fn compare_paths(spec: &Doc, utoipa: &Doc, section: &str, out: &mut Vec<String>) {
    let (spec_paths, utoipa_paths) = (spec.operations(section), utoipa.operations(section));
    let paths: BTreeSet<&str> = spec_paths
        .keys()
        .chain(utoipa_paths.keys())
        .copied()
        .collect();
    for path in paths {
        match (spec_paths.get(path), utoipa_paths.get(path)) {
            (Some((spec_item, spec_ops)), Some((utoipa_item, utoipa_ops))) => {
                let methods: BTreeSet<&String> = spec_ops.keys().chain(utoipa_ops.keys()).collect();
                for method in methods {
                    match (spec_ops.get(method), utoipa_ops.get(method)) {
                        (Some(s), Some(u)) => {
                            let id = s
                                .get("operationId")
                                .map_or(operation_id(u), |_| operation_id(s));
                            let label = format!("{id} ({method} {path})");
                            let spec_shape = operation_shape(spec, spec_item, s, &label, out);
                            let utoipa_shape = operation_shape(utoipa, utoipa_item, u, &label, out);
                            diff(&label, &spec_shape, &utoipa_shape, out);
                        }
                        (Some(op), None) => out.push(format!(
                            "{} ({method} {path}): operation in spec, not in utoipa",
                            operation_id(op)
                        )),
                        (None, Some(op)) => out.push(format!(
                            "{} ({method} {path}): operation in utoipa, not in spec",
                            operation_id(op)
                        )),
                        (None, None) => unreachable!(),
                    }
                }
            }
            (Some((_, ops)), None) | (None, Some((_, ops))) => {
                let (has, lacks) = if spec_paths.contains_key(path) {
                    ("spec", "utoipa")
                } else {
                    ("utoipa", "spec")
                };
                let listed: Vec<String> = ops
                    .iter()
                    .map(|(method, op)| format!("{method} {}", operation_id(op)))
                    .collect();
                out.push(format!(
                    "{section}: {path} in {has}, not in {lacks} ({})",
                    listed.join(", ")
                ));
            }
            (None, None) => unreachable!(),
        }
    }
}

fn compare_components(spec: &Doc, utoipa: &Doc, out: &mut Vec<String>) {
    for (kind, what) in [("schemas", "schema"), ("securitySchemes", "securityScheme")] {
        let (spec_items, utoipa_items) = (spec.components(kind), utoipa.components(kind));
        let names: BTreeSet<&str> = spec_items
            .keys()
            .chain(utoipa_items.keys())
            .copied()
            .collect();
        for name in names {
            let label = format!("{what} {name}");
            match (spec_items.get(name), utoipa_items.get(name)) {
                (Some(s), Some(u)) => {
                    let (mut spec_shape, mut utoipa_shape) = (Shape::default(), Shape::default());
                    if kind == "schemas" {
                        schema_shape(s, &[], &mut spec_shape);
                        schema_shape(u, &[], &mut utoipa_shape);
                    } else if let (Some(s), Some(u)) =
                        (spec.resolve(s, &label, out), utoipa.resolve(u, &label, out))
                    {
                        spec_shape = security_scheme_shape(s);
                        utoipa_shape = security_scheme_shape(u);
                    }
                    diff(&label, &spec_shape, &utoipa_shape, out);
                }
                (Some(_), None) => {
                    out.push(format!("components.{kind}: {name} in spec, not in utoipa"))
                }
                (None, Some(_)) => {
                    out.push(format!("components.{kind}: {name} in utoipa, not in spec"))
                }
                (None, None) => unreachable!(),
            }
        }
    }
}

// ----- the tests ------------------------------------------------------------------

#[test]
fn the_utoipa_document_and_the_spec_describe_the_same_api() {
    let (spec, utoipa) = (spec(), utoipa_doc());

    // The comparison must not pass for want of anything to compare.
    let spec_doc = Doc {
        side: "spec",
        root: &spec,
    };
    let operations: usize = spec_doc
        .operations("paths")
        .values()
        .map(|(_, ops)| ops.len())
        .sum();
    assert!(operations > 0, "the spec has no operations");
    assert!(
        spec_doc
            .operations("webhooks")
            .contains_key("securityEvent"),
        "the spec has no webhooks.securityEvent"
    );
    assert!(
        !spec_doc.components("schemas").is_empty(),
        "the spec has no component schemas"
    );
    let bearer = utoipa
        .pointer("/components/securitySchemes/bearerAuth")
        .expect("utoipa's document has components.securitySchemes.bearerAuth");
    assert_eq!(bearer.get("type"), Some(&json!("http")), "bearerAuth type");
    assert_eq!(
        bearer.get("scheme"),
        Some(&json!("bearer")),
        "bearerAuth scheme"
    );
    assert_eq!(
        bearer.get("bearerFormat"),
        Some(&json!("JWT")),
        "bearerAuth bearerFormat"
    );

    let differences = compare(&spec, &utoipa);
    assert!(
        differences.is_empty(),
        "{} difference(s) between openapi/openapi.yaml and ApiDoc::openapi() \
         (fix the #[utoipa::path] annotations, ApiDoc or the generator, not the spec):\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}

/// A copy of utoipa's document after `mutate`, compared with the spec: the
/// differences that the real document does not have.
fn differences_after(mutate: impl FnOnce(&mut Value)) -> Vec<String> {
    let (spec, mut utoipa) = (spec(), utoipa_doc());
    let before = compare(&spec, &utoipa);
    mutate(&mut utoipa);
    compare(&spec, &utoipa)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect()
}

fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut Value {
    doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("utoipa's document has no {pointer}"))
}

fn remove(doc: &mut Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer below the root");
    let name = name.replace("~1", "/").replace("~0", "~");
    at(doc, parent)
        .as_object_mut()
        .and_then(|object| object.shift_remove(&name))
        .unwrap_or_else(|| panic!("utoipa's document has no {pointer}"))
}

#[track_caller]
fn assert_reported(differences: &[String], expected: &str) {
    assert!(
        differences.iter().any(|d| d == expected),
        "expected the difference\n  {expected}\ngot:\n  {}",
        differences.join("\n  ")
    );
}

const UNTRUST: &str = "/paths/~1devices~1{id}~1untrust/post";
const METRICS_200: &str = "/paths/~1metrics/get/responses/200";
const GET_DEVICE: &str = "/paths/~1devices~1{id}/get";

#[test]
fn a_missing_response_status_is_reported() {
    let differences = differences_after(|doc| {
        remove(doc, &format!("{UNTRUST}/responses/404"));
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "untrustDevice (POST /devices/{id}/untrust): responses: 404 in spec, not in utoipa",
    );
}

#[test]
fn an_extra_response_status_is_reported() {
    let differences = differences_after(|doc| {
        let conflict = at(doc, &format!("{UNTRUST}/responses/404")).clone();
        at(doc, &format!("{UNTRUST}/responses"))["409"] = conflict;
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "untrustDevice (POST /devices/{id}/untrust): responses: 409 in utoipa, not in spec",
    );
}

#[test]
fn a_changed_parameter_requirement_is_reported() {
    let differences = differences_after(|doc| {
        *at(doc, &format!("{GET_DEVICE}/parameters/0/required")) = json!(false);
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "getDevice (GET /devices/{id}): parameters[path:id].required: spec true, utoipa false",
    );
}

#[test]
fn a_changed_parameter_schema_is_reported() {
    let differences = differences_after(|doc| {
        *at(doc, &format!("{GET_DEVICE}/parameters/0/schema/pattern")) = json!("^[0-9]+$");
        remove(doc, &format!("{GET_DEVICE}/parameters/0/schema/maxLength"));
    });
    assert_reported(
        &differences,
        r#"getDevice (GET /devices/{id}): parameters[path:id].schema.pattern: spec "^[A-Za-z0-9_-]+$", utoipa "^[0-9]+$""#,
    );
    assert_reported(
        &differences,
        "getDevice (GET /devices/{id}): parameters[path:id].schema.maxLength: 64 in spec, absent in utoipa",
    );
}

#[test]
fn an_extra_path_is_reported() {
    let differences = differences_after(|doc| {
        at(doc, "/paths")["/devices/export"] = json!({
            "get": {"operationId": "exportDevices", "responses": {}}
        });
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "paths: /devices/export in utoipa, not in spec (GET exportDevices)",
    );
}

#[test]
fn an_extra_method_is_reported() {
    let differences = differences_after(|doc| {
        at(doc, "/paths/~1devices~1{id}")["put"] = json!({"operationId": "replaceDevice"});
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "replaceDevice (PUT /devices/{id}): operation in utoipa, not in spec",
    );
}

#[test]
fn a_dropped_schema_property_is_reported() {
    let differences = differences_after(|doc| {
        remove(doc, "/components/schemas/Device/properties/city");
    });
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_reported(
        &differences,
        "schema Device: properties: city in spec, not in utoipa",
    );
}

#[test]
fn schema_field_changes_are_reported() {
    let differences = differences_after(|doc| {
        let device = at(doc, "/components/schemas/Device");
        device["properties"]["ipAddress"]["type"] = json!("string");
        device["properties"]["lastSeen"]
            .as_object_mut()
            .unwrap()
            .shift_remove("format");
        device["properties"]["trustLevel"]["$ref"] = json!("#/components/schemas/DeviceType");
        device["required"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r != "os");
        let details = at(
            doc,
            "/components/schemas/DeviceDetails/properties/sessions/items",
        );
        details["$ref"] = json!("#/components/schemas/Session");
        let request = at(doc, "/components/schemas/TrustDeviceRequest");
        request
            .as_object_mut()
            .unwrap()
            .shift_remove("additionalProperties");
        request["properties"]["fingerprint"]["minLength"] = json!(2);
        let kinds = at(doc, "/components/schemas/DeviceType/enum");
        kinds.as_array_mut().unwrap().pop();
    });
    for expected in [
        "schema Device: properties.ipAddress.nullable: true in spec, absent in utoipa",
        r#"schema Device: properties.lastSeen.format: "date-time" in spec, absent in utoipa"#,
        r#"schema Device: properties.trustLevel.$ref: spec "TrustLevel", utoipa "DeviceType""#,
        "schema Device: required: os in spec, not in utoipa",
        r#"schema DeviceDetails: properties.sessions.items.$ref: spec "DeviceSession", utoipa "Session""#,
        "schema TrustDeviceRequest: additionalProperties: false in spec, absent in utoipa",
        "schema TrustDeviceRequest: properties.fingerprint.minLength: spec 1, utoipa 2",
        r#"schema DeviceType: enum: "TABLET" in spec, not in utoipa"#,
    ] {
        assert_reported(&differences, expected);
    }
    assert_eq!(differences.len(), 8, "{differences:#?}");
}

#[test]
fn extra_and_missing_components_are_reported() {
    let differences = differences_after(|doc| {
        at(doc, "/components/schemas")["Extra"] = json!({"type": "object"});
        remove(doc, "/components/schemas/HealthResponse");
        remove(doc, "/components/securitySchemes/bearerAuth/bearerFormat");
    });
    for expected in [
        "components.schemas: Extra in utoipa, not in spec",
        "components.schemas: HealthResponse in spec, not in utoipa",
        r#"securityScheme bearerAuth: bearerFormat: "JWT" in spec, absent in utoipa"#,
    ] {
        assert_reported(&differences, expected);
    }
    assert_eq!(differences.len(), 3, "{differences:#?}");
}

#[test]
fn operation_field_changes_are_reported() {
    let differences = differences_after(|doc| {
        *at(doc, "/paths/~1healthz/get/security") = json!([{"bearerAuth": []}]);
        *at(doc, "/paths/~1sessions/get/tags") = json!(["devices"]);
        *at(doc, "/paths/~1sessions/get/operationId") = json!("getSessions");
        let schema = "/paths/~1sessions/get/responses/200/content/application~1json/schema/$ref";
        *at(doc, schema) = json!("#/components/schemas/MessageResponse");
        remove(doc, "/paths/~1devices~1trust/post/requestBody");
        // Inherits the document's bearerAuth in utoipa's document; opting out is a change.
        *at(doc, "/paths/~1sessions~1revoke-all/post")
            .as_object_mut()
            .unwrap()
            .entry("security")
            .or_insert(json!(null)) = json!([{}]);
        remove(
            doc,
            "/paths/~1devices/get/responses/401/headers/WWW-Authenticate",
        );
        let retry = "/paths/~1devices/get/responses/429/headers/Retry-After/schema/minimum";
        *at(doc, retry) = json!(0);
    });
    for expected in [
        r#"getHealth (GET /healthz): security: spec "none", utoipa ["bearerAuth"]"#,
        "listSessions (GET /sessions): tags: devices in utoipa, not in spec",
        "listSessions (GET /sessions): tags: sessions in spec, not in utoipa",
        r#"listSessions (GET /sessions): operationId: spec "listSessions", utoipa "getSessions""#,
        r#"listSessions (GET /sessions): responses.200.content[application/json].schema.$ref: spec "SessionListResponse", utoipa "MessageResponse""#,
        "trustDevice (POST /devices/trust): requestBody: in spec, not in utoipa",
        r#"revokeAllSessions (POST /sessions/revoke-all): security: spec ["bearerAuth"], utoipa "none""#,
        "listDevices (GET /devices): responses.401.headers: www-authenticate in spec, not in utoipa",
        "listDevices (GET /devices): responses.429.headers.retry-after.schema.minimum: spec 1, utoipa 0",
    ] {
        assert_reported(&differences, expected);
    }
    assert_eq!(differences.len(), 9, "{differences:#?}");
}

#[test]
fn a_changed_text_media_type_or_schema_is_reported() {
    let differences = differences_after(|doc| {
        let content = at(doc, &format!("{METRICS_200}/content"));
        let media = content
            .as_object_mut()
            .unwrap()
            .shift_remove("text/plain; version=0.0.4")
            .expect("utoipa documents the metrics' text body");
        content["text/plain"] = media;
    });
    for expected in [
        "getMetrics (GET /metrics): responses.200.content: text/plain in utoipa, not in spec",
        "getMetrics (GET /metrics): responses.200.content: text/plain; version=0.0.4 in spec, not in utoipa",
    ] {
        assert_reported(&differences, expected);
    }
    assert_eq!(differences.len(), 2, "{differences:#?}");

    let differences = differences_after(|doc| {
        *at(
            doc,
            &format!("{METRICS_200}/content/text~1plain; version=0.0.4/schema"),
        ) = json!({"type": "object"});
    });
    assert_reported(
        &differences,
        r#"getMetrics (GET /metrics): responses.200.content[text/plain; version=0.0.4].schema.type: spec "string", utoipa "object""#,
    );
}

/// Spellings the normalisation treats as one are not reported, and spellings
/// it must tell apart are.
#[test]
fn equivalent_spellings_are_not_differences() {
    let differences = differences_after(|doc| {
        // The document's default `security` written out on every operation
        // that inherits it, as the spec does, is the same thing.
        let default = remove(doc, "/security");
        for item in at(doc, "/paths").as_object_mut().unwrap().values_mut() {
            for operation in item.as_object_mut().unwrap().values_mut() {
                if let Some(operation) = operation.as_object_mut() {
                    operation
                        .entry("security")
                        .or_insert_with(|| default.clone());
                }
            }
        }
        // "No auth": [{}] (utoipa's), [] and a missing `security` alike.
        *at(doc, "/paths/~1healthz/get/security") = json!([]);
        remove(doc, "/paths/~1readyz/get/security");
        let properties = at(doc, "/components/schemas/Device/properties");
        // [T, "null"] in the other order, and 3.0's `nullable`.
        properties["ipAddress"]["type"] = json!(["null", "string"]);
        properties["city"] = json!({"type": "string", "nullable": true});
        // A $ref in a one-member allOf, a nullable one as a union with null.
        properties["deviceType"] = json!({"allOf": [{"$ref": "#/components/schemas/DeviceType"}]});
        properties["trustExpiresAt"] =
            json!({"oneOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]});
        // Header names are case-insensitive; an integral float is the integer.
        let headers = at(doc, &format!("{GET_DEVICE}/responses/429/headers"));
        let retry_after = headers.as_object_mut().unwrap().shift_remove("Retry-After");
        headers["retry-after"] = retry_after.expect("utoipa documents Retry-After");
        *at(doc, &format!("{GET_DEVICE}/parameters/0/schema/maxLength")) = json!(64.0);
        // Media types and their parameter names are case-insensitive.
        let content = at(doc, &format!("{METRICS_200}/content"));
        let media = content
            .as_object_mut()
            .unwrap()
            .shift_remove("text/plain; version=0.0.4");
        content["Text/Plain;Version=0.0.4"] = media.expect("utoipa documents the metrics");
    });
    assert!(differences.is_empty(), "{differences:#?}");

    // Optional auth ([{}, {bearerAuth: []}]) is not "none".
    let differences = differences_after(|doc| {
        *at(doc, "/paths/~1healthz/get/security") = json!([{}, {"bearerAuth": []}]);
    });
    assert_reported(
        &differences,
        r#"getHealth (GET /healthz): security: spec "none", utoipa ["(anonymous)","bearerAuth"]"#,
    );
}

#[test]
fn webhook_differences_are_reported() {
    const WEBHOOK: &str = "/webhooks/securityEvent/post";
    let differences = differences_after(|doc| {
        at(doc, &format!("{WEBHOOK}/parameters"))
            .as_array_mut()
            .unwrap()
            .remove(2);
    });
    assert_reported(
        &differences,
        "securityEventWebhook (POST securityEvent): parameters: header:webhook-signature in spec, not in utoipa",
    );
    let differences = differences_after(|doc| {
        remove(
            doc,
            "/components/schemas/SecurityEventWebhookData/allOf/1/properties/userId",
        );
    });
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("schema SecurityEventWebhookData") && d.contains("userId")),
        "{differences:#?}"
    );
    let differences = differences_after(|doc| {
        remove(doc, "/webhooks/securityEvent");
    });
    assert_reported(
        &differences,
        "webhooks: securityEvent in spec, not in utoipa (POST securityEventWebhook)",
    );
}
