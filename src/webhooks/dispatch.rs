//! The dispatcher: one loop per endpoint, beside the server, that leases due
//! deliveries, sends them, and records what happened.
//!
//! Every database call goes through [`Db::write`] / [`Db::run`] (the
//! blocking pool), never on an actix worker; a slow or dead receiver only
//! holds this loop, never a request.
//!
//! A claim takes up to `batch` due deliveries; the deliveries of different
//! users are sent concurrently, those of one user one after the other in
//! event order, stopping at the first that fails (the rest go back to
//! pending, behind it). Outcomes are written after the batch: a crash before
//! that re-sends the batch (at least once: receivers deduplicate by
//! `webhook-id`).
//!
//! On PostgreSQL, where several servers dispatch, a claim leases its rows
//! ([`WebhookSettings::lease`]) in a write, and a crashed server's batch is
//! sent again once its lease expires. On SQLite one process dispatches: the
//! dispatcher first takes an exclusive lock on a file beside the database
//! (another server on the same file waits for it), so nothing else can
//! claim, and a claim is a read on the blocking pool: no lease is written,
//! and the one write lock that the requests wait for is taken only to
//! record outcomes. A crashed server's batch is sent again at its restart.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::{NaiveDateTime, TimeDelta};
use futures_util::{
    future::{join_all, select, Either},
    StreamExt,
};
use rand::Rng;

use super::{redact, WebhookSettings, PER_USER_PER_CLAIM};
use crate::{
    api::{
        types::{SecurityEventWebhook, SecurityEventWebhookData},
        views::security_event,
    },
    db::{
        self,
        webhook_deliveries::{self as outbox, Claimed, Outcome},
        Db,
    },
    telemetry::WebhookMetrics,
};

/// How long an idle dispatcher waits after the first event that wakes it
/// before it claims: at most 20 claims a second while events trickle in.
/// On SQLite each claim and each settling of outcomes is a turn of the one
/// write lock the requests wait for, so claiming at once on every event took
/// throughput from the untrusts that raise them (`bench/run --webhooks`,
/// measured: docs/performance.md).
const GATHER: Duration = Duration::from_millis(50);

/// Attempts in flight at once to one endpoint (users side by side).
const CONCURRENCY: usize = 64;

/// How often the pending and failed gauges are recounted, and the
/// database's endpoints compared with this server's.
const COUNT_INTERVAL: Duration = Duration::from_secs(2);

/// Runs for ever (the caller drops it to stop: an attempt in flight is cut
/// off, and its delivery is sent again once its lease expires).
pub async fn run(db: Db, settings: WebhookSettings, metrics: WebhookMetrics) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.timeout)
        .user_agent(concat!("flashback-devices/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            log::error!("webhooks: cannot build the HTTP client: {e}; no deliveries");
            return;
        }
    };
    let loops = async {
        let _dispatching = match db.sqlite_file() {
            Some(file) => Some(dispatcher_lock(file, settings.poll_interval).await),
            None => None,
        };
        let endpoints: Vec<Endpoint> = settings
            .urls
            .iter()
            .map(|url| Endpoint {
                db: &db,
                settings: &settings,
                metrics: &metrics,
                client: &client,
                url,
            })
            .collect();
        let settings = &settings;
        join_all(endpoints.iter().map(|endpoint| {
            let name = format!("webhooks to {}", redact(endpoint.url));
            async move { supervised(&name, settings, || endpoint.run()).await }
        }))
        .await
    };
    let counting = supervised("webhook counts", &settings, || {
        count_for_ever(&db, &settings, &metrics)
    });
    futures_util::future::join(loops, counting).await;
}

/// Runs `task` again, after a pause, whenever it panics: a bug in one loop
/// of the dispatcher is logged and costs that loop a moment, never the
/// server (whose process the dispatcher shares) nor the other loops.
async fn supervised<F, Fut>(name: &str, settings: &WebhookSettings, task: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::FutureExt;
    loop {
        if std::panic::AssertUnwindSafe(task())
            .catch_unwind()
            .await
            .is_ok()
        {
            return;
        }
        log::error!("{name}: the loop panicked; it starts again");
        actix_web::rt::time::sleep(settings.poll_interval.max(Duration::from_secs(1))).await;
    }
}

/// Waits until this process is the one that dispatches the webhooks of the
/// SQLite database at `file`: holds an exclusive lock on `<file>-webhooks`
/// (released by the kernel when the process ends, even by kill -9).
async fn dispatcher_lock(file: &std::path::Path, poll: Duration) -> std::fs::File {
    let mut path = file.as_os_str().to_owned();
    path.push("-webhooks");
    let lock = match std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
        0o600,
    )
    .open(&path)
    {
        Ok(lock) => lock,
        Err(e) => {
            log::error!(
                "webhooks: cannot open the dispatcher lock {}: {e}; no deliveries",
                std::path::Path::new(&path).display()
            );
            return std::future::pending().await;
        }
    };
    let mut told = false;
    loop {
        match lock.try_lock() {
            Ok(()) => {
                if told {
                    log::info!("webhooks: this server dispatches now");
                }
                return lock;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if !told {
                    log::info!(
                        "webhooks: another process dispatches this database's webhooks; \
                         this server takes over when that process stops"
                    );
                    told = true;
                }
            }
            Err(std::fs::TryLockError::Error(e)) => {
                log::warn!(
                    "webhooks: cannot lock {}: {e}",
                    std::path::Path::new(&path).display()
                );
            }
        }
        actix_web::rt::time::sleep(poll).await;
    }
}

async fn count_for_ever(db: &Db, settings: &WebhookSettings, metrics: &WebhookMetrics) {
    let mut ours = settings.urls.clone();
    ours.sort();
    let mut disagreed = false;
    loop {
        match db.run(outbox::backlog).await {
            Ok(counts) => metrics.set_counts(counts.pending, counts.failed),
            Err(e) => log::debug!("webhooks: cannot count deliveries: {e}"),
        }
        // Another server that started later with other WEBHOOK_URLS has
        // replaced the endpoints for every server: this one's events go
        // where that one's list says, and its own list only to what is
        // still pending of it. Said once per change, and in the gauge.
        match db.run(outbox::endpoints).await {
            Ok(theirs) => {
                let disagrees = theirs != ours;
                if disagrees && !disagreed {
                    log::warn!(
                        "webhooks: the database's endpoints [{}] differ from this server's                          WEBHOOK_URLS [{}]: another server started with other WEBHOOK_URLS, and                          every server's events now go to its endpoints; give all servers the                          same WEBHOOK_URLS",
                        super::list(&theirs),
                        super::list(&ours)
                    );
                } else if disagreed && !disagrees {
                    log::info!("webhooks: the database's endpoints are this server's again");
                }
                disagreed = disagrees;
                metrics.set_disagreement(disagrees);
            }
            Err(e) => log::debug!("webhooks: cannot read the endpoints: {e}"),
        }
        actix_web::rt::time::sleep(COUNT_INTERVAL).await;
    }
}

struct Endpoint<'a> {
    db: &'a Db,
    settings: &'a WebhookSettings,
    metrics: &'a WebhookMetrics,
    client: &'a reqwest::Client,
    url: &'a String,
}

/// Why one attempt did not deliver.
struct Failure {
    error: String,
    /// The receiver's `Retry-After` (on 429 and 503).
    retry_after: Option<Duration>,
}

impl Endpoint<'_> {
    async fn run(&self) {
        let mut hints = outbox::enqueued_hints();
        loop {
            let claimed_at = Instant::now();
            match self.claim().await {
                Ok(batch) if !batch.is_empty() => {
                    let full = batch.len() as i64 >= self.settings.batch;
                    self.deliver(batch, later(claimed_at, self.settings.lease()))
                        .await;
                    if full {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => log::warn!(
                    "webhooks to {}: cannot claim deliveries: {e}",
                    redact(self.url)
                ),
            }
            // Idle: until the next poll, or until this process enqueues.
            let hinted = {
                let poll = std::pin::pin!(actix_web::rt::time::sleep(self.settings.poll_interval));
                let hint = std::pin::pin!(hints.changed());
                matches!(select(poll, hint).await, Either::Right((Ok(()), _)))
            };
            if hinted {
                // The hint is given inside the recording transaction: let it
                // commit, and let a few more events gather, so that under load
                // a claim (a write transaction: on SQLite, a turn of the one
                // write lock the requests also wait for) takes many rows at once.
                actix_web::rt::time::sleep(GATHER).await;
            }
        }
    }

    async fn claim(&self) -> Result<Vec<Claimed>, db::DbError> {
        let url = self.url.clone();
        let lease = self.settings.lease();
        let limit = self.settings.batch;
        if self.db.sqlite_file().is_some() {
            return self
                .db
                .run(move |conn| outbox::due(conn, &url, db::now(), limit, PER_USER_PER_CLAIM))
                .await;
        }
        self.db
            .write(move |conn| {
                let now = db::now();
                outbox::claim(conn, &url, now, add(now, lease), limit, PER_USER_PER_CLAIM)
            })
            .await
    }

    /// Sends a claimed batch (each user's deliveries in order, users side by
    /// side) and records the outcomes. `lease_end`: no attempt starts that
    /// could outlast it.
    async fn deliver(&self, batch: Vec<Claimed>, lease_end: Instant) {
        let mut by_user: Vec<Vec<Claimed>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for claimed in batch {
            let slot = *index.entry(claimed.user_id.clone()).or_insert_with(|| {
                by_user.push(Vec::new());
                by_user.len() - 1
            });
            by_user[slot].push(claimed);
        }
        let outcomes: Vec<(String, Outcome)> = futures_util::stream::iter(
            by_user
                .into_iter()
                .map(|user| self.deliver_in_order(user, lease_end)),
        )
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
        for (event_id, outcome) in &outcomes {
            if let Outcome::GiveUp { error } = outcome {
                log::warn!(
                    "webhook delivery of event {event_id} to {} failed for good: {error}",
                    redact(self.url)
                );
            }
        }
        let url = self.url.clone();
        let settled = self
            .db
            .write(move |conn| outbox::settle(conn, &url, &outcomes, db::now()))
            .await;
        if let Err(e) = settled {
            // The leases expire and the batch is sent again: duplicates, no loss.
            log::warn!(
                "webhooks to {}: cannot record delivery outcomes: {e}",
                redact(self.url)
            );
        }
    }

    async fn deliver_in_order(
        &self,
        deliveries: Vec<Claimed>,
        lease_end: Instant,
    ) -> Vec<(String, Outcome)> {
        let mut outcomes = Vec::with_capacity(deliveries.len());
        let mut held_back = false;
        for claimed in deliveries {
            if held_back || later(Instant::now(), self.settings.timeout) >= lease_end {
                held_back = true;
                outcomes.push((claimed.event_id, Outcome::Release));
                continue;
            }
            let outcome = self.attempt_isolated(&claimed).await;
            held_back = !matches!(outcome, Outcome::Delivered);
            outcomes.push((claimed.event_id, outcome));
        }
        outcomes
    }

    /// [`Endpoint::attempt`], with a panic in it (a bug, or a receiver's
    /// answer that some code path did not expect) made a failed attempt of
    /// this one delivery, retried later: never the end of the dispatcher or
    /// of the process, which would stop every other delivery and, since the
    /// delivery stays pending, do it again at the next start.
    async fn attempt_isolated(&self, claimed: &Claimed) -> Outcome {
        use futures_util::FutureExt;
        match std::panic::AssertUnwindSafe(self.attempt(claimed))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                log::error!(
                    "webhook delivery of event {} to {}: the attempt panicked ({what}); retried later",
                    claimed.event_id,
                    redact(self.url)
                );
                let failure = Failure {
                    error: "internal error while sending".into(),
                    retry_after: None,
                };
                self.after_failure(claimed, failure, db::now())
            }
        }
    }

    /// One attempt, and what it means for the delivery.
    async fn attempt(&self, claimed: &Claimed) -> Outcome {
        let Some(body) = body(claimed) else {
            return Outcome::GiveUp {
                error: "the event no longer exists (or has an unknown type)".into(),
            };
        };
        match self.send(&claimed.event_id, body).await {
            Ok(()) => {
                self.metrics.record_attempt("delivered");
                let lag = (db::now() - claimed.occurred_at)
                    .to_std()
                    .unwrap_or_default();
                self.metrics.record_lag(lag);
                Outcome::Delivered
            }
            Err(failure) => self.after_failure(claimed, failure, db::now()),
        }
    }

    async fn send(&self, event_id: &str, body: Vec<u8>) -> Result<(), Failure> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.settings.secret.sign(event_id, timestamp, &body);
        let sent = self
            .client
            .post(self.url.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .timeout(self.settings.timeout)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.metrics.record_attempt("unreachable");
                let error = if e.is_timeout() {
                    format!("no answer within {:?}", self.settings.timeout)
                } else {
                    // reqwest's message names the URL; say what failed without it.
                    format!("cannot reach the endpoint: {}", e.without_url())
                };
                return Err(Failure {
                    error,
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        self.metrics.record_attempt("refused");
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        Err(Failure {
            error: format!("answered {status}"),
            retry_after,
        })
    }

    /// The next attempt's time (the receiver's `Retry-After`, else the
    /// backoff, either at most `retry_max`), or failed for good once the
    /// retry period is over. A receiver chooses `Retry-After`, so nothing it
    /// says may reach date arithmetic uncapped: a delay past the period ends
    /// at the period's last attempt.
    fn after_failure(&self, claimed: &Claimed, failure: Failure, now: NaiveDateTime) -> Outcome {
        let give_up_at = add(claimed.enqueued_at, self.settings.give_up_after);
        let attempts = u32::try_from(claimed.attempts)
            .unwrap_or(0)
            .saturating_add(1);
        if now >= give_up_at {
            return Outcome::GiveUp {
                error: format!("{} (after {attempts} attempts)", failure.error),
            };
        }
        let delay = failure
            .retry_after
            .unwrap_or_else(|| backoff(self.settings, attempts))
            .min(self.settings.retry_max);
        Outcome::Retry {
            // One last attempt at the end of the period rather than none.
            at: add(now, delay).min(give_up_at),
            error: failure.error,
        }
    }
}

/// `at + delay`, or the latest time there is when that is out of range:
/// configured periods and receivers' delays are not trusted to be small.
fn add(at: NaiveDateTime, delay: Duration) -> NaiveDateTime {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(NaiveDateTime::MAX)
}

/// `at + delay` for monotonic instants, likewise saturating (at a century,
/// which every instant here can hold).
fn later(at: Instant, delay: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(delay.min(CENTURY)).unwrap_or(at)
}

/// The body: `{type, timestamp, data}`, `data` the event as
/// `listSecurityEvents` shows it plus `userId`.
fn body(claimed: &Claimed) -> Option<Vec<u8>> {
    let event = security_event(claimed.event.clone()?)?;
    let payload = SecurityEventWebhook {
        r#type: event.r#type,
        timestamp: event.occurred_at,
        data: SecurityEventWebhookData {
            security_event: event,
            user_id: claimed.user_id.clone(),
        },
    };
    serde_json::to_vec(&payload).ok()
}

/// Exponential backoff with jitter: the `attempts`-th retry waits between
/// half and all of `retry_base × 2^(attempts-1)`, at most `retry_max`, so
/// that deliveries that failed together do not all come back together.
fn backoff(settings: &WebhookSettings, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let full = settings
        .retry_base
        .saturating_mul(1 << exponent)
        .min(settings.retry_max);
    let half = full / 2;
    half + rand::rng().random_range(Duration::ZERO..=full - half)
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::WebhookSecret;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut settings = WebhookSettings::new(
            vec![],
            WebhookSecret::parse(&WebhookSecret::generate()).unwrap(),
        );
        settings.retry_base = Duration::from_secs(1);
        settings.retry_max = Duration::from_secs(10);
        for (attempts, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (40, 10)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let delay = backoff(&settings, attempts);
                assert!(delay >= full / 2 && delay <= full, "{attempts}: {delay:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + TimeDelta::seconds(120)).to_rfc2822();
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
