//! The writes of the API, one function per write operation: the change and
//! the security event that records it, run inside the write's transaction
//! (the closure of `Bearer::write`, or of `Db::write` for the platform
//! operations), answered with a typed outcome.
//!
//! A handler calls one of these and maps its outcome to the operation's
//! response enum (`api::respond`); the SQL itself lives in `db`, one module
//! per table. Keeping the outcome typed (rather than `bool` or `Option` with
//! a meaning known only to the handler) is what lets the handler's mapping
//! read as the spec's list of responses.

use crate::{
    api::types::SecurityEventType,
    auth::SessionOf,
    db::{events::Actor, models::SecurityEventRow},
};

pub mod devices;
pub mod sessions;
pub mod users;

/// What a write aimed at one named thing of the caller did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Changed; what the change reports.
    Done(T),
    /// The caller has no such thing (it may be another user's): nothing was
    /// changed.
    NotFound,
}

impl<T> From<Option<T>> for Outcome<T> {
    fn from(found: Option<T>) -> Self {
        match found {
            Some(value) => Self::Done(value),
            None => Self::NotFound,
        }
    }
}

/// The event of a write PostgreSQL runs as one statement as `session`,
/// made from `origin`; the statement fills in what it is about (its device,
/// session and count of revoked sessions: see `db::one_statement`).
fn statement_event(
    kind: SecurityEventType,
    session: &SessionOf,
    origin: &Actor,
) -> SecurityEventRow {
    let actor = origin.of_session(&session.session_id);
    SecurityEventRow::new(&session.user_id, kind.as_str(), &actor, session.now)
}
