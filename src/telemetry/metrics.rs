//! The Prometheus metrics: one registry per server, served by `getMetrics`.
//!
//! Every label value comes from a fixed set: the spec's operationIds (plus
//! [`UNMATCHED`]), status classes, refusal reasons, pool states. Nothing a
//! client sends (a path, an id, a user) ever becomes a label, so the number
//! of series stays bounded however many distinct requests arrive.
//!
//! Adding series (the webhook dispatcher's deliveries, say): create the
//! `prometheus` metrics where the work happens, as [`DbMetrics`] does for the
//! database, hand clones to [`Metrics::register`] at start-up, and list them
//! in docs/operating.md ("Metrics").

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::http::StatusCode;
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::context::Refusal;

/// The `operation_id` label of requests that match no operation of the spec
/// (unknown paths, the docs, methods a path does not have). Parentheses
/// cannot occur in an operationId, so it never collides with one.
pub const UNMATCHED: &str = "(none)";

/// Seconds; from a fast in-memory answer to the slowest a client would wait.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds; an idle pool hands a connection out in microseconds.
const WAIT_BUCKETS: [f64; 12] = [
    0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0,
];
/// Writes in one committed transaction.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Seconds; a commit is at least one fsync.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Where `getMetrics` is served: on a listener of its own
/// (`METRICS_BIND_ADDR`), on the API listener only when asked
/// (`METRICS_PUBLIC`), else nowhere; a listener that does not serve them
/// answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListener {
    /// This listener serves the metrics.
    This,
    /// Another listener serves them, or none does; this one answers 404.
    NotHere,
}

/// One operation of the spec: `(METHOD, path template, operationId)`.
pub type Operation = (&'static str, &'static str, &'static str);

/// The registry of one server and the series the HTTP layer records. Cheap
/// to clone (one reference count).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    operations: Vec<Operation>,
    requests: IntCounterVec,
    duration: HistogramVec,
    rate_limited: IntCounterVec,
    auth_refusals: IntCounterVec,
    open_connections: IntGauge,
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    /// A registry with the HTTP series for `operations` and the process
    /// collector (resident memory, open file descriptors, CPU, threads).
    pub fn new(operations: impl IntoIterator<Item = Operation>) -> Self {
        let operations: Vec<Operation> = operations.into_iter().collect();
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flashback_http_requests_total",
                "HTTP requests answered, by operationId and status class.",
            ),
            &["operation_id", "status_class"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "flashback_http_request_duration_seconds",
                "Time from receiving a request to its response being ready, by operationId and status class.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation_id", "status_class"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "flashback_http_rate_limited_total",
                "Requests refused with 429 by the per-client rate limiter, by operationId.",
            ),
            &["operation_id"],
        )
        .expect("valid metric");
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "flashback_auth_refusals_total",
                "Requests answered 401, by reason: missing_token (no Authorization header), \
                 bad_token (malformed, badly signed or expired), inactive_session (the token's \
                 session is revoked, expired or unknown).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let open_connections = IntGauge::new(
            "flashback_http_open_connections",
            "HTTP connections open on the API listener.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "flashback_build_info",
                "Always 1; the version of the running server in its label.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        // Series that exist from the start read 0 instead of being absent, so
        // that `rate()` and alerts see their first increase.
        for reason in Refusal::UNAUTHORIZED {
            auth_refusals.with_label_values(&[reason.reason()]);
        }
        for (_, _, operation_id) in &operations {
            rate_limited.with_label_values(&[operation_id]);
        }

        for collector in [
            Box::new(requests.clone()) as Box<dyn Collector>,
            Box::new(duration.clone()),
            Box::new(rate_limited.clone()),
            Box::new(auth_refusals.clone()),
            Box::new(open_connections.clone()),
            Box::new(build_info),
        ] {
            registry.register(collector).expect("distinct metric names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(ProcessMetrics(
                prometheus::process_collector::ProcessCollector::for_self(),
            )))
            .expect("distinct metric names");

        Self {
            inner: Arc::new(Inner {
                registry,
                operations,
                requests,
                duration,
                rate_limited,
                auth_refusals,
                open_connections,
            }),
        }
    }

    /// Adds series recorded elsewhere (the database's, later the webhook
    /// dispatcher's) to this registry.
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        self.inner.registry.register(collector)
    }

    /// Adds the database's series, and the pool's size read at each scrape.
    pub fn register_database(
        &self,
        db: &DbMetrics,
        pool_state: impl Fn() -> PoolState + Send + Sync + 'static,
    ) -> Result<(), prometheus::Error> {
        for collector in db.collectors() {
            self.register(collector)?;
        }
        self.register(Box::new(PoolCollector::new(pool_state)))
    }

    /// Adds the webhook dispatcher's series.
    pub fn register_webhooks(&self, webhooks: &WebhookMetrics) -> Result<(), prometheus::Error> {
        for collector in webhooks.collectors() {
            self.register(collector)?;
        }
        Ok(())
    }

    /// The operationId of the operation the router serves `method` on
    /// `pattern` (the matched route's path template) with, if any.
    pub fn operation_id(&self, method: &str, pattern: &str) -> Option<&'static str> {
        self.inner
            .operations
            .iter()
            .find(|(m, path, _)| *m == method && *path == pattern)
            .map(|(_, _, id)| *id)
    }

    /// Counts one answered request.
    pub fn observe(
        &self,
        operation_id: Option<&str>,
        status: StatusCode,
        elapsed: Duration,
        refusal: Option<Refusal>,
    ) {
        let operation_id = operation_id.unwrap_or(UNMATCHED);
        let labels = [operation_id, status_class(status)];
        self.inner.requests.with_label_values(&labels).inc();
        self.inner
            .duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        match refusal {
            None => {}
            Some(Refusal::RateLimited) => self
                .inner
                .rate_limited
                .with_label_values(&[operation_id])
                .inc(),
            Some(reason) => self
                .inner
                .auth_refusals
                .with_label_values(&[reason.reason()])
                .inc(),
        }
    }

    /// Counts an open connection until the guard is dropped (when the
    /// connection closes: it lives in the connection's extensions).
    pub fn connection_guard(&self) -> ConnectionGuard {
        self.inner.open_connections.inc();
        ConnectionGuard(self.inner.open_connections.clone())
    }

    /// Every series, in the Prometheus text format ([`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .expect("the text encoder writes to a String");
        text
    }

    /// The media type of [`Metrics::render`]'s output.
    pub fn content_type() -> String {
        TextEncoder::new().format_type().to_owned()
    }
}

/// Decrements the open-connections gauge when the connection it belongs to closes.
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The database's series, recorded by `db` where the waiting and committing
/// happen. Created unregistered with the pool; start-up adds them to the
/// server's registry ([`Metrics::register_database`]).
#[derive(Clone)]
pub struct DbMetrics {
    thread_wait: Histogram,
    pool_wait: Histogram,
    pool_timeouts: IntCounter,
    commit_writes: Histogram,
    commit_duration: Histogram,
}

impl Default for DbMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DbMetrics {
    pub fn new() -> Self {
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric")
        };
        Self {
            thread_wait: histogram(
                "flashback_db_thread_wait_seconds",
                "Time a database call waited for a database thread (BLOCKING_THREADS per worker), or a write in the writer's queue.",
                &WAIT_BUCKETS,
            ),
            pool_wait: histogram(
                "flashback_db_pool_wait_seconds",
                "Time a database call waited for a pooled connection (DB_POOL_SIZE), timeouts included.",
                &WAIT_BUCKETS,
            ),
            pool_timeouts: IntCounter::new(
                "flashback_db_pool_timeouts_total",
                "Database calls that got no connection within DB_POOL_TIMEOUT_MS (answered 503).",
            )
            .expect("valid metric"),
            commit_writes: histogram(
                "flashback_db_commit_writes",
                "Writes (requests' changes) made durable by one commit.",
                &BATCH_BUCKETS,
            ),
            commit_duration: histogram(
                "flashback_db_commit_duration_seconds",
                "Time one write transaction took, from its start to the end of its commit.",
                &COMMIT_BUCKETS,
            ),
        }
    }

    /// A call waited `wait` for a database thread.
    pub fn record_thread_wait(&self, wait: Duration) {
        self.thread_wait.observe(wait.as_secs_f64());
    }

    /// A call asked the pool for a connection at `asked`; `got` says whether
    /// it got one before its deadline.
    pub fn record_pool_wait(&self, asked: Instant, got: bool) {
        self.pool_wait.observe(asked.elapsed().as_secs_f64());
        if !got {
            self.pool_timeouts.inc();
        }
    }

    /// A call gave up before it could even ask the pool (its deadline passed
    /// while it waited for a thread).
    pub fn record_timeout(&self) {
        self.pool_timeouts.inc();
    }

    /// One transaction committed `writes` writes in `latency` (for the
    /// group-commit writer: the whole group, from its start to its commit).
    pub fn record_commit(&self, writes: usize, latency: Duration) {
        self.commit_writes.observe(writes as f64);
        self.commit_duration.observe(latency.as_secs_f64());
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.thread_wait.clone()),
            Box::new(self.pool_wait.clone()),
            Box::new(self.pool_timeouts.clone()),
            Box::new(self.commit_writes.clone()),
            Box::new(self.commit_duration.clone()),
        ]
    }
}

/// Seconds from an event to its delivery's 2xx: from a local sink under no
/// load to retries over hours.
const LAG_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 600.0, 3600.0,
];

/// The webhook dispatcher's series, recorded by `webhooks::dispatch`.
/// Created unregistered; start-up adds them ([`Metrics::register_webhooks`]).
#[derive(Clone)]
pub struct WebhookMetrics {
    pending: IntGauge,
    failed: IntGauge,
    lag: Histogram,
    attempts: IntCounterVec,
    disagreement: IntGauge,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookMetrics {
    /// The results an attempt is counted under.
    pub const RESULTS: [&'static str; 3] = ["delivered", "refused", "unreachable"];

    pub fn new() -> Self {
        let attempts = IntCounterVec::new(
            Opts::new(
                "flashback_webhook_attempts_total",
                "Webhook delivery attempts, by result: delivered (2xx), refused (another \
                 status), unreachable (network error or timeout).",
            ),
            &["result"],
        )
        .expect("valid metric");
        for result in Self::RESULTS {
            attempts.with_label_values(&[result]);
        }
        Self {
            pending: IntGauge::new(
                "flashback_webhook_deliveries_pending",
                "Webhook deliveries not yet acknowledged nor given up (all servers of the database), as last counted.",
            )
            .expect("valid metric"),
            failed: IntGauge::new(
                "flashback_webhook_deliveries_failed",
                "Webhook deliveries given up after the retry period, until `webhook retry` (all servers), as last counted.",
            )
            .expect("valid metric"),
            lag: Histogram::with_opts(
                HistogramOpts::new(
                    "flashback_webhook_delivery_lag_seconds",
                    "Time from a security event to its webhook delivery's 2xx answer.",
                )
                .buckets(LAG_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            attempts,
            disagreement: IntGauge::new(
                "flashback_webhook_endpoints_disagreement",
                "1 while this server's WEBHOOK_URLS differ from the endpoints in the database \
                 (those of the server of the database that started last, which every server's \
                 events go to), else 0.",
            )
            .expect("valid metric"),
        }
    }

    /// Whether this server's endpoints differ from the database's.
    pub fn set_disagreement(&self, disagrees: bool) {
        self.disagreement.set(i64::from(disagrees));
    }

    /// The outbox's pending and failed rows, as counted now.
    pub fn set_counts(&self, pending: i64, failed: i64) {
        self.pending.set(pending);
        self.failed.set(failed);
    }

    /// One attempt ended with `result` (one of [`Self::RESULTS`]).
    pub fn record_attempt(&self, result: &'static str) {
        self.attempts.with_label_values(&[result]).inc();
    }

    /// A delivery was acknowledged `lag` after its event.
    pub fn record_lag(&self, lag: Duration) {
        self.lag.observe(lag.as_secs_f64());
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.pending.clone()),
            Box::new(self.failed.clone()),
            Box::new(self.lag.clone()),
            Box::new(self.attempts.clone()),
            Box::new(self.disagreement.clone()),
        ]
    }
}

/// The pool's connections at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections the pool may open at most (`DB_POOL_SIZE`).
    pub max_size: u32,
    /// Connections open now, idle or in use.
    pub connections: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
}

/// Reads the pool's state at each scrape.
struct PoolCollector {
    read: Box<dyn Fn() -> PoolState + Send + Sync>,
    max: IntGauge,
    connections: IntGaugeVec,
}

impl PoolCollector {
    fn new(read: impl Fn() -> PoolState + Send + Sync + 'static) -> Self {
        Self {
            read: Box::new(read),
            max: IntGauge::new(
                "flashback_db_pool_max_connections",
                "Connections the database pool may open at most (DB_POOL_SIZE).",
            )
            .expect("valid metric"),
            connections: IntGaugeVec::new(
                Opts::new(
                    "flashback_db_pool_connections",
                    "Open database connections, by state (idle in the pool, or in use).",
                ),
                &["state"],
            )
            .expect("valid metric"),
        }
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.max
            .desc()
            .into_iter()
            .chain(self.connections.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = (self.read)();
        self.max.set(i64::from(state.max_size));
        self.connections
            .with_label_values(&["idle"])
            .set(i64::from(state.idle));
        self.connections
            .with_label_values(&["in_use"])
            .set(i64::from(state.connections.saturating_sub(state.idle)));
        self.max
            .collect()
            .into_iter()
            .chain(self.connections.collect())
            .collect()
    }
}

/// The process collector's series, with `process_cpu_seconds_total` to the
/// clock tick: the collector divides the ticks by the tick rate in integers,
/// so its counter moves by whole seconds, and a `rate()` over a minute of a
/// lightly loaded server reads 0 or 1/60.
#[cfg(target_os = "linux")]
struct ProcessMetrics(prometheus::process_collector::ProcessCollector);

#[cfg(target_os = "linux")]
impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.0.collect();
        let seconds = procfs::process::Process::myself()
            .and_then(|process| process.stat())
            .map(|stat| (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64);
        if let Ok(seconds) = seconds {
            for family in &mut families {
                if family.name() == "process_cpu_seconds_total" {
                    for metric in family.mut_metric() {
                        let mut counter = prometheus::proto::Counter::default();
                        counter.set_value(seconds);
                        metric.set_counter(counter);
                    }
                }
            }
        }
        families
    }
}
