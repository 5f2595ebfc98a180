//! What operators use to watch the server and follow one request:
//!
//! - [`RequestId`]: every request gets one (the caller's `X-Request-Id` when
//!   well formed), every answer carries it back;
//! - [`context`]: the request being served, kept in a task-local for the
//!   duration of its handling, so that every log line about it carries its
//!   id ([`logging`] reads it), whichever module writes the line;
//! - [`metrics`]: the Prometheus registry, labelled by operationId and status
//!   class, never by anything a client chose;
//! - [`instrument`]: the outermost middleware that ties them together and
//!   writes the access log line.
//!
//! This module is a leaf: it knows nothing of the API, authentication or the
//! database. They report to it (`context::note_refusal`,
//! `metrics::DbMetrics`), and start-up hands it the table of operations.

pub mod context;
pub mod logging;
pub mod metrics;
mod middleware;
mod request_id;

pub use self::{
    context::{note_refusal, Refusal},
    metrics::{DbMetrics, Metrics, MetricsListener, PoolState, WebhookMetrics},
    middleware::{instrument, ACCESS_LOG_TARGET},
    request_id::{RequestId, REQUEST_ID_HEADER, REQUEST_ID_PATTERN},
};
