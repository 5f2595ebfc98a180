//! HS256 bearer tokens with the server's claims (sub, sid, iat, exp) and its
//! checks: the algorithm pinned, no `crit`, `exp`/`nbf` with 5 s of leeway,
//! no `iat` in the future. The session behind `sid` is checked by the
//! database statement of each request, not here.

use actix_web::{http::header, HttpRequest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

const LEEWAY: i64 = 5;
const MAX_TOKEN_LEN: usize = 4096;

pub const MISSING: &str = "Missing bearer token";
pub const REJECTED: &str = "Invalid or expired token";

pub struct Key(Hmac<Sha256>);

pub struct Claims {
    pub sub: String,
    pub sid: String,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Body {
    sub: String,
    sid: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

impl Key {
    pub fn new(secret: &[u8]) -> Self {
        Self(Hmac::new_from_slice(secret).expect("HMAC takes any key length"))
    }

    /// The claims of the request's bearer token, or the public message of
    /// the 401.
    pub fn verify(&self, req: &HttpRequest) -> Result<Claims, &'static str> {
        let mut values = req.headers().get_all(header::AUTHORIZATION);
        let value = values.next().ok_or(MISSING)?;
        if values.next().is_some() {
            return Err(REJECTED);
        }
        let value = value.to_str().map_err(|_| REJECTED)?;
        let (scheme, token) = value.split_once(' ').ok_or(REJECTED)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(REJECTED);
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.contains(' ') {
            return Err(REJECTED);
        }
        self.claims(token).ok_or(REJECTED)
    }

    fn claims(&self, token: &str) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, body) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.0.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let header = URL_SAFE_NO_PAD.decode(header).ok()?;
        let header: Header = serde_json::from_slice(&header).ok()?;
        if header.alg != "HS256" || header.crit.is_some() {
            return None;
        }
        let body: Body = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let now = chrono::Utc::now().timestamp();
        if body.exp < now - LEEWAY || body.iat > now + LEEWAY {
            return None;
        }
        if body.nbf.is_some_and(|nbf| nbf > now + LEEWAY) {
            return None;
        }
        Some(Claims {
            sub: body.sub,
            sid: body.sid,
        })
    }
}
