//! The rules `openapi/openapi.yaml` must follow, checked when the crate is built
//! (`build.rs`) and by `tests/spec_rules.rs`.
//!
//! Both include this file with `#[path]`; it is not part of the library's module
//! tree, so it depends only on `std`, `serde_json` and `jsonschema`.
//!
//! Every check reads the document defensively: a node that is missing or of the
//! wrong type is either reported as a violation or skipped, never unwrapped.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};

const OPENAPI_VERSION: &str = "openapi-version";
const UNRESOLVED_REF: &str = "unresolved-ref";
const PATH_PARAMS: &str = "path-params";
const OPERATION_ID: &str = "operation-id";
const OPERATION_TAG: &str = "operation-tag";
const OPERATION_SUMMARY: &str = "operation-summary";
const SECURED_401: &str = "secured-401";
const RESPONSE_JSON_SCHEMA: &str = "response-json-schema";
const RESPONSE_MEDIA_TYPE: &str = "response-media-type";
const INLINE_OBJECT_SCHEMA: &str = "inline-object-schema";
const EXAMPLE_INVALID: &str = "example-invalid";
const WEBHOOK_SHAPE: &str = "webhook-shape";

/// The keys of a Path Item Object that hold operations.
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];
const JSON_MEDIA_TYPE: &str = "application/json";
/// The one other kind of response body: plain text (e.g. the Prometheus
/// exposition format, `text/plain; version=0.0.4`), whose schema is a string.
const TEXT_MEDIA_TYPE: &str = "text/plain";
const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
/// Longest chain of Reference Objects followed before giving up (a cycle).
const MAX_REF_HOPS: usize = 16;

/// One broken rule, located by a JSON pointer into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecViolation {
    /// RFC 6901 JSON pointer, e.g. "/paths/~1devices~1{id}/get/responses/404".
    pub pointer: String,
    /// The id of the broken rule, e.g. "secured-401".
    pub rule: &'static str,
    /// Human explanation.
    pub message: String,
}

impl fmt::Display for SpecViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: [{}] {}", self.pointer, self.rule, self.message)
    }
}

/// Checks every rule; returns all violations (empty = valid), sorted by pointer.
/// `spec` is the YAML document parsed into a `serde_json::Value`.
pub fn validate(spec: &Value) -> Vec<SpecViolation> {
    let mut checker = Checker::new(spec);
    checker.openapi_version();
    checker.refs(spec, "", Context::Structure);
    // Components first: a response, request body or parameter is checked once,
    // where it is defined, and operations that `$ref` it skip it afterwards.
    checker.components();
    let mut operation_ids = HashMap::new();
    checker.paths(&mut operation_ids);
    checker.webhooks(&mut operation_ids);

    let mut violations = checker.violations;
    violations
        .sort_by(|a, b| (&a.pointer, a.rule, &a.message).cmp(&(&b.pointer, b.rule, &b.message)));
    // A shared example (`#/components/examples/..`) used twice under the same
    // schema would otherwise be reported twice.
    violations.dedup();
    violations
}

/// A path parameter as an operation sees it: declared at path-item or
/// operation level, with `in: path`.
struct PathParam {
    name: String,
    required: bool,
}

/// What an object is, as far as finding `$ref`s goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// An OpenAPI or JSON Schema object: `$ref` is a reference, some keys hold
    /// literal data.
    Structure,
    /// A map from chosen names to structures (`paths`, `properties`,
    /// `components/schemas`, ...): its keys are names, never keywords.
    NameMap,
    /// A map from names to Example Objects.
    ExampleMap,
    /// An Example Object, whose `value` is literal data.
    Example,
}

/// Keys of a structure whose value is literal data: a `$ref` in there is data.
const LITERAL_KEYS: [&str; 4] = ["example", "default", "const", "enum"];

/// Keys whose value maps chosen names to structures.
const NAME_MAP_KEYS: [&str; 21] = [
    "paths",
    "webhooks",
    "components",
    "schemas",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
    "pathItems",
    "content",
    "encoding",
    "variables",
    "mapping",
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

struct Checker<'a> {
    spec: &'a Value,
    /// Pointers of the responses, request bodies and parameters already
    /// checked, so one used by many operations is checked once.
    checked: HashSet<String>,
    /// Whether some schema under `#/components/schemas` is not valid JSON
    /// Schema (already reported, so compiling a schema using it fails quietly).
    broken_component_schema: bool,
    violations: Vec<SpecViolation>,
}

impl<'a> Checker<'a> {
    fn new(spec: &'a Value) -> Self {
        Checker {
            spec,
            checked: HashSet::new(),
            broken_component_schema: false,
            violations: Vec::new(),
        }
    }

    fn report(&mut self, pointer: &str, rule: &'static str, message: impl Into<String>) {
        self.violations.push(SpecViolation {
            pointer: pointer.to_owned(),
            rule,
            message: message.into(),
        });
    }

    /// Follows a Reference Object at `pointer` to its target and returns the
    /// target with its own pointer, unless that target was checked already.
    fn first_visit(&mut self, node: &'a Value, pointer: &str) -> Option<(&'a Value, String)> {
        let (target, at) = deref(self.spec, node, pointer)?;
        self.checked.insert(at.clone()).then_some((target, at))
    }

    // ----- openapi-version ---------------------------------------------------

    fn openapi_version(&mut self) {
        let message = match self.spec.get("openapi") {
            Some(Value::String(version)) if is_openapi_31(version) => return,
            Some(Value::String(version)) => {
                format!("`openapi` is \"{version}\"; this project requires \"3.1.x\"")
            }
            Some(other) => format!("`openapi` must be a string \"3.1.x\", found {other}"),
            None => "the document has no `openapi` field; it must be \"3.1.x\"".to_owned(),
        };
        self.report("/openapi", OPENAPI_VERSION, message);
    }

    // ----- unresolved-ref ----------------------------------------------------

    /// Walks the whole document and checks every `$ref` that is a reference
    /// (not a property name, not inside example data).
    fn refs(&mut self, node: &Value, pointer: &str, context: Context) {
        match node {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.refs(item, &join(pointer, &index.to_string()), Context::Structure);
                }
            }
            Value::Object(map) => {
                if matches!(context, Context::Structure | Context::Example) {
                    if let Some(reference) = map.get("$ref") {
                        self.check_ref(node, reference, pointer);
                    }
                }
                for (key, child) in map {
                    if let Some(child_context) = child_context(context, key, child) {
                        self.refs(child, &join(pointer, key), child_context);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_ref(&mut self, owner: &Value, reference: &Value, pointer: &str) {
        let message = match reference {
            Value::String(target) if !target.starts_with('#') => {
                format!("`$ref` \"{target}\" is not a local reference (`#/...`)")
            }
            Value::String(target) if resolve_local(self.spec, target).is_none() => {
                format!("`$ref` target \"{target}\" does not exist in this document")
            }
            Value::String(target) => match follow(self.spec, owner, pointer) {
                Err(RefFailure::Loop) => format!(
                    "`$ref` \"{target}\" starts a chain of references that loops without \
                     reaching a definition"
                ),
                _ => return,
            },
            other => format!("`$ref` must be a string, found {other}"),
        };
        self.report(pointer, UNRESOLVED_REF, message);
    }

    // ----- components --------------------------------------------------------

    fn components(&mut self) {
        let components = self.spec.get("components");
        for (name, schema) in entries(components.and_then(|c| c.get("schemas"))) {
            let pointer = format!("/components/schemas/{}", escape(name));
            if !self.schema_is_valid(schema, &pointer) {
                self.broken_component_schema = true;
            }
        }
        for (name, response) in entries(components.and_then(|c| c.get("responses"))) {
            self.response(response, &format!("/components/responses/{}", escape(name)));
        }
        for (name, body) in entries(components.and_then(|c| c.get("requestBodies"))) {
            self.request_body(body, &format!("/components/requestBodies/{}", escape(name)));
        }
        for (name, parameter) in entries(components.and_then(|c| c.get("parameters"))) {
            self.parameter(
                parameter,
                &format!("/components/parameters/{}", escape(name)),
            );
        }
    }

    // ----- paths and operations ----------------------------------------------

    /// `operation_ids`: operationId -> pointer of the operation that used it
    /// first (shared with the webhooks: one namespace).
    fn paths(&mut self, operation_ids: &mut HashMap<String, String>) {
        for (template, item) in entries(self.spec.get("paths")) {
            let item_pointer = join("/paths", template);
            // A path item may itself be a `$ref` (to `#/components/pathItems/..`).
            let Some((item, item_pointer)) = deref(self.spec, item, &item_pointer) else {
                continue;
            };
            let template_names = match template_params(template) {
                Ok(names) => Some(names),
                Err(problem) => {
                    let message = format!("path template \"{template}\": {problem}");
                    self.report(&item_pointer, PATH_PARAMS, message);
                    None
                }
            };
            let path_level = self.parameters(item, &item_pointer);
            for (method, operation) in entries(Some(item)) {
                if !HTTP_METHODS.contains(&method.as_str()) || !operation.is_object() {
                    continue;
                }
                let at = join(&item_pointer, method);
                self.operation_id(operation, &at, operation_ids);
                self.operation_tags(operation, &at);
                self.operation_summary(operation, &at);
                self.secured_401(operation, &at);
                let operation_level = self.parameters(operation, &at);
                if let Some(names) = &template_names {
                    let declared = merge_path_params(&path_level, &operation_level);
                    self.path_params(template, names, &declared, &at);
                }
                if let Some(body) = operation.get("requestBody") {
                    self.request_body(body, &join(&at, "requestBody"));
                }
                for (status, response) in entries(operation.get("responses")) {
                    self.response(response, &format!("{at}/responses/{}", escape(status)));
                }
            }
        }
    }

    /// The top-level `webhooks`: requests this server sends, keyed by name.
    /// Each operation is held to the operation rules (operationId unique with
    /// the paths', tags, summary), its parameters and request body to the
    /// rules of the paths' (examples valid, the JSON schema a component
    /// `$ref`), and it must have that body and document the receiver's
    /// answer. Those responses are the receiver's, not this server's: only
    /// their status matters (the body is ignored), so no content is required.
    fn webhooks(&mut self, operation_ids: &mut HashMap<String, String>) {
        for (name, item) in entries(self.spec.get("webhooks")) {
            let item_pointer = join("/webhooks", name);
            let Some((item, item_pointer)) = deref(self.spec, item, &item_pointer) else {
                continue;
            };
            self.parameters(item, &item_pointer);
            for (method, operation) in entries(Some(item)) {
                if !HTTP_METHODS.contains(&method.as_str()) || !operation.is_object() {
                    continue;
                }
                let at = join(&item_pointer, method);
                self.operation_id(operation, &at, operation_ids);
                self.operation_tags(operation, &at);
                self.operation_summary(operation, &at);
                self.parameters(operation, &at);
                let json_body = operation
                    .get("requestBody")
                    .and_then(|body| deref(self.spec, body, &join(&at, "requestBody")))
                    .and_then(|(body, _)| body.get("content")?.get(JSON_MEDIA_TYPE).cloned());
                match operation.get("requestBody") {
                    Some(body) if json_body.is_some() => {
                        self.request_body(body, &join(&at, "requestBody"))
                    }
                    _ => self.report(
                        &at,
                        WEBHOOK_SHAPE,
                        "a webhook needs an application/json `requestBody`: what it sends",
                    ),
                }
                let has_responses = operation
                    .get("responses")
                    .and_then(Value::as_object)
                    .is_some_and(|r| !r.is_empty());
                if !has_responses {
                    self.report(
                        &at,
                        WEBHOOK_SHAPE,
                        "a webhook must document the answer that acknowledges it in `responses`",
                    );
                }
            }
        }
    }

    /// Checks the examples of the `parameters` of a path item or operation and
    /// returns the `in: path` ones, resolved through `$ref`s.
    fn parameters(&mut self, owner: &'a Value, owner_pointer: &str) -> Vec<PathParam> {
        let mut path_params = Vec::new();
        let list = owner.get("parameters").and_then(Value::as_array);
        for (index, parameter) in list.into_iter().flatten().enumerate() {
            let at = format!("{owner_pointer}/parameters/{index}");
            self.parameter(parameter, &at);
            let Some((parameter, _)) = deref(self.spec, parameter, &at) else {
                continue; // reported by unresolved-ref
            };
            let name = parameter.get("name").and_then(Value::as_str);
            let location = parameter.get("in").and_then(Value::as_str);
            if let (Some(name), Some("path")) = (name, location) {
                path_params.push(PathParam {
                    name: name.to_owned(),
                    required: parameter.get("required") == Some(&Value::Bool(true)),
                });
            }
        }
        path_params
    }

    fn path_params(&mut self, template: &str, names: &[&str], declared: &[&PathParam], at: &str) {
        for name in names {
            let message = match declared.iter().find(|param| param.name == *name) {
                Some(param) if param.required => continue,
                Some(_) => format!("path parameter `{name}` must have `required: true`"),
                None => format!(
                    "template parameter `{{{name}}}` of \"{template}\" is not declared as a \
                     parameter with `in: path`"
                ),
            };
            self.report(at, PATH_PARAMS, message);
        }
        for param in declared {
            if !names.contains(&param.name.as_str()) {
                let message = format!(
                    "parameter `{}` is declared `in: path` but `{{{}}}` is not in the template \
                     \"{template}\"",
                    param.name, param.name
                );
                self.report(at, PATH_PARAMS, message);
            }
        }
    }

    fn operation_id(&mut self, operation: &Value, at: &str, seen: &mut HashMap<String, String>) {
        let id_pointer = join(at, "operationId");
        match operation.get("operationId") {
            None => self.report(at, OPERATION_ID, "the operation has no `operationId`"),
            Some(Value::String(id)) if !id.trim().is_empty() => {
                if let Some(first) = seen.get(id) {
                    let message = format!("operationId \"{id}\" is already used by {first}");
                    self.report(&id_pointer, OPERATION_ID, message);
                } else {
                    seen.insert(id.clone(), at.to_owned());
                }
            }
            Some(_) => self.report(
                &id_pointer,
                OPERATION_ID,
                "`operationId` must be a non-empty string",
            ),
        }
    }

    fn operation_tags(&mut self, operation: &Value, at: &str) {
        match operation.get("tags") {
            None => self.report(at, OPERATION_TAG, "the operation has no `tags`"),
            Some(Value::Array(tags)) if !tags.is_empty() => {
                for (index, tag) in tags.iter().enumerate() {
                    if !is_non_empty_string(tag) {
                        let pointer = format!("{at}/tags/{index}");
                        self.report(&pointer, OPERATION_TAG, "a tag must be a non-empty string");
                    }
                }
            }
            Some(_) => self.report(
                &join(at, "tags"),
                OPERATION_TAG,
                "`tags` must be a non-empty array",
            ),
        }
    }

    fn operation_summary(&mut self, operation: &Value, at: &str) {
        match operation.get("summary") {
            None => self.report(at, OPERATION_SUMMARY, "the operation has no `summary`"),
            Some(summary) if is_non_empty_string(summary) => {}
            Some(_) => self.report(
                &join(at, "summary"),
                OPERATION_SUMMARY,
                "`summary` must be a non-empty string",
            ),
        }
    }

    fn secured_401(&mut self, operation: &Value, at: &str) {
        // An operation's own `security` (even `[]`) replaces the top-level one.
        let security = operation
            .get("security")
            .or_else(|| self.spec.get("security"));
        if !requires_credentials(security) {
            return;
        }
        let responses = operation.get("responses");
        if responses.and_then(|r| r.get("401")).is_some() {
            return;
        }
        let pointer = match responses {
            Some(_) => join(at, "responses"),
            None => at.to_owned(),
        };
        let message = "the operation requires credentials but does not document a 401 response";
        self.report(&pointer, SECURED_401, message);
    }

    // ----- responses, request bodies, parameters -------------------------------

    /// Checks one response where it is defined; a `$ref` is followed to the
    /// definition, which is checked only the first time it is reached.
    ///
    /// A response has exactly one body: `application/json` whose schema is a
    /// component `$ref` (the generated types), or `text/plain` (parameters
    /// allowed) whose schema is `type: string`. The generated handler answer
    /// sends that one media type, so a second one could never be served.
    fn response(&mut self, response: &'a Value, pointer: &str) {
        let Some((response, at)) = self.first_visit(response, pointer) else {
            return;
        };
        let Some(content) = response.get("content") else {
            let message = if response.is_object() {
                "the response has no `content`; it must describe an application/json or a \
                 text/plain body"
            } else {
                "a response must be an object"
            };
            self.report(&at, RESPONSE_JSON_SCHEMA, message);
            return;
        };
        let content_at = join(&at, "content");
        let media_types: Vec<(&String, &Value)> = entries(Some(content)).collect();
        match media_types.as_slice() {
            [] => self.report(
                &content_at,
                RESPONSE_JSON_SCHEMA,
                "the response has no media type; it must describe an application/json or a \
                 text/plain body",
            ),
            [(media_type, media)] if media_type.as_str() == JSON_MEDIA_TYPE => {
                let media_at = join(&content_at, media_type);
                if media.get("schema").is_none() {
                    self.report(
                        &media_at,
                        RESPONSE_JSON_SCHEMA,
                        "the `application/json` content has no `schema`",
                    );
                } else {
                    self.json_schema_is_ref(media, &media_at);
                }
            }
            [(media_type, media)] if media_type_essence(media_type) == TEXT_MEDIA_TYPE => {
                let is_string = media
                    .get("schema")
                    .and_then(|schema| schema.get("type"))
                    .is_some_and(|kind| kind == "string");
                if !is_string {
                    let message = format!(
                        "the `{media_type}` content needs `schema: {{type: string}}`: a text \
                         body is one string"
                    );
                    self.report(&join(&content_at, media_type), RESPONSE_MEDIA_TYPE, message);
                }
            }
            [(media_type, _)] => {
                let message = format!(
                    "`{media_type}` is not supported: a response body is `application/json` or \
                     `text/plain`"
                );
                self.report(&join(&content_at, media_type), RESPONSE_MEDIA_TYPE, message);
            }
            several => {
                let names: Vec<&str> = several.iter().map(|(name, _)| name.as_str()).collect();
                let message = format!(
                    "the response has {} media types ({}); the server answers with one, so \
                     document exactly one",
                    names.len(),
                    names.join(", ")
                );
                self.report(&content_at, RESPONSE_MEDIA_TYPE, message);
            }
        }
        self.media_types(content, &content_at);
    }

    fn request_body(&mut self, body: &'a Value, pointer: &str) {
        let Some((body, at)) = self.first_visit(body, pointer) else {
            return;
        };
        let Some(content) = body.get("content") else {
            return;
        };
        let content_at = join(&at, "content");
        if let Some(media) = content.get(JSON_MEDIA_TYPE) {
            self.json_schema_is_ref(media, &join(&content_at, JSON_MEDIA_TYPE));
        }
        self.media_types(content, &content_at);
    }

    fn parameter(&mut self, parameter: &'a Value, pointer: &str) {
        let Some((parameter, at)) = self.first_visit(parameter, pointer) else {
            return;
        };
        // A parameter carries either `schema` (with its examples) or `content`.
        self.examples(parameter, &at);
        if let Some(content) = parameter.get("content") {
            self.media_types(content, &join(&at, "content"));
        }
    }

    /// JSON bodies must name their shape: the schema is a `$ref` to a component
    /// schema, so clients and the server share one definition.
    fn json_schema_is_ref(&mut self, media: &Value, media_at: &str) {
        let Some(schema) = media.get("schema") else {
            return;
        };
        let is_component_ref = schema
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|target| target.starts_with(SCHEMA_REF_PREFIX));
        if !is_component_ref {
            let message = format!(
                "the application/json schema is inline; define it under \
                 #/components/schemas and use a `$ref` ({SCHEMA_REF_PREFIX}...)"
            );
            self.report(&join(media_at, "schema"), INLINE_OBJECT_SCHEMA, message);
        }
    }

    fn media_types(&mut self, content: &'a Value, content_at: &str) {
        for (media_type, media) in entries(Some(content)) {
            self.examples(media, &join(content_at, media_type));
        }
    }

    // ----- example-invalid ---------------------------------------------------

    /// Validates the `example` and `examples.*.value` of a media type or
    /// parameter (`holder`) against the holder's `schema`.
    fn examples(&mut self, holder: &'a Value, at: &str) {
        let Some(schema) = holder.get("schema") else {
            return; // nothing to validate against
        };
        let schema_at = join(at, "schema");
        let schema_is_valid = self.schema_is_valid(schema, &schema_at);
        let instances = example_instances(self.spec, holder, at);
        if instances.is_empty() {
            return;
        }
        let validator = match self.compile(schema) {
            Ok(validator) => validator,
            // The schema points where nothing is; unresolved-ref reports that.
            Err(CompileFailure::Unresolved) => return,
            // Already reported, with the meta-schema's more precise messages.
            Err(CompileFailure::Invalid { .. })
                if !schema_is_valid || self.broken_component_schema =>
            {
                return
            }
            // E.g. a `pattern` that is not a regex: reported where it is, so a
            // broken component schema is reported once however many use it.
            Err(CompileFailure::Invalid { path, message }) => {
                let pointer = if path == "/components" || path.starts_with("/components/") {
                    path // the root holds the components where the document does
                } else {
                    format!("{schema_at}{path}")
                };
                let message = format!("the schema cannot be compiled to check examples: {message}");
                self.report(&pointer, EXAMPLE_INVALID, message);
                return;
            }
        };
        for (instance, instance_at) in instances {
            for error in validator.iter_errors(instance) {
                if matches!(
                    error.kind(),
                    jsonschema::error::ValidationErrorKind::Referencing(_)
                ) {
                    continue; // reported by unresolved-ref
                }
                let path = error.instance_path().as_str();
                let shown_path = if path.is_empty() { "(root)" } else { path };
                let message = format!("example does not match its schema at {shown_path}: {error}");
                self.report(&format!("{instance_at}{path}"), EXAMPLE_INVALID, message);
            }
        }
    }

    /// Checks `schema` against the JSON Schema 2020-12 meta-schema: examples
    /// cannot be checked against a schema that is not one.
    fn schema_is_valid(&mut self, schema: &Value, at: &str) -> bool {
        let meta = jsonschema::draft202012::meta::validator();
        let mut valid = true;
        for error in meta.iter_errors(schema) {
            valid = false;
            let message = format!(
                "not a valid JSON Schema 2020-12 schema, so examples cannot be checked \
                 against it: {error}"
            );
            let pointer = format!("{at}{}", error.instance_path().as_str());
            self.report(&pointer, EXAMPLE_INVALID, message);
        }
        valid
    }

    /// Compiles `schema` as JSON Schema 2020-12 inside a root that also holds
    /// the document's `components`, so that `#/components/schemas/..` refs
    /// resolve exactly as they do in the OpenAPI document.
    fn compile(&self, schema: &Value) -> Result<jsonschema::Validator, CompileFailure> {
        let root = match (schema, self.spec.get("components")) {
            (Value::Object(schema), Some(components)) => {
                let mut root: Map<String, Value> = schema.clone();
                root.insert("components".to_owned(), components.clone());
                Value::Object(root)
            }
            // A boolean schema, or no components to resolve against.
            _ => schema.clone(),
        };
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|error| match error.kind() {
                jsonschema::error::ValidationErrorKind::Referencing(_) => {
                    CompileFailure::Unresolved
                }
                _ => CompileFailure::Invalid {
                    path: error.instance_path().as_str().to_owned(),
                    message: error.to_string(),
                },
            })
    }
}

// ----- helpers ----------------------------------------------------------------

/// Why a schema could not be compiled to check examples.
enum CompileFailure {
    /// A reference does not resolve.
    Unresolved,
    /// Anything else, at `path` inside the compiled root.
    Invalid { path: String, message: String },
}

/// The `example` of `holder` and the `value` of each of its `examples`
/// (following Example Object `$ref`s), with their pointers.
fn example_instances<'a>(spec: &'a Value, holder: &'a Value, at: &str) -> Vec<(&'a Value, String)> {
    let mut instances = Vec::new();
    if let Some(example) = holder.get("example") {
        instances.push((example, join(at, "example")));
    }
    let examples_at = join(at, "examples");
    for (name, example) in entries(holder.get("examples")) {
        let Some((example, example_at)) = deref(spec, example, &join(&examples_at, name)) else {
            continue;
        };
        // An Example Object may use `externalValue` instead; that is not checked.
        if let Some(value) = example.get("value") {
            instances.push((value, join(&example_at, "value")));
        }
    }
    instances
}

/// Where the `$ref` walk goes from a `context` object into its `key`; `None`
/// when the value is literal data, in which `$ref` means nothing.
fn child_context(context: Context, key: &str, child: &Value) -> Option<Context> {
    match context {
        Context::NameMap => Some(Context::Structure),
        Context::ExampleMap => Some(Context::Example),
        Context::Example if key == "value" => None,
        Context::Structure | Context::Example => {
            if LITERAL_KEYS.contains(&key) || key.starts_with("x-") {
                None
            } else if key == "examples" {
                // JSON Schema `examples` is an array of values; OpenAPI
                // `examples` is a map of Example Objects.
                (!child.is_array()).then_some(Context::ExampleMap)
            } else if NAME_MAP_KEYS.contains(&key) {
                Some(Context::NameMap)
            } else {
                Some(Context::Structure)
            }
        }
    }
}

/// Path-level `in: path` parameters, overridden by operation-level ones of the
/// same name.
fn merge_path_params<'p>(
    path_level: &'p [PathParam],
    operation_level: &'p [PathParam],
) -> Vec<&'p PathParam> {
    let overridden = |param: &&PathParam| operation_level.iter().all(|op| op.name != param.name);
    path_level
        .iter()
        .filter(overridden)
        .chain(operation_level)
        .collect()
}

/// The `{name}` expressions of a path template, in order.
fn template_params(template: &str) -> Result<Vec<&str>, &'static str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("`}` without a matching `{`");
        }
        let after = &rest[open + 1..];
        let close = match after.find(['{', '}']) {
            Some(close) if after[close..].starts_with('}') => close,
            _ => return Err("`{` without a matching `}`"),
        };
        if close == 0 {
            return Err("empty `{}`");
        }
        names.push(&after[..close]);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Whether a `security` value demands credentials: a non-empty list with at
/// least one non-empty requirement (`{}` alone means "anonymous is fine").
fn requires_credentials(security: Option<&Value>) -> bool {
    security
        .and_then(Value::as_array)
        .is_some_and(|requirements| {
            requirements
                .iter()
                .any(|requirement| requirement.as_object().is_some_and(|r| !r.is_empty()))
        })
}

/// `text/plain; version=0.0.4` → `text/plain` (lower case, no parameters).
fn media_type_essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_openapi_31(version: &str) -> bool {
    version
        .strip_prefix("3.1.")
        .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
}

fn is_non_empty_string(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.trim().is_empty())
}

/// The members of `node` if it is an object, in document order.
fn entries(node: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    node.and_then(Value::as_object).into_iter().flatten()
}

/// Why a chain of references leads nowhere.
enum RefFailure {
    /// A `$ref` is not a string or names nothing in this document.
    Unresolved,
    /// The chain is longer than [`MAX_REF_HOPS`]: it loops.
    Loop,
}

/// Follows a chain of Reference Objects (`{"$ref": "#/..."}`) from `node` at
/// `pointer` to the node it ends at, with that node's pointer.
fn follow<'a>(
    spec: &'a Value,
    node: &'a Value,
    pointer: &str,
) -> Result<(&'a Value, String), RefFailure> {
    let mut current = (node, pointer.to_owned());
    for _ in 0..MAX_REF_HOPS {
        current = match current.0.get("$ref") {
            None => return Ok(current),
            Some(Value::String(reference)) => {
                resolve_local(spec, reference).ok_or(RefFailure::Unresolved)?
            }
            Some(_) => return Err(RefFailure::Unresolved),
        };
    }
    Err(RefFailure::Loop)
}

/// [`follow`], for checks that skip what does not resolve: unresolved-ref
/// reports it.
fn deref<'a>(spec: &'a Value, node: &'a Value, pointer: &str) -> Option<(&'a Value, String)> {
    follow(spec, node, pointer).ok()
}

/// Resolves a local reference `#<json pointer>` (a URI fragment, so possibly
/// percent-encoded) to its target and the target's pointer.
fn resolve_local<'a>(spec: &'a Value, reference: &str) -> Option<(&'a Value, String)> {
    let pointer = percent_decode(reference.strip_prefix('#')?)?;
    spec.pointer(&pointer).map(|target| (target, pointer))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = hex_value(*bytes.get(index + 1)?)?;
            let low = hex_value(*bytes.get(index + 2)?)?;
            decoded.push(high * 16 + low);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn join(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape(token))
}
