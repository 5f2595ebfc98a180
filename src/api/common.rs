//! What many operations document alike, declared once for their
//! `#[utoipa::path]` annotations, as the spec declares it once under
//! `components`: the failures every secured operation can answer, the 400 of
//! a bad body or path id, the 404 of the device operations, and the path ids.
//! A handler lists these types in `responses(...)` / `params(...)` next to
//! what is its own; what every operation has (the `X-Request-Id` request
//! and response headers) is added to all of them by [`RequestIdEverywhere`].
//! `tests/contract.rs` proves the result equals the spec.

use std::collections::BTreeMap;

use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem},
        schema::{ObjectBuilder, Type},
        ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder,
    },
    IntoParams, IntoResponses, Modify,
};

use super::extract::{ID_PATTERN, MAX_ID_LEN};
use crate::telemetry::{REQUEST_ID_HEADER, REQUEST_ID_PATTERN};

/// A response whose body is the spec's `ErrorResponse`.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorResponse")))
            .build(),
    )
}

fn responses(
    list: impl IntoIterator<Item = (u16, ResponseBuilder)>,
) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter()
        .map(|(status, response)| (status.to_string(), RefOr::T(response.build())))
        .collect()
}

/// 401, 429 and 503: the spec's `Unauthorized`, `TooManyRequests` and
/// `ServiceUnavailable`, which every operation behind `bearerAuth` documents.
pub struct SecuredFailures;

impl IntoResponses for SecuredFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                401,
                error_response("The bearer token is missing, malformed, badly signed or expired, or its session is no longer active.")
                    .header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .description(Some("The authentication scheme to use."))
                            .build(),
                    ),
            ),
            (
                429,
                error_response("The client sent too many requests; nothing was changed. Retry after the number of seconds in `Retry-After`.")
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::Integer)
                                    .minimum(Some(1)),
                            ))
                            .description(Some("Seconds to wait before retrying."))
                            .build(),
                    ),
            ),
            (
                503,
                error_response(
                    "The database cannot be reached right now; retry later. Nothing was changed.",
                ),
            ),
        ])
    }
}

/// 401, 429 and 503 of the operations behind `serviceKey`: the spec's
/// `ServiceKeyUnauthorized`, `TooManyRequests` and `ServiceUnavailable`.
pub struct ServiceKeyFailures;

impl IntoResponses for ServiceKeyFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = SecuredFailures::responses();
        all.insert(
            "401".to_owned(),
            RefOr::T(
                error_response("The service key is missing, malformed, unknown or revoked (a user's token is refused here too).")
                    .header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .description(Some("The authentication scheme to use."))
                            .build(),
                    )
                    .build(),
            ),
        );
        all
    }
}

/// 400: the spec's `InvalidUserId`, for the operations on a user.
pub struct InvalidUserId;

impl IntoResponses for InvalidUserId {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            400,
            error_response("The path's `userId` is not 1 to 128 characters; nothing was changed."),
        )])
    }
}

/// The spec's `UserId` path parameter.
pub struct UserIdParam;

impl IntoParams for UserIdParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("userId")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The user (the `sub` of their tokens)."))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(super::extract::MAX_USER_ID_LEN)),
            ))
            .build()]
    }
}

/// 400: the spec's `BadRequest`, for operations with a body.
pub struct BadRequest;

impl IntoResponses for BadRequest {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            400,
            error_response("The request body is malformed (not JSON, not the operation's schema, too large, or another content type); nothing was changed."),
        )])
    }
}

/// 408 and 415: the spec's `RequestTimeout` and `UnsupportedMediaType`,
/// for operations with a body (answered by `extract::ValidatedJson`).
pub struct BodyFailures;

impl IntoResponses for BodyFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                408,
                error_response("The request body did not arrive in time (`BODY_TIMEOUT_MS` after the request's head); nothing was changed, and the connection is closed."),
            ),
            (
                415,
                error_response("The request body has a `Content-Encoding` (compressed bodies are not accepted; send it uncompressed); nothing was changed."),
            ),
        ])
    }
}

/// 400: the spec's `InvalidPathId`, for operations with a path id.
pub struct InvalidPathId;

impl IntoResponses for InvalidPathId {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            400,
            error_response(
                "The path's `id` is not 1 to 64 characters of `A-Za-z0-9_-`; nothing was changed.",
            ),
        )])
    }
}

/// 404: the spec's `DeviceNotFound`.
pub struct DeviceNotFound;

impl IntoResponses for DeviceNotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            404,
            error_response("The caller has no device with that identifier."),
        )])
    }
}

fn id_parameter(description: &str) -> Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_ID_LEN))
                .pattern(Some(ID_PATTERN)),
        ))
        .build()
}

/// The spec's `DeviceId` path parameter.
pub struct DeviceIdParam;

impl IntoParams for DeviceIdParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![id_parameter("Device identifier")]
    }
}

/// The spec's `SessionId` path parameter.
pub struct SessionIdParam;

impl IntoParams for SessionIdParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![id_parameter("Session identifier")]
    }
}

/// The `X-Request-Id` request header (the spec's `RequestId` parameter) on
/// every operation, and the `X-Request-Id` response header on every
/// response: `crate::telemetry::instrument` gives every answer one.
pub struct RequestIdEverywhere;

impl Modify for RequestIdEverywhere {
    fn modify(&self, openapi: &mut OpenApi) {
        for operation in openapi.paths.paths.values_mut().flat_map(operations_mut) {
            operation.parameters.get_or_insert_with(Vec::new).push(
                ParameterBuilder::new()
                    .name(REQUEST_ID_HEADER)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some("An id of the caller's choosing for this request; anything but 1 to 64 characters of `A-Za-z0-9._-` is replaced by a new id."))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build()
                    .into(),
            );
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.headers.insert(
                        REQUEST_ID_HEADER.to_owned(),
                        RefOr::T(HeaderBuilder::new()
                            .schema(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .pattern(Some(REQUEST_ID_PATTERN)),
                            ))
                            .description(Some("The id of this request: the caller's when well formed, else a new one."))
                            .build()),
                    );
                }
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}
