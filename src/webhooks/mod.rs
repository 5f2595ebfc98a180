//! Signed webhooks of security events, at least once, from a transactional
//! outbox.
//!
//! The write that records a security event also inserts one pending row per
//! endpoint into `webhook_deliveries` (`db::webhook_deliveries::enqueue`, in
//! the same transaction). [`dispatch::run`] runs beside the server, off the
//! request path: it leases due rows, POSTs them signed as the Standard
//! Webhooks specification says ([`sign`]), and records each outcome; a
//! failed attempt is retried with exponential backoff and jitter until
//! [`WebhookSettings::give_up_after`], then the row is marked failed.

pub mod dispatch;
pub mod sign;

use std::time::Duration;

pub use self::sign::{SecretError, WebhookSecret};
use crate::config::ServeArgs;

/// How deliveries are made. [`WebhookSettings::new`] has the production
/// values; tests shorten the times.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where every event goes (http or https).
    pub urls: Vec<String>,
    pub secret: WebhookSecret,
    /// One attempt's limit, connection included.
    pub timeout: Duration,
    /// The first retry's delay; each further one doubles it, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Retried until this long after the event was enqueued, then failed.
    pub give_up_after: Duration,
    /// How often an idle dispatcher looks for work (an event recorded by
    /// this process wakes it at once).
    pub poll_interval: Duration,
    /// Deliveries one claim leases at most. More is not faster: one user's
    /// deliveries of a claim go one after the other, so one large claim took
    /// longer to send than several small ones (`bench/run --webhooks` on
    /// PostgreSQL, measured: docs/performance.md).
    pub batch: i64,
}

/// Deliveries of one user one claim leases at most: they are sent one
/// after the other, so the lease covers this many attempts (and one more).
pub const PER_USER_PER_CLAIM: usize = 5;

impl WebhookSettings {
    pub fn new(urls: Vec<String>, secret: WebhookSecret) -> Self {
        Self {
            urls,
            secret,
            timeout: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_millis(500),
            batch: 100,
        }
    }

    /// The settings of the command line's options; `None` without
    /// WEBHOOK_URLS. A secret that is set is checked even then, so a typo is
    /// found before it matters.
    pub fn from_args(args: &ServeArgs) -> Result<Option<Self>, String> {
        let urls = parse_urls(&args.webhook_urls)?;
        let secret = match args.webhook_secret.trim() {
            "" => None,
            text => Some(WebhookSecret::parse(text).map_err(|e| e.to_string())?),
        };
        if urls.is_empty() {
            return Ok(None);
        }
        let secret = secret.ok_or(
            "WEBHOOK_SECRET is required with WEBHOOK_URLS (generate one with `flashback-devices webhook secret`)",
        )?;
        // Bounded so that no sum of times in the dispatcher can leave the
        // range of a date (a year is far beyond any sensible value).
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        let millis = |name: &str, value: u64| {
            (1..=YEAR_MS)
                .contains(&value)
                .then(|| Duration::from_millis(value))
                .ok_or(format!("{name} must be more than 0 and at most a year"))
        };
        let mut settings = Self::new(urls, secret);
        settings.timeout = millis("WEBHOOK_TIMEOUT_MS", args.webhook_timeout_ms)?;
        settings.retry_base = millis("WEBHOOK_RETRY_BASE_MS", args.webhook_retry_base_ms)?;
        settings.retry_max = millis("WEBHOOK_RETRY_MAX_MS", args.webhook_retry_max_ms)?;
        if args.webhook_give_up_after_secs > YEAR_MS / 1000 {
            return Err("WEBHOOK_GIVE_UP_AFTER_SECS must be at most a year".into());
        }
        settings.give_up_after = Duration::from_secs(args.webhook_give_up_after_secs);
        settings.poll_interval = millis("WEBHOOK_POLL_MS", args.webhook_poll_ms)?;
        Ok(Some(settings))
    }

    /// How long a claim holds its deliveries: every attempt it may make
    /// with room to spare. A server killed mid-flight holds them this long
    /// at most; then another (or the restarted one) sends them again.
    pub fn lease(&self) -> Duration {
        self.timeout * (PER_USER_PER_CLAIM as u32 + 1)
    }
}

/// Makes `urls` the endpoints every event recorded from now on is fanned
/// out to, by any process on this database (none: webhooks off), and fails
/// the pending deliveries to URLs that are no longer endpoints. Blocking.
///
/// The endpoints are one set per database: the last server to start sets
/// them for all. A server whose own list differs from it afterwards says so
/// (`dispatch`: a warning and `flashback_webhook_endpoints_disagreement`).
pub fn set_endpoints(db: &crate::db::Db, urls: &[String]) -> Result<(), String> {
    let change = db
        .run_blocking(|conn| {
            crate::db::write_transaction(conn, |conn| {
                crate::db::webhook_deliveries::set_endpoints(conn, urls)
            })
        })
        .map_err(|e| format!("cannot set the webhook endpoints: {e}"))?;
    let mut sorted = urls.to_vec();
    sorted.sort();
    if change.previous != sorted {
        log::info!(
            "webhooks: the endpoints of every server on this database are now [{}] (were [{}])",
            list(&sorted),
            list(&change.previous)
        );
    }
    for (url, count) in &change.expired {
        log::warn!(
            "webhooks: {count} pending deliveries to {} failed: the URL is no longer in WEBHOOK_URLS",
            redact(url)
        );
    }
    Ok(())
}

/// URLs as logs may show them, comma-separated.
pub(crate) fn list(urls: &[String]) -> String {
    urls.iter()
        .map(|u| redact(u))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `WEBHOOK_URLS`: comma-separated http(s) URLs; empty: none.
pub fn parse_urls(text: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = url::Url::parse(entry)
            .map_err(|e| format!("WEBHOOK_URLS: `{}` is not a URL: {e}", redact(entry)))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "WEBHOOK_URLS: `{}` is not an http or https URL",
                redact(entry)
            ));
        }
        if !urls.contains(&parsed.to_string()) {
            urls.push(parsed.to_string());
        }
    }
    Ok(urls)
}

/// A URL as logs may show it: scheme, host, port and path, without the
/// user info or query that could carry a receiver's credentials.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
            parsed.path()
        ),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https() {
        assert_eq!(parse_urls(" ").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_urls("http://127.0.0.1:9/hook, https://example.com/x").unwrap(),
            vec!["http://127.0.0.1:9/hook", "https://example.com/x"]
        );
        assert!(parse_urls("ftp://example.com/").is_err());
        assert!(parse_urls("not a url").is_err());
        assert_eq!(
            redact("https://user:pw@example.com:8443/hook?token=s3cret"),
            "https://example.com:8443/hook"
        );
    }
}
