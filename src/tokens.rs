//! Bearer JWTs: signing and verifying them, and why one was refused. A
//! verified token names a user (`sub`) and one of that user's sessions
//! (`sid`); whether that session is still active is `auth`'s question, asked
//! of the database on every request.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use crate::config::MIN_SECRET_LEN;
/// Clock skew tolerated on `exp`/`nbf`, in seconds (the crate's default is 60).
pub const LEEWAY_SECONDS: u64 = 5;

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

    /// The token's claims, if its signature and claims hold. Beyond the
    /// crate's checks: a `crit` header is refused (RFC 7515 §4.1.11: no
    /// extension is understood here), and so is an `iat` in the future.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::from(e.kind()))?;
        if data.header.crit.is_some() {
            return Err(TokenError::CriticalHeader);
        }
        if data.claims.iat > Utc::now().timestamp() + LEEWAY_SECONDS as i64 {
            return Err(TokenError::IssuedInTheFuture);
        }
        Ok(data.claims)
    }
}

/// Why a token was refused, as the log names it: a fixed kind, never text
/// taken from the token (whose header an attacker writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("algorithm not accepted")]
    WrongAlgorithm,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("issued in the future (iat)")]
    IssuedInTheFuture,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("a required claim is missing or malformed")]
    BadClaims,
    #[error("a critical header extension (crit) is not understood")]
    CriticalHeader,
    #[error("refused")]
    Other,
}

impl From<&jsonwebtoken::errors::ErrorKind> for TokenError {
    fn from(kind: &jsonwebtoken::errors::ErrorKind) -> Self {
        use jsonwebtoken::errors::ErrorKind as Kind;
        match kind {
            Kind::InvalidToken | Kind::Base64(_) | Kind::Json(_) | Kind::Utf8(_) => Self::Malformed,
            Kind::InvalidSignature => Self::BadSignature,
            Kind::InvalidAlgorithm
            | Kind::InvalidAlgorithmName
            | Kind::UnsupportedAlgorithm
            | Kind::MissingAlgorithm => Self::WrongAlgorithm,
            Kind::ExpiredSignature => Self::Expired,
            Kind::ImmatureSignature => Self::NotYetValid,
            Kind::InvalidIssuer => Self::WrongIssuer,
            Kind::InvalidAudience => Self::WrongAudience,
            Kind::MissingRequiredClaim(_) | Kind::InvalidClaimFormat(_) | Kind::InvalidSubject => {
                Self::BadClaims
            }
            _ => Self::Other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hs256_secret_of_31_bytes_is_refused_and_one_of_32_accepted() {
        assert!(matches!(
            TokenKeys::hs256(&[b'k'; MIN_SECRET_LEN - 1]),
            Err(KeyError::TooShort(31))
        ));
        let keys = TokenKeys::hs256(&[b'k'; MIN_SECRET_LEN]).expect("32 bytes is the minimum");
        let token = keys
            .sign("alice", "s1", Utc::now() + chrono::TimeDelta::minutes(5))
            .unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, "alice");
    }

    #[test]
    fn a_refusal_names_its_kind_never_the_tokens_text() {
        let keys = TokenKeys::hs256(&[b'k'; MIN_SECRET_LEN]).unwrap();
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256\nFORGED","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"a","sid":"s","iat":0,"exp":9999999999}"#);
        let refused = keys
            .verify(&format!("{header}.{payload}.c2ln"))
            .unwrap_err();
        assert_eq!(refused, TokenError::Malformed);
        assert!(!refused.to_string().contains("FORGED"));
    }
}
