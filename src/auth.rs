//! Authentication, in one place: bearer JWTs that name a user (`sub`) and
//! one of that user's sessions (`sid`). A token is accepted only while its
//! session is active, which is checked in the database on every request, so
//! revoking a session (directly, by untrust, delete or revoke-all) takes
//! effect on the very next request.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use diesel::result::Error as DieselError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::{
    self,
    models::{DeviceRow, SessionRow},
    AnyConnection, Db, DbError,
};

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC output.
pub const MIN_SECRET_LEN: usize = 32;
/// Tokens longer than this are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Clock skew tolerated on `exp`/`nbf`, in seconds (the crate's default is 60).
pub const LEEWAY_SECONDS: u64 = 5;

/// The public message of a 401 for a token that is present but not acceptable.
pub const REJECTED: &str = "Invalid or expired token";
/// The public message of a 401 for a request without a token.
pub const MISSING: &str = "Missing bearer token";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Signs and verifies tokens; built once at start-up.
///
/// Verification is pinned to one algorithm: HS256 with `JWT_SECRET`, or, when
/// a separate sign-in service holds a private key, EdDSA or RS256 with its
/// public key (then HS256 tokens are refused, which also defeats "HS256
/// signed with the public key" algorithm confusion).
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: Algorithm,
    /// Absent in public-key mode unless a private key was given too.
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (got {0})")]
    TooShort(usize),
    #[error("the public key is neither an Ed25519 nor an RSA public key in PEM form")]
    UnsupportedPublicKey,
    #[error("the private key does not match the public key's algorithm ({0:?}): {1}")]
    BadPrivateKey(Algorithm, String),
    #[error("tokens can only be verified here: give the private key (JWT_PRIVATE_KEY_FILE) to sign them")]
    CannotSign,
}

impl TokenKeys {
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort(secret.len()));
        }
        Ok(Self::with_keys(
            Algorithm::HS256,
            Some(EncodingKey::from_secret(secret)),
            DecodingKey::from_secret(secret),
        ))
    }

    /// Public-key verification: EdDSA (Ed25519) or RS256, told apart by the
    /// key itself. `private_pem`, when given, lets this process sign too.
    pub fn public_key(public_pem: &[u8], private_pem: Option<&[u8]>) -> Result<Self, KeyError> {
        let (algorithm, decoding) = if let Ok(key) = DecodingKey::from_ed_pem(public_pem) {
            (Algorithm::EdDSA, key)
        } else if let Ok(key) = DecodingKey::from_rsa_pem(public_pem) {
            (Algorithm::RS256, key)
        } else {
            return Err(KeyError::UnsupportedPublicKey);
        };
        let encoding = match private_pem {
            None => None,
            Some(pem) => Some(
                match algorithm {
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
                    _ => EncodingKey::from_rsa_pem(pem),
                }
                .map_err(|e| KeyError::BadPrivateKey(algorithm, e.to_string()))?,
            ),
        };
        Ok(Self::with_keys(algorithm, encoding, decoding))
    }

    fn with_keys(
        algorithm: Algorithm,
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: None,
            audience: None,
        }
    }

    /// Requires (and, when signing, sets) `iss` and/or `aud`.
    pub fn with_issuer_and_audience(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        let mut required = vec!["exp", "iat", "sub"];
        if let Some(issuer) = &issuer {
            self.validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &audience {
            self.validation.set_audience(&[audience]);
            self.validation.validate_aud = true;
            required.push("aud");
        }
        self.validation.set_required_spec_claims(&required);
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn sign(
        &self,
        user_id: &str,
        session_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SignError> {
        let encoding = self
            .encoding
            .as_ref()
            .ok_or(SignError::Key(KeyError::CannotSign))?;
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: Utc::now().timestamp(),
            exp: expires_at.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            &claims,
            encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
    }

    /// The user a request's bearer token names, if its signature and claims
    /// hold (the session is not checked): the rate limiter's key. The claims
    /// are kept in the request so that [`Bearer`] does not verify them again.
    pub fn verified_subject(&self, request: &HttpRequest) -> Option<String> {
        let token = bearer_token(request).ok()?;
        let claims = self.verify(token).ok()?;
        let subject = claims.sub.clone();
        request.extensions_mut().insert(VerifiedClaims(claims));
        Some(subject)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// The authenticated caller of a request: a user and their active session.
/// Only [`Bearer::read`] and [`Bearer::write`] make one, after checking the
/// session in the same database call as the operation's own work.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    /// The device the session runs on ("this device").
    pub device_id: String,
}

/// A bearer token whose signature and claims hold; its session is not
/// checked yet. The caller's identity is reachable only through
/// [`Bearer::read`] / [`Bearer::write`], which check the session first, so no
/// handler can act on a revoked session, and each request makes one trip to
/// the database instead of two.
pub struct Bearer {
    claims: Claims,
}

/// Why an authenticated database call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The token's session is revoked, expired, unknown or not the user's (401).
    #[error("session {session_id} of user {user_id} is revoked, expired or unknown")]
    SessionInactive { user_id: String, session_id: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Bearer {
    /// Checks the session, then runs `work`, which only reads, as the
    /// caller, on one connection (see [`Db::read`]).
    pub async fn read<T, F>(self, db: &Db, work: F) -> Result<T, CallError>
    where
        F: Fn(&mut AnyConnection, &Caller) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let claims = self.claims;
        let outcome = db
            .read(move |conn| match authenticate(conn, claims.clone())? {
                Ok(caller) => work(conn, &caller).map(Ok),
                Err(inactive) => Ok(Err(inactive)),
            })
            .await?;
        outcome
    }

    /// Like [`Bearer::read`], in a write (its own savepoint of its group's
    /// transaction) that also holds the session check, so a revocation
    /// cannot slip in between the two: a revocation earlier in the same group
    /// is seen by the check.
    pub async fn write<T, F>(self, db: &Db, work: F) -> Result<T, CallError>
    where
        F: Fn(&mut AnyConnection, &Caller) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let claims = self.claims;
        let outcome = db
            .write(move |conn| match authenticate(conn, claims.clone())? {
                Ok(caller) => work(conn, &caller).map(Ok),
                Err(inactive) => Ok(Err(inactive)),
            })
            .await?;
        outcome
    }

    /// The caller with their own session and its device, read by the
    /// session check itself: one query, the whole of `getCurrentSession`.
    pub async fn current_session(self, db: &Db) -> Result<CurrentSession, CallError> {
        let claims = self.claims;
        let outcome = db
            .read(move |conn| {
                let found =
                    db::sessions::active_with_device(conn, &claims.sub, &claims.sid, db::now())?;
                Ok(match found {
                    Some((session, device)) => Ok(CurrentSession {
                        caller: Caller {
                            user_id: claims.sub.clone(),
                            session_id: claims.sid.clone(),
                            device_id: device.id.clone(),
                        },
                        session,
                        device,
                    }),
                    None => Err(inactive(&claims)),
                })
            })
            .await?;
        outcome
    }
}

/// What [`Bearer::current_session`] read.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub caller: Caller,
    pub session: SessionRow,
    pub device: DeviceRow,
}

/// The session check behind every authenticated request.
fn authenticate(
    conn: &mut AnyConnection,
    claims: Claims,
) -> Result<Result<Caller, CallError>, DieselError> {
    let device = db::sessions::active_device(conn, &claims.sub, &claims.sid, db::now())?;
    Ok(match device {
        Some(device_id) => Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            device_id,
        }),
        None => Err(inactive(&claims)),
    })
}

fn inactive(claims: &Claims) -> CallError {
    CallError::SessionInactive {
        user_id: claims.sub.clone(),
        session_id: claims.sid.clone(),
    }
}

/// Why a request's bearer token was refused before any database call: a
/// public message for the 401 body and the reason for the log (it names the
/// failed check, never the token). The HTTP answer is made in `api::error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{public}: {reason}")]
pub struct Refused {
    pub public: &'static str,
    pub reason: String,
}

impl Refused {
    fn missing() -> Self {
        Self {
            public: MISSING,
            reason: "no Authorization header".into(),
        }
    }

    fn rejected(reason: impl Into<String>) -> Self {
        Self {
            public: REJECTED,
            reason: reason.into(),
        }
    }

    /// No token at all, as opposed to one that was present but refused.
    pub fn is_missing(&self) -> bool {
        self.public == MISSING
    }
}

/// The token of an `Authorization: Bearer <token>` header, refusing anything
/// else (other schemes, a doubled `Bearer`, empty or over-long tokens).
pub(crate) fn bearer_token(request: &HttpRequest) -> Result<&str, Refused> {
    let mut values = request.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or_else(Refused::missing)?;
    if values.next().is_some() {
        return Err(Refused::rejected("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Refused::rejected("Authorization header is not visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Refused::rejected("Authorization header is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refused::rejected("Authorization scheme is not Bearer"));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.contains(' ') {
        return Err(Refused::rejected(
            "bearer token is empty, too long or has spaces",
        ));
    }
    Ok(token)
}

/// Claims the rate limiter already verified for this request.
struct VerifiedClaims(Claims);

/// Verifies the request's token with the [`TokenKeys`] registered as app
/// data (`web::Data<TokenKeys>`); the session is checked later, in the
/// operation's own database call.
impl FromRequest for Bearer {
    type Error = Refused;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        if let Some(VerifiedClaims(claims)) = request.extensions_mut().remove::<VerifiedClaims>() {
            return ready(Ok(Bearer { claims }));
        }
        ready(bearer_token(request).and_then(|token| {
            let keys = request
                .app_data::<web::Data<TokenKeys>>()
                .expect("startup registers web::Data<TokenKeys>");
            let claims = keys
                .verify(token)
                .map_err(|e| Refused::rejected(format!("token refused: {e}")))?;
            Ok(Bearer { claims })
        }))
    }
}
