//! The page cursors of `listSecurityEvents`: a position in a user's event
//! listing, opaque to clients and signed by the server.
//!
//! A cursor is `base64url(payload ‖ tag)` without padding, where the payload
//! is a version byte, the position's timestamp (microseconds since the epoch,
//! big-endian) and the event id, and the tag is HMAC-SHA256 over a domain
//! label, the user's id and the payload. So a cursor cannot be forged or
//! edited (any change fails the tag, checked in constant time), and one
//! user's cursor means nothing in another user's listing. It carries no
//! secret: the position is not hidden, only protected.
//!
//! The key is 32 random bytes kept in the database (`server_keys`), created
//! by the first server that starts: every server of a deployment shares it,
//! a restart keeps it, and no configuration is needed (public-key JWT mode
//! has no shared secret to derive one from).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::DateTime;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::db::{self, events::EventPosition, Db, DbError};

/// The spec's `maxLength` of the `cursor` parameter.
pub const MAX_CURSOR_LEN: usize = 256;
/// The spec's `pattern` of the `cursor` parameter: base64url without padding.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+$";

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
/// Event ids are UUIDs; anything longer was not written by this server.
const MAX_ID_LEN: usize = 64;
const DOMAIN: &[u8] = b"flashback-devices security-events cursor v1";
/// The row of `server_keys` that holds the key.
const KEY_PURPOSE: &str = "security-events-cursor";

/// Why a cursor was refused; one reason for all, so that a client learns
/// nothing about what was wrong with a forged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor this server issued for this user")]
pub struct InvalidCursor;

/// Signs and checks cursors. Cheap to clone.
#[derive(Clone)]
pub struct CursorKey {
    /// Keyed once; each use clones it.
    mac: Hmac<Sha256>,
}

impl CursorKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"),
        }
    }

    /// The deployment's key, from the database (created there on first use).
    /// Blocking: call at start-up.
    pub fn load(db: &Db) -> Result<Self, DbError> {
        let hex = db.run_blocking(|conn| {
            db::server_keys::load_or_create(conn, KEY_PURPOSE, || {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
        })?;
        Ok(Self::new(hex.as_bytes()))
    }

    fn tag(&self, user_id: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        // The length first, so that user and payload cannot be re-split.
        mac.update(&(user_id.len() as u64).to_be_bytes());
        mac.update(user_id.as_bytes());
        mac.update(payload);
        mac
    }

    /// The cursor of `position` in `user_id`'s listing.
    pub fn seal(&self, user_id: &str, position: &EventPosition) -> String {
        let micros = position.occurred_at.and_utc().timestamp_micros();
        let mut bytes = Vec::with_capacity(1 + 8 + position.id.len() + TAG_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&micros.to_be_bytes());
        bytes.extend_from_slice(position.id.as_bytes());
        let tag = self.tag(user_id, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor of `user_id`'s listing stands for.
    pub fn open(&self, user_id: &str, cursor: &str) -> Result<EventPosition, InvalidCursor> {
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        if bytes.len() < 1 + 8 + 1 + TAG_LEN || bytes.len() > 1 + 8 + MAX_ID_LEN + TAG_LEN {
            return Err(InvalidCursor);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        self.tag(user_id, payload)
            .verify_slice(tag)
            .map_err(|_| InvalidCursor)?;
        // Signed by this server, so well formed; checked all the same.
        let (version, rest) = payload.split_first().ok_or(InvalidCursor)?;
        let (micros, id) = rest.split_at(8);
        if *version != VERSION {
            return Err(InvalidCursor);
        }
        let micros = i64::from_be_bytes(micros.try_into().map_err(|_| InvalidCursor)?);
        let occurred_at = DateTime::from_timestamp_micros(micros)
            .ok_or(InvalidCursor)?
            .naive_utc();
        let id = std::str::from_utf8(id)
            .map_err(|_| InvalidCursor)?
            .to_owned();
        Ok(EventPosition { occurred_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> EventPosition {
        EventPosition {
            occurred_at: DateTime::from_timestamp_micros(1_795_000_000_123_456)
                .unwrap()
                .naive_utc(),
            id: "019a8a1f-0b3c-7d4e-9f5a-6b7c8d9e0f1a".into(),
        }
    }

    #[test]
    fn a_sealed_cursor_opens_to_its_position_for_its_user_only() {
        let key = CursorKey::new(b"key one");
        let cursor = key.seal("alice", &position());
        assert!(cursor.len() <= MAX_CURSOR_LEN);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(key.open("alice", &cursor), Ok(position()));
        assert_eq!(key.open("bob", &cursor), Err(InvalidCursor));
        // Users whose ids have the same length: the user id itself is sealed,
        // not only its length.
        assert_eq!(key.open("alicf", &cursor), Err(InvalidCursor));
        assert_eq!(key.open("carol", &cursor), Err(InvalidCursor));
        assert_eq!(
            CursorKey::new(b"key two").open("alice", &cursor),
            Err(InvalidCursor)
        );
    }

    #[test]
    fn any_change_to_a_cursor_is_refused() {
        let key = CursorKey::new(b"key");
        let cursor = key.seal("alice", &position());
        let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        for index in 0..bytes.len() {
            let mut edited = bytes.clone();
            edited[index] ^= 0x01;
            let edited = URL_SAFE_NO_PAD.encode(edited);
            assert_eq!(
                key.open("alice", &edited),
                Err(InvalidCursor),
                "byte {index}"
            );
        }
        for garbled in [
            "",
            "!",
            "AAAA",
            &cursor[..cursor.len() - 1],
            &format!("{cursor}="),
        ] {
            assert_eq!(key.open("alice", garbled), Err(InvalidCursor), "{garbled}");
        }
        assert_eq!(key.open("alice", &"A".repeat(300)), Err(InvalidCursor));
    }
}
