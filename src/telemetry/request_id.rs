//! The id every request gets and every answer carries in `X-Request-Id`.

use actix_web::http::header::HeaderValue;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
/// What a request id looks like; a caller's id that does not is replaced.
pub const REQUEST_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when it is well formed (1 to 64 of `A-Za-z0-9._-`),
    /// else `None`.
    pub fn from_client(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        well_formed.then(|| Self(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
