//! Extractors shared by the handlers: validated path ids and JSON bodies,
//! and where a request comes from (for its security events).

use std::{
    convert::Infallible,
    future::{ready, Ready},
};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::{de::DeserializeOwned, Deserialize, Deserializer};

use super::{error::ApiError, types::Validate};
use crate::{auth::Caller, client_addr, db::events::Actor};

/// Longest identifier a path may carry (the spec's `maxLength`).
pub const MAX_ID_LEN: usize = 64;
/// The spec's `pattern` of path ids, which [`ResourceId::parse`] enforces.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// A device or session identifier from the path, checked against the spec's
/// `minLength`/`maxLength`/`pattern` before anything reaches the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if raw.is_empty() || raw.len() > MAX_ID_LEN || !valid_chars {
            return Err(format!(
                "id must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-' and '_'"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The path of `/…/{id}/…` operations.
#[derive(Debug, Deserialize)]
pub struct IdPath {
    pub id: ResourceId,
}

/// How long a request's body may take to arrive once its head has (the
/// head has actix's own `client_request_timeout`): a body that never ends
/// must not hold its connection and worker slot for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub std::time::Duration);

impl Default for BodyDeadline {
    fn default() -> Self {
        Self(std::time::Duration::from_secs(5))
    }
}

/// Longest user id (the spec's `UserId` and `CreateSessionRequest.userId`).
pub const MAX_USER_ID_LEN: usize = 128;

/// A user id from the path of a `platform` operation, 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let chars = raw.chars().count();
        if chars == 0 || chars > MAX_USER_ID_LEN {
            return Err(serde::de::Error::custom(format!(
                "userId must be 1 to {MAX_USER_ID_LEN} characters"
            )));
        }
        Ok(Self(raw))
    }
}

/// The path of `/platform/users/{userId}/…` operations.
#[derive(Debug, Deserialize)]
pub struct UserPath {
    #[serde(rename = "userId")]
    pub user_id: UserId,
}

/// A JSON body that passed serde and the schema's remaining keywords.
pub struct ValidatedJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Bodies are read as sent: a compressed one is refused unread, since
        // inflating it is how a few KiB on the wire become GiBs in memory,
        // before any limit on the body's size could apply.
        let encoded = request
            .headers()
            .get_all(header::CONTENT_ENCODING)
            .any(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"));
        let deadline = request
            .app_data::<BodyDeadline>()
            .copied()
            .unwrap_or_default();
        let json =
            (!encoded).then(|| web::Json::<serde_json::Value>::from_request(request, payload));
        Box::pin(async move {
            let Some(json) = json else {
                return Err(ApiError::unsupported_media_type(
                    "Content-Encoding is not supported: send the body uncompressed",
                )
                .into());
            };
            let value = actix_web::rt::time::timeout(deadline.0, json)
                .await
                .map_err(|_| ApiError::request_timeout("The request body did not arrive in time"))??
                .into_inner();
            // serde would also accept a struct written as a JSON array; the
            // spec's bodies are objects, so anything else is refused first.
            if !value.is_object() {
                return Err(
                    ApiError::bad_request("Invalid request body: expected a JSON object").into(),
                );
            }
            let body: T = serde_json::from_value(value)
                .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
            body.validate().map_err(|reason| {
                ApiError::bad_request(format!("Invalid request body: {reason}"))
            })?;
            Ok(ValidatedJson(body))
        })
    }
}

/// Longest User-Agent kept in a security event; the rest is cut off.
pub const MAX_USER_AGENT_LEN: usize = 512;

/// Where a request comes from: the client's address (see `client_addr`)
/// and its User-Agent, as its security events record them.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    /// The actor of a change this request makes as `caller`.
    pub fn actor(&self, caller: &Caller) -> Actor {
        self.client().of_session(&caller.session_id)
    }

    /// The request's client, before its session is known.
    pub fn client(&self) -> Actor {
        Actor {
            session_id: None,
            ip_address: self.ip_address.clone(),
            user_agent: self.user_agent.clone(),
            service: None,
        }
    }

    /// The actor of a change this request makes with the service key `service`.
    pub fn service_actor(&self, service: &str) -> Actor {
        Actor {
            session_id: None,
            ip_address: self.ip_address.clone(),
            user_agent: self.user_agent.clone(),
            service: Some(service.to_owned()),
        }
    }
}

impl FromRequest for Origin {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .map(|value| {
                let mut text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                if text.len() > MAX_USER_AGENT_LEN {
                    let mut end = MAX_USER_AGENT_LEN;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                text
            })
            .filter(|text| !text.is_empty());
        ready(Ok(Self {
            ip_address: client_addr::of(request).map(|address| address.to_string()),
            user_agent,
        }))
    }
}
