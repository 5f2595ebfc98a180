//! Standard Webhooks signatures (https://www.standardwebhooks.com): the
//! secret's form (`whsec_` + base64 of the key) and `v1` signatures, the
//! base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of a secret in the specification's form.
pub const PREFIX: &str = "whsec_";
/// Fewest key bytes accepted (the specification asks for 24 to 64).
pub const MIN_KEY_LEN: usize = 24;
/// Key bytes of a generated secret.
const GENERATED_KEY_LEN: usize = 32;

/// The signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("WEBHOOK_SECRET must start with `{PREFIX}` (generate one with `flashback-devices webhook secret`)")]
    NoPrefix,
    #[error("WEBHOOK_SECRET: the part after `{PREFIX}` is not base64")]
    NotBase64,
    #[error("WEBHOOK_SECRET must hold at least {MIN_KEY_LEN} random bytes (got {0})")]
    TooShort(usize),
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` holding at least [`MIN_KEY_LEN`] bytes.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SecretError::NoPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if key.len() < MIN_KEY_LEN {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Self { key })
    }

    /// A new random secret in the specification's form.
    pub fn generate() -> String {
        let mut key = [0u8; GENERATED_KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        format!("{PREFIX}{}", STANDARD.encode(key))
    }

    /// The `webhook-signature` header value of one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and of its
    /// reference libraries' tests.
    #[test]
    fn signs_as_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_bad_secrets() {
        assert_eq!(
            WebhookSecret::parse("abc").unwrap_err(),
            SecretError::NoPrefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::TooShort(5)
        );
        let generated = WebhookSecret::generate();
        assert!(generated.starts_with(PREFIX));
        assert!(WebhookSecret::parse(&generated).is_ok());
    }
}
