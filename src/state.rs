//! What every request handler shares.

use std::time::Duration;

use crate::{auth::TokenKeys, cursor::CursorKey, db::Db};

/// Durations that shape the operations, configurable at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long `trustDevice` trusts a device.
    pub trust_period: Duration,
    /// How far `sessionHeartbeat` moves a session's expiry.
    pub session_extension: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            trust_period: Duration::from_secs(30 * 24 * 3600),
            session_extension: Duration::from_secs(24 * 3600),
        }
    }
}

pub struct AppState {
    pub db: Db,
    pub tokens: TokenKeys,
    pub policy: Policy,
    /// Signs the page cursors of `listSecurityEvents` (see `CursorKey::load`).
    pub cursor_key: CursorKey,
}
