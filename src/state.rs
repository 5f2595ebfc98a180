//! What every request handler shares.

use std::time::Duration;

use actix_web::{web, HttpRequest};

use crate::{config::CommonArgs, cursor::CursorKey, db::Db, tokens::TokenKeys};

/// Durations that shape the operations, configurable at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long `trustDevice` trusts a device.
    pub trust_period: Duration,
    /// How far `sessionHeartbeat` moves a session's expiry.
    pub session_extension: Duration,
    /// How long a session lasts at most from its start, whatever its
    /// heartbeats (`SESSION_MAX_LIFETIME_SECONDS`); `None`: no limit.
    pub session_max_lifetime: Option<Duration>,
    /// Active sessions a user may have; a sign-in beyond it ends the least
    /// recently active ones (`MAX_SESSIONS_PER_USER`); `None`: no limit.
    pub max_sessions_per_user: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            trust_period: Duration::from_secs(30 * 24 * 3600),
            session_extension: Duration::from_secs(24 * 3600),
            session_max_lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
            max_sessions_per_user: Some(100),
        }
    }
}

/// Registered once per listener as `web::Data<AppState>`: everything a
/// request needs, the token keys included, is read from here (see
/// [`AppState::of`]).
pub struct AppState {
    pub db: Db,
    pub tokens: TokenKeys,
    pub policy: Policy,
    /// Signs the page cursors of `listSecurityEvents` (see `CursorKey::load`).
    pub cursor_key: CursorKey,
}

impl AppState {
    /// The state of the application serving `request` (`None` on the
    /// metrics listener, which has none).
    pub fn of(request: &HttpRequest) -> Option<&Self> {
        request
            .app_data::<web::Data<Self>>()
            .map(|state| state.get_ref())
    }
}

impl Policy {
    /// The policy of the command line's options (`TRUST_PERIOD_DAYS`, ...).
    pub fn from_args(args: &CommonArgs) -> Self {
        Self {
            trust_period: Duration::from_secs(u64::from(args.trust_period_days) * 24 * 3600),
            session_extension: Duration::from_secs(args.session_extension_seconds),
            session_max_lifetime: (args.session_max_lifetime_seconds > 0)
                .then(|| Duration::from_secs(args.session_max_lifetime_seconds)),
            max_sessions_per_user: (args.max_sessions_per_user > 0)
                .then_some(args.max_sessions_per_user),
        }
    }

    /// A session's absolute lifetime, as date arithmetic takes it; `None`
    /// when sessions have none.
    pub fn max_lifetime(&self) -> Option<chrono::TimeDelta> {
        self.session_max_lifetime
            .and_then(|max| chrono::TimeDelta::from_std(max).ok())
    }

    /// The expiry of a session that started at `started_at`, asked to last
    /// until `wanted`: never beyond its absolute lifetime.
    pub fn cap_expiry(
        &self,
        started_at: chrono::NaiveDateTime,
        wanted: chrono::NaiveDateTime,
    ) -> chrono::NaiveDateTime {
        match self.max_lifetime() {
            Some(max) => wanted.min(started_at + max),
            None => wanted,
        }
    }
}
