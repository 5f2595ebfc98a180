//! The request a piece of code is working for, without passing it around.
//!
//! [`super::instrument`] runs the rest of the request's handling (the other
//! middleware, the extractors, the handler) inside [`RequestContext::scope`],
//! a `tokio::task_local!` that actix's worker sees while it polls that
//! future. So the logger can stamp every line with the request's id, and the
//! rate limiter and the 401 paths can say why they refused the request,
//! without any of them knowing about the other.
//!
//! Database calls run on other threads (`web::block`); [`Carried`] takes the
//! context along, into a thread-local for the duration of the call. Code
//! that runs for no request (start-up, the pool's own threads) sees none, and
//! its log lines carry no id.

use std::{
    cell::RefCell,
    future::Future,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

use super::RequestId;

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

thread_local! {
    /// The request a blocking-pool thread is working for (see [`Carried`]).
    static CARRIED: RefCell<Option<Arc<RequestContext>>> = const { RefCell::new(None) };
}

/// Why a request was refused before its operation ran, as the metrics count
/// it (`flashback_http_rate_limited_total`, `flashback_auth_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// 429 from the rate limiter.
    RateLimited = 1,
    /// 401: no `Authorization` header.
    MissingToken = 2,
    /// 401: a token that is malformed, badly signed, expired or otherwise
    /// refused before any database call.
    BadToken = 3,
    /// 401: a valid token whose session is revoked, expired or unknown.
    InactiveSession = 4,
}

impl Refusal {
    /// The `reason` label of a 401.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::MissingToken => "missing_token",
            Refusal::BadToken => "bad_token",
            Refusal::InactiveSession => "inactive_session",
        }
    }

    /// The three reasons of a 401, in the order the metrics list them.
    pub const UNAUTHORIZED: [Refusal; 3] = [
        Refusal::MissingToken,
        Refusal::BadToken,
        Refusal::InactiveSession,
    ];

    fn from_code(code: u8) -> Option<Self> {
        [
            Refusal::RateLimited,
            Refusal::MissingToken,
            Refusal::BadToken,
            Refusal::InactiveSession,
        ]
        .into_iter()
        .find(|r| *r as u8 == code)
    }
}

/// One request, as its log lines and metrics see it.
#[derive(Debug)]
pub struct RequestContext {
    id: RequestId,
    /// The spec operation the request was routed to, if any.
    operation_id: Option<&'static str>,
    /// A [`Refusal`] code, 0 for none.
    refusal: AtomicU8,
}

impl RequestContext {
    pub fn new(id: RequestId, operation_id: Option<&'static str>) -> Arc<Self> {
        Arc::new(Self {
            id,
            operation_id,
            refusal: AtomicU8::new(0),
        })
    }

    pub fn id(&self) -> &RequestId {
        &self.id
    }

    pub fn operation_id(&self) -> Option<&'static str> {
        self.operation_id
    }

    pub fn refusal(&self) -> Option<Refusal> {
        Refusal::from_code(self.refusal.load(Ordering::Relaxed))
    }

    /// Runs `future` as the work of this request.
    pub fn scope<F: Future>(self: Arc<Self>, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` as the work of this request (for lines written after the
    /// request's future is done, such as the access log line).
    pub fn sync_scope<T>(self: Arc<Self>, f: impl FnOnce() -> T) -> T {
        CURRENT.sync_scope(self, f)
    }
}

/// The request the calling code works for, if any.
pub fn current() -> Option<Arc<RequestContext>> {
    CURRENT
        .try_with(Arc::clone)
        .ok()
        .or_else(|| CARRIED.with(|carried| carried.borrow().clone()))
}

/// Records why the current request is being refused; nothing outside a request.
pub fn note_refusal(refusal: Refusal) {
    if let Some(context) = current() {
        context.refusal.store(refusal as u8, Ordering::Relaxed);
    }
}

/// The current request, taken along to another thread.
#[must_use]
#[derive(Clone)]
pub struct Carried(Option<Arc<RequestContext>>);

impl Carried {
    /// Takes the calling code's request (if any) along.
    pub fn capture() -> Self {
        Self(current())
    }

    /// Runs `f` on this thread as the work of the captured request.
    pub fn run<T>(self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Arc<RequestContext>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CARRIED.with(|carried| *carried.borrow_mut() = previous);
            }
        }
        let previous = CARRIED.with(|carried| carried.replace(self.0));
        let _restore = Restore(previous);
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_is_seen_in_its_future_and_on_the_threads_it_hands_work_to() {
        assert!(current().is_none(), "no request outside one");
        let context = RequestContext::new(RequestId::new_random(), Some("listDevices"));
        let id = context.id().clone();
        let (inside, on_thread) = context
            .scope(async {
                note_refusal(Refusal::BadToken);
                let carried = Carried::capture();
                let on_thread = std::thread::spawn(move || {
                    let before = current().is_some();
                    let during = carried.run(|| current().map(|c| c.id().clone()));
                    let after = current().is_some();
                    (before, during, after)
                })
                .join()
                .unwrap();
                (current().map(|c| c.id().clone()), on_thread)
            })
            .await;
        assert_eq!(inside, Some(id.clone()));
        assert_eq!(on_thread, (false, Some(id), false));
        assert!(current().is_none(), "the scope ended with the future");
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_on_the_request_only() {
        note_refusal(Refusal::MissingToken); // outside any request: nowhere
        let context = RequestContext::new(RequestId::new_random(), None);
        assert_eq!(context.refusal(), None);
        context
            .clone()
            .scope(async { note_refusal(Refusal::InactiveSession) })
            .await;
        assert_eq!(context.refusal(), Some(Refusal::InactiveSession));
    }
}
