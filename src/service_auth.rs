//! Authentication of the `platform` operations, in one place: service keys
//! (`fbsk_` + 32 random bytes in unpadded base64url), presented as
//! `Authorization: Bearer <key>`. Only the SHA-256 of a key is stored; a
//! presented key is looked up by its hash and the hashes are compared in
//! constant time. A key is an opaque high-entropy secret, not a password,
//! so a fast hash is enough: nobody can guess one to match a leaked hash.
//!
//! User tokens are never accepted here, and service keys never anywhere
//! else: a key is not a JWT, so `auth::Bearer` refuses it, and a JWT is not
//! a key, so [`ServiceCaller`] refuses it.

use std::time::Duration;

use actix_web::{
    dev::Payload, http::StatusCode, web, FromRequest, HttpMessage, HttpRequest, HttpResponse,
    ResponseError,
};
use base64::Engine as _;
use futures_util::future::LocalBoxFuture;
use sha2::{Digest, Sha256};

use crate::{
    api::{error::UNAVAILABLE, types::ErrorResponse},
    auth::{bearer_token, Refused},
    db::{self, models::ServiceKeyRow, DbError},
    state::AppState,
};

/// What every service key starts with, so that a leaked one is recognised
/// (secret scanners) and told from a JWT at a glance.
pub const KEY_PREFIX: &str = "fbsk_";
/// Random bytes in a key.
pub const KEY_BYTES: usize = 32;
/// Characters after the prefix: unpadded base64 of [`KEY_BYTES`].
const KEY_CHARS: usize = KEY_BYTES.div_ceil(3) * 4 - (3 - KEY_BYTES % 3) % 3;
/// The public message of a 401 for a key that is present but not acceptable.
pub const INVALID_KEY: &str = "Invalid service key";
/// How often `last_used_at` is written for a busy key, at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Longest service key name.
pub const MAX_NAME_LEN: usize = 64;

/// A new key: the prefix and [`KEY_BYTES`] from the OS's generator.
pub fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; KEY_BYTES];
    // ThreadRng: a CSPRNG seeded from the OS, as the other secrets here use.
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored of a key: the hex SHA-256 of the whole key.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A name for a key: 1 to 64 characters of `A-Za-z0-9._-`, so it is safe in
/// logs, metrics and the events' `actorService`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "--name must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        ))
    }
}

fn well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Equal, in a time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The service whose key a `platform` request presented: an extractor that
/// checks the key in the database (a revoked key is refused on the next
/// request, on every server).
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    /// The key's name, recorded as the events' `actorService`.
    pub name: String,
}

/// Why a request's service key was not accepted.
#[derive(Debug, Clone)]
pub enum ServiceRefusal {
    /// 401.
    Refused(Refused),
    /// The database could not be asked (503).
    Unavailable(String),
    /// The lookup failed otherwise (500).
    Failed(String),
}

impl std::fmt::Display for ServiceRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(refused) => write!(f, "{refused}"),
            Self::Unavailable(cause) => write!(f, "service key lookup: {cause}"),
            Self::Failed(cause) => write!(f, "service key lookup: {cause}"),
        }
    }
}

impl ResponseError for ServiceRefusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Refused(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Refused(refused) => refused.error_response(),
            Self::Unavailable(cause) => {
                log::warn!("service key lookup: database unavailable: {cause}");
                HttpResponse::ServiceUnavailable().json(ErrorResponse::new(UNAVAILABLE))
            }
            Self::Failed(cause) => {
                log::error!("service key lookup: {cause}");
                HttpResponse::InternalServerError()
                    .json(ErrorResponse::new("Internal server error"))
            }
        }
    }
}

/// The outcome of a request's key check, kept so that the rate limiter and
/// the handler's extractor share one lookup.
#[derive(Clone)]
struct Checked(Result<ServiceCaller, ServiceRefusal>);

fn refused(public: &'static str, reason: &str) -> ServiceRefusal {
    ServiceRefusal::Refused(Refused {
        public,
        reason: reason.to_owned(),
    })
}

/// Checks the request's service key (once per request).
pub async fn check(request: &HttpRequest) -> Result<ServiceCaller, ServiceRefusal> {
    if let Some(Checked(outcome)) = request.extensions().get::<Checked>() {
        return outcome.clone();
    }
    let outcome = look_up(request).await;
    request.extensions_mut().insert(Checked(outcome.clone()));
    outcome
}

/// The name of the request's valid service key, for the rate limiter: its
/// key for a `platform` request that has one (none for anything else).
pub async fn rate_limit_key(request: &HttpRequest) -> Option<String> {
    if !request.path().starts_with("/platform/") {
        return None;
    }
    check(request).await.ok().map(|caller| caller.name)
}

async fn look_up(request: &HttpRequest) -> Result<ServiceCaller, ServiceRefusal> {
    let key = bearer_token(request).map_err(ServiceRefusal::Refused)?;
    if !well_formed(key) {
        return Err(refused(INVALID_KEY, "not a service key"));
    }
    let presented = hash(key);
    let db = request
        .app_data::<web::Data<AppState>>()
        .expect("startup registers web::Data<AppState>")
        .db
        .clone();
    let wanted = presented.clone();
    let found = db
        .read(move |conn| db::service_keys::find_by_hash(conn, &wanted))
        .await;
    let row: ServiceKeyRow = match found {
        Ok(Some(row)) if same(row.key_hash.as_bytes(), presented.as_bytes()) => row,
        Ok(_) => return Err(refused(INVALID_KEY, "unknown or revoked service key")),
        Err(DbError::Unavailable(cause)) => return Err(ServiceRefusal::Unavailable(cause)),
        Err(e) => return Err(ServiceRefusal::Failed(e.to_string())),
    };
    let now = db::now();
    let stale_before = now - chrono::TimeDelta::from_std(TOUCH_EVERY).unwrap_or_default();
    if row.last_used_at.is_none_or(|at| at < stale_before) {
        let name = row.name.clone();
        // Best effort: a failure to record the use does not refuse the request.
        if let Err(e) = db
            .write(move |conn| db::service_keys::touch(conn, &name, now, stale_before))
            .await
        {
            log::warn!("cannot record the use of service key {}: {e}", row.name);
        }
    }
    Ok(ServiceCaller { name: row.name })
}

impl FromRequest for ServiceCaller {
    type Error = ServiceRefusal;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        // A refusal is counted in the metrics where its 401 is made (`Refused`).
        Box::pin(async move { check(&request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_well_formed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert!(well_formed(&a));
        assert!(!well_formed(&a[..a.len() - 1]));
        assert!(!well_formed("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    }

    #[test]
    fn hashes_compare_by_content() {
        assert!(same(hash("x").as_bytes(), hash("x").as_bytes()));
        assert!(!same(hash("x").as_bytes(), hash("y").as_bytes()));
        assert!(!same(b"ab", b"abc"));
    }
}
