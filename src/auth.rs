//! Authentication, in one place: bearer JWTs that name a user (`sub`) and
//! one of that user's sessions (`sid`). A token is accepted only while its
//! session is active, which is checked in the database on every request, so
//! revoking a session (directly, by untrust, delete or revoke-all) takes
//! effect on the very next request.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{api::error::ApiError, db, state::AppState};

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC output.
pub const MIN_SECRET_LEN: usize = 32;
/// Tokens longer than this are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Clock skew tolerated on `exp`/`nbf`, in seconds (the crate's default is 60).
pub const LEEWAY_SECONDS: u64 = 5;

const REJECTED: &str = "Invalid or expired token";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies tokens; built once at start-up.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (got {0})")]
    TooShort(usize),
}

impl TokenKeys {
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    pub fn sign(
        &self,
        user_id: &str,
        session_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: Utc::now().timestamp(),
            exp: expires_at.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
    }
}

/// The authenticated caller of a request: a user and their active session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
}

/// The token of an `Authorization: Bearer <token>` header, refusing anything
/// else (other schemes, a doubled `Bearer`, empty or over-long tokens).
fn bearer_token(request: &HttpRequest) -> Result<&str, ApiError> {
    let mut values = request.headers().get_all(header::AUTHORIZATION);
    let value = values
        .next()
        .ok_or_else(|| ApiError::unauthorized("Missing bearer token", "no Authorization header"))?;
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            REJECTED,
            "more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(REJECTED, "Authorization header is not visible ASCII")
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthorized(REJECTED, "Authorization header is not `Bearer <token>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            REJECTED,
            "Authorization scheme is not Bearer",
        ));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.contains(' ') {
        return Err(ApiError::unauthorized(
            REJECTED,
            "bearer token is empty, too long or has spaces",
        ));
    }
    Ok(token)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let claims = bearer_token(request).and_then(|token| {
            let state = state
                .as_ref()
                .ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            // The reason goes to the log (it names the failed check, never the token).
            state
                .tokens
                .verify(token)
                .map_err(|e| ApiError::unauthorized(REJECTED, format!("token refused: {e}")))
        });
        Box::pin(async move {
            let claims = claims?;
            let state = state.ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            let (user_id, session_id) = (claims.sub, claims.sid);
            let active = {
                let (user_id, session_id) = (user_id.clone(), session_id.clone());
                state
                    .db
                    .run(move |conn| {
                        db::sessions::is_active(conn, &user_id, &session_id, db::now())
                    })
                    .await
                    .map_err(ApiError::from_db)?
            };
            if !active {
                return Err(ApiError::unauthorized(
                    "Session is no longer active",
                    format!(
                        "session {session_id} of user {user_id} is revoked, expired or unknown"
                    ),
                ));
            }
            Ok(Caller {
                user_id,
                session_id,
            })
        })
    }
}
