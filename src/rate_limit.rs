//! The per-client rate limiter: whom a request counts against, and the
//! allowance each has. The HTTP side (`middleware::rate_limit`) charges
//! requests that never reach a session check; `auth::Bearer` charges the
//! others once the session check has judged them, so that only requests
//! of an active session spend a user's allowance: a stolen token whose
//! session was revoked cannot lock its real user out.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::DEFAULT_IPV6_PREFIX;

/// Requests per second and burst allowed to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
    /// IPv6 clients are counted by this prefix of their address: one
    /// subscriber usually holds a whole /64, and would otherwise have as
    /// many allowances as addresses.
    pub ipv6_prefix: u8,
}

impl RateLimitSettings {
    /// `None` when `per_second` is 0: rate limiting off (benchmarks).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Self {
            per_second,
            burst: NonZeroU32::new(burst).unwrap_or(per_second),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        })
    }

    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }
}

/// Whom a request counts against: the user of an active session, or else
/// the client's address (`client_addr`: the peer, or behind a trusted proxy
/// the client it forwarded; IPv6 by its prefix). Keyed by the verified
/// `sub` so a caller cannot spend another user's allowance, nor dodge its
/// own by varying the token; by the resolved address so that clients behind
/// a proxy do not share one allowance, while a forged `X-Forwarded-For` from
/// anywhere else changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    User(String),
    /// A `platform` request's service key, by name.
    Service(String),
    Address(IpAddr),
    Unknown,
}

pub struct ClientRateLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    checks: AtomicU64,
    ipv6_prefix: u8,
}

/// Forget idle clients every this many checks, so memory stays flat.
const PRUNE_EVERY: u64 = 4096;

impl ClientRateLimiter {
    pub fn new(settings: RateLimitSettings) -> Arc<Self> {
        let quota = Quota::per_second(settings.per_second).allow_burst(settings.burst);
        Arc::new(Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            ipv6_prefix: settings.ipv6_prefix,
        })
    }

    /// The key of a client address (`None`: unknown, e.g. a Unix socket).
    pub fn address_key(&self, address: Option<IpAddr>) -> ClientKey {
        match address.map(|a| a.to_canonical()) {
            None => ClientKey::Unknown,
            Some(IpAddr::V4(v4)) => ClientKey::Address(IpAddr::V4(v4)),
            Some(IpAddr::V6(v6)) => {
                let bits = u128::from(v6);
                let mask = match self.ipv6_prefix {
                    0 => 0,
                    prefix => u128::MAX << (128 - u32::from(prefix.min(128))),
                };
                ClientKey::Address(IpAddr::V6((bits & mask).into()))
            }
        }
    }

    /// Spends one request of `key`'s allowance; `Err(seconds to wait)`,
    /// at least 1, when it is spent.
    pub fn check(&self, key: &ClientKey) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

/// What a session check needs to charge its request: the limiter and the
/// client's address key (charged when the session turns out not active).
#[derive(Clone)]
pub struct Charge {
    pub limiter: Arc<ClientRateLimiter>,
    pub address: ClientKey,
}

impl Charge {
    /// Charges the user of an active session.
    pub fn user(&self, user_id: &str) -> Result<(), u64> {
        self.limiter.check(&ClientKey::User(user_id.to_owned()))
    }

    /// Charges the client's address, for a token that was refused.
    pub fn address(&self) -> Result<(), u64> {
        self.limiter.check(&self.address)
    }
}

/// Set on a request once something charged it, so the middleware does not
/// charge it again.
#[derive(Debug, Clone, Copy)]
pub struct Charged;

/// Set on a request that a session check refused for its rate: the
/// seconds for `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_prefix() {
        let limiter = ClientRateLimiter::new(RateLimitSettings::new(1, 1).unwrap());
        let key = |text: &str| limiter.address_key(Some(text.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        let whole =
            ClientRateLimiter::new(RateLimitSettings::new(1, 1).unwrap().with_ipv6_prefix(128));
        let key = |text: &str| whole.address_key(Some(text.parse().unwrap()));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:2::2"));
    }
}
