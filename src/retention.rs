//! Retention of security events: a task that runs beside the server (see
//! `startup::Application::run_until_stopped`, which stops it with the
//! server) and deletes events older than `SECURITY_EVENT_RETENTION_DAYS`,
//! and webhook deliveries delivered more than a day ago.
//!
//! It deletes in small batches, each its own short write through
//! [`Db::write`]: a batch holds the write lock for a few milliseconds, and
//! requests' writes queue between batches as they would between any two
//! writes, so a backlog of millions of old events (a first start with a
//! shorter retention) costs no request more than one batch of waiting.

use std::time::Duration;

use crate::db::{self, Db};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Events older than this are deleted.
    pub max_age: Duration,
    /// Events one write deletes at most.
    pub batch: i64,
    /// Rest between two full batches, so that other writes get their turn.
    pub pause: Duration,
    /// Rest between two sweeps (a sweep ends with a batch that was not full).
    pub interval: Duration,
}

impl RetentionSettings {
    /// `days` of retention with the batch size and pacing of production;
    /// `None` for 0 (keep events for ever).
    pub fn days(days: u32) -> Option<Self> {
        (days > 0).then(|| Self {
            max_age: Duration::from_secs(u64::from(days) * 24 * 3600),
            // A batch is one job of the writer's group on SQLite: every write
            // grouped with it waits for it, so its size sets what a prune
            // adds to a request's tail (docs/performance.md, "Figures behind
            // rules in the code").
            batch: 50,
            pause: Duration::from_millis(20),
            interval: Duration::from_secs(3600),
        })
    }
}

/// Delivered webhook rows are kept this long (for `webhook status`, and to
/// look into a complaint), then deleted; pending and failed ones stay.
pub const DELIVERED_WEBHOOK_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Deletes with `prune` (a batch of at most `settings.batch` rows older than
/// `cutoff`, answering how many it deleted) until a batch is not full,
/// resting between full ones; logs what it did, naming the rows `what`.
async fn prune_in_batches<F>(
    db: &Db,
    settings: &RetentionSettings,
    what: &str,
    cutoff: chrono::NaiveDateTime,
    prune: F,
) where
    F: Fn(
            &mut db::AnyConnection,
            chrono::NaiveDateTime,
            i64,
        ) -> Result<usize, diesel::result::Error>
        + Copy
        + Send
        + 'static,
{
    let mut deleted = 0;
    loop {
        let batch = settings.batch;
        match db.write(move |conn| prune(conn, cutoff, batch)).await {
            Ok(n) => {
                deleted += n;
                if (n as i64) < batch {
                    break;
                }
                actix_web::rt::time::sleep(settings.pause).await;
            }
            Err(e) => {
                log::warn!("{what} retention: {e}; retrying in {:?}", settings.interval);
                break;
            }
        }
    }
    if deleted > 0 {
        log::info!("{what} retention: deleted {deleted} row(s) older than {cutoff}");
    }
}

/// Sweeps now, then every `interval`, for ever (the caller drops it to stop):
/// events older than the retention period, and webhook deliveries delivered
/// more than [`DELIVERED_WEBHOOK_RETENTION`] ago (pending and failed ones stay).
pub async fn run(db: Db, settings: RetentionSettings) {
    let max_age = chrono::TimeDelta::from_std(settings.max_age).unwrap_or(chrono::TimeDelta::MAX);
    let keep_delivered =
        chrono::TimeDelta::from_std(DELIVERED_WEBHOOK_RETENTION).unwrap_or_default();
    loop {
        let now = db::now();
        let cutoff = now
            .checked_sub_signed(max_age)
            .unwrap_or(chrono::NaiveDateTime::MIN);
        prune_in_batches(
            &db,
            &settings,
            "security event",
            cutoff,
            db::events::prune_before,
        )
        .await;
        prune_in_batches(
            &db,
            &settings,
            "webhook delivery",
            now - keep_delivered,
            db::webhook_deliveries::prune_delivered_before,
        )
        .await;
        actix_web::rt::time::sleep(settings.interval).await;
    }
}
