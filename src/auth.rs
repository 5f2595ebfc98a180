//! Authentication, in one place: bearer JWTs that name a user (`sub`) and
//! one of that user's sessions (`sid`). A token is accepted only while its
//! session is active, which is checked in the database on every request, so
//! revoking a session (directly, by untrust, delete or revoke-all) takes
//! effect on the very next request.

use std::{
    future::{ready, Ready},
    sync::{Arc, OnceLock},
};

use actix_web::{dev::Payload, http::header, FromRequest, HttpMessage, HttpRequest};
use diesel::result::Error as DieselError;

use crate::{
    db::{
        self,
        models::{DeviceRow, SessionRow},
        AnyConnection, Db, DbError,
    },
    rate_limit::{Charge, Charged, RetryAfter},
};

pub use crate::tokens::{Claims, KeyError, SignError, TokenError, TokenKeys, MIN_SECRET_LEN};
/// Tokens longer than this are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The public message of a 401 for a token that is present but not acceptable.
pub const REJECTED: &str = "Invalid or expired token";
/// The public message of a 401 for a request without a token.
pub const MISSING: &str = "Missing bearer token";

/// The authenticated caller of a request: a user and their active session.
/// Only [`Bearer::read`] and [`Bearer::write`] make one, after checking the
/// session in the same database call as the operation's own work.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    /// The device the session runs on ("this device").
    pub device_id: String,
}

/// A bearer token whose signature and claims hold; its session is not
/// checked yet. The caller's identity is reachable only through
/// [`Bearer::read`] / [`Bearer::write`], which check the session first, so no
/// handler can act on a revoked session, and each request makes one trip to
/// the database instead of two.
pub struct Bearer {
    claims: Claims,
    /// The rate limiter's charge, when one applies, and the request it is
    /// reported on.
    charge: Option<(Charge, HttpRequest)>,
}

/// Why an authenticated database call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The token's session is revoked, expired, unknown or not the user's (401).
    #[error("session {session_id} of user {user_id} is revoked, expired or unknown")]
    SessionInactive { user_id: String, session_id: String },
    /// The client (the user of an active session, or the address that sent
    /// a refused token) is over its allowance; nothing was done (429).
    #[error("over the rate limit; retry in {wait_seconds} s")]
    RateLimited { wait_seconds: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Bearer {
    /// Checks the session, then runs `work`, which only reads, as the
    /// caller, on one connection (see [`Db::read`]).
    pub async fn read<T, F>(self, db: &Db, work: F) -> Result<T, CallError>
    where
        F: Fn(&mut AnyConnection, &Caller) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let verdict = Verdict::default();
        let checked = session_checked(self.claims.clone(), self.spender(&verdict), work);
        let outcome = db.read(checked).await;
        self.report(&verdict, outcome)
    }

    /// Like [`Bearer::read`], in a write (its own savepoint of its group's
    /// transaction) that also holds the session check, so a revocation
    /// cannot slip in between the two: a revocation earlier in the same group
    /// is seen by the check.
    pub async fn write<T, F>(self, db: &Db, work: F) -> Result<T, CallError>
    where
        F: Fn(&mut AnyConnection, &Caller) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let verdict = Verdict::default();
        let checked = session_checked(self.claims.clone(), self.spender(&verdict), work);
        let outcome = db.write(checked).await;
        self.report(&verdict, outcome)
    }

    /// A read whose session check is part of its own query (`checked`
    /// returns `None` when the session is not active): one statement, on
    /// either database. The charge follows the check as in [`Bearer::read`];
    /// a read changes nothing, so over the allowance its rows are dropped.
    pub async fn read_checked<T, F>(self, db: &Db, checked: F) -> Result<T, CallError>
    where
        F: Fn(&mut AnyConnection, &SessionOf) -> Result<Option<(String, T)>, DieselError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let verdict = Verdict::default();
        let spender = self.spender(&verdict);
        let claims = self.claims.clone();
        let outcome = db
            .read(move |conn| {
                let session = SessionOf::now(&claims);
                Ok(match checked(conn, &session)? {
                    Some((_device, value)) => spender.user(&claims.sub).map(|()| value),
                    None => Err(spender.refused(inactive(&claims))),
                })
            })
            .await;
        self.report(&verdict, outcome)
    }

    /// Runs `write` as [`Bearer::write`] does, except where the database
    /// takes writes one statement at a time ([`Db::writes_by_statement`]):
    /// there the session check and the write are one statement
    /// ([`OneStatement::run_checked`]). When the rate limiter charges the
    /// user, the check runs first on its own: a request over its allowance
    /// must change nothing, and one with a revoked token must not spend its
    /// user's allowance, which only the check can tell.
    pub async fn write_one<W: OneStatement>(self, db: &Db, write: W) -> Result<W::Done, CallError> {
        if !db.writes_by_statement() {
            return self
                .write(db, move |conn, caller| write.run(conn, caller))
                .await;
        }
        if self.charge.is_some() {
            let verdict = Verdict::default();
            let checked =
                session_checked(self.claims.clone(), self.spender(&verdict), |_, _| Ok(()));
            let outcome = db.read(checked).await;
            self.report(&verdict, outcome)?;
        }
        let claims = self.claims.clone();
        let done = db
            .write_statement(move |conn| {
                let AnyConnection::Postgresql(pg) = conn else {
                    unreachable!("writes_by_statement is PostgreSQL only")
                };
                write.run_checked(pg, &SessionOf::now(&claims))
            })
            .await?;
        done.ok_or_else(|| inactive(&self.claims))
    }

    /// The caller with their own session and its device, read by the
    /// session check itself: one query, the whole of `getCurrentSession`.
    pub async fn current_session(self, db: &Db) -> Result<CurrentSession, CallError> {
        let claims = self.claims.clone();
        let verdict = Verdict::default();
        let spender = self.spender(&verdict);
        let outcome = db
            .read(move |conn| {
                let found =
                    db::sessions::active_with_device(conn, &claims.sub, &claims.sid, db::now())?;
                Ok(match found {
                    Some((session, device)) => match spender.user(&claims.sub) {
                        Ok(()) => Ok(CurrentSession {
                            caller: Caller {
                                user_id: claims.sub.clone(),
                                session_id: claims.sid.clone(),
                                device_id: device.id.clone(),
                            },
                            session,
                            device,
                        }),
                        Err(limited) => Err(limited),
                    },
                    None => Err(spender.refused(inactive(&claims))),
                })
            })
            .await;
        self.report(&verdict, outcome)
    }

    fn spender(&self, verdict: &Verdict) -> Spender {
        Spender {
            charge: self.charge.as_ref().map(|(charge, _)| charge.clone()),
            verdict: verdict.clone(),
        }
    }

    /// Tells the rate limiter's middleware that this request was charged
    /// (and, when it was over, how long to wait), and flattens the outcome.
    fn report<T>(
        &self,
        verdict: &Verdict,
        outcome: Result<Result<T, CallError>, DbError>,
    ) -> Result<T, CallError> {
        if let Some((_, request)) = &self.charge {
            if verdict.get().is_some() {
                request.extensions_mut().insert(Charged);
            }
            if let Ok(Err(CallError::RateLimited { wait_seconds })) = &outcome {
                request.extensions_mut().insert(RetryAfter(*wait_seconds));
            }
        }
        outcome?
    }
}

/// A request's charge, decided once: a write whose group is run again
/// (after another write of the group failed) runs its closure again, and
/// must not be charged twice.
type Verdict = Arc<OnceLock<Result<(), u64>>>;

/// Charges the rate limiter from inside the session check's database call.
#[derive(Clone)]
struct Spender {
    charge: Option<Charge>,
    verdict: Verdict,
}

impl Spender {
    /// The session is active: its user pays.
    fn user(&self, user_id: &str) -> Result<(), CallError> {
        let Some(charge) = &self.charge else {
            return Ok(());
        };
        self.verdict
            .get_or_init(|| charge.user(user_id))
            .map_err(|wait_seconds| CallError::RateLimited { wait_seconds })
    }

    /// The session is not active: the address pays, and past its allowance
    /// the refusal is a 429 rather than the 401.
    fn refused(&self, refusal: CallError) -> CallError {
        let Some(charge) = &self.charge else {
            return refusal;
        };
        match self.verdict.get_or_init(|| charge.address()) {
            Ok(()) => refusal,
            Err(wait_seconds) => CallError::RateLimited {
                wait_seconds: *wait_seconds,
            },
        }
    }
}

/// The session check behind every authenticated request, then `work` when
/// the session is active and its user within the rate limit.
fn session_checked<T, F>(
    claims: Claims,
    spender: Spender,
    work: F,
) -> impl Fn(&mut AnyConnection) -> Result<Result<T, CallError>, DieselError> + Send + 'static
where
    F: Fn(&mut AnyConnection, &Caller) -> Result<T, DieselError> + Send + 'static,
    T: Send + 'static,
{
    move |conn| match authenticate(conn, claims.clone())? {
        Ok(caller) => match spender.user(&caller.user_id) {
            Ok(()) => work(conn, &caller).map(Ok),
            Err(limited) => Ok(Err(limited)),
        },
        Err(refusal) => Ok(Err(spender.refused(refusal))),
    }
}

/// The session a request's token names, to be checked at `now` by a
/// statement that folds the check into its own work.
#[derive(Debug, Clone)]
pub struct SessionOf {
    pub user_id: String,
    pub session_id: String,
    pub now: chrono::NaiveDateTime,
}

impl SessionOf {
    fn now(claims: &Claims) -> Self {
        Self {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            now: db::now(),
        }
    }

    /// The caller, once a statement found this session active on `device_id`.
    pub fn caller(&self, device_id: String) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            device_id,
        }
    }
}

/// A write that PostgreSQL runs as one statement, its session check
/// included (see `db::one_statement`).
pub trait OneStatement: Send + Sync + 'static {
    type Done: Send + 'static;

    /// The write as the already checked `caller`, in the transaction of
    /// its session check (SQLite; PostgreSQL through the writer).
    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, DieselError>;

    /// The session check of `session` and the write in one statement;
    /// `None` when the session is not active (then nothing changed).
    fn run_checked(
        &self,
        conn: &mut diesel::PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, DieselError>;
}

/// What [`Bearer::current_session`] read.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub caller: Caller,
    pub session: SessionRow,
    pub device: DeviceRow,
}

/// The session check behind every authenticated request.
fn authenticate(
    conn: &mut AnyConnection,
    claims: Claims,
) -> Result<Result<Caller, CallError>, DieselError> {
    let device = db::sessions::active_device(conn, &claims.sub, &claims.sid, db::now())?;
    Ok(match device {
        Some(device_id) => Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            device_id,
        }),
        None => Err(inactive(&claims)),
    })
}

fn inactive(claims: &Claims) -> CallError {
    CallError::SessionInactive {
        user_id: claims.sub.clone(),
        session_id: claims.sid.clone(),
    }
}

/// Why a request's bearer token was refused before any database call: a
/// public message for the 401 body and the reason for the log (it names the
/// failed check, never the token). The HTTP answer is made in `api::error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{public}: {reason}")]
pub struct Refused {
    pub public: &'static str,
    pub reason: String,
}

impl Refused {
    fn missing() -> Self {
        Self {
            public: MISSING,
            reason: "no Authorization header".into(),
        }
    }

    fn rejected(reason: impl Into<String>) -> Self {
        Self {
            public: REJECTED,
            reason: reason.into(),
        }
    }

    /// No token at all, as opposed to one that was present but refused.
    pub fn is_missing(&self) -> bool {
        self.public == MISSING
    }
}

/// The token of an `Authorization: Bearer <token>` header, refusing anything
/// else (other schemes, a doubled `Bearer`, empty or over-long tokens).
pub(crate) fn bearer_token(request: &HttpRequest) -> Result<&str, Refused> {
    let mut values = request.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or_else(Refused::missing)?;
    if values.next().is_some() {
        return Err(Refused::rejected("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Refused::rejected("Authorization header is not visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Refused::rejected("Authorization header is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refused::rejected("Authorization scheme is not Bearer"));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.contains(' ') {
        return Err(Refused::rejected(
            "bearer token is empty, too long or has spaces",
        ));
    }
    Ok(token)
}

/// Claims the rate limiter already verified for this request.
struct VerifiedClaims(Claims);

/// Verifies the request's token with the [`TokenKeys`] of the app's state
/// (`AppState::tokens`); the session is checked later, in the
/// operation's own database call.
impl FromRequest for Bearer {
    type Error = Refused;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let charge = request
            .extensions()
            .get::<Charge>()
            .cloned()
            .map(|charge| (charge, request.clone()));
        if let Some(VerifiedClaims(claims)) = request.extensions_mut().remove::<VerifiedClaims>() {
            return ready(Ok(Bearer { claims, charge }));
        }
        ready(bearer_token(request).and_then(|token| {
            let keys = &crate::state::AppState::of(request)
                .expect("startup registers web::Data<AppState>")
                .tokens;
            let claims = keys
                .verify(token)
                .map_err(|e| Refused::rejected(format!("token refused: {e}")))?;
            Ok(Bearer { claims, charge })
        }))
    }
}

/// Whether the request's bearer token's signature and claims hold under
/// `keys` (the session is not checked): the rate limiter then leaves the
/// charge to the session check. The claims are kept in the request so that
/// [`Bearer`] does not verify them again.
pub fn verify_request(keys: &TokenKeys, request: &HttpRequest) -> bool {
    let Ok(token) = bearer_token(request) else {
        return false;
    };
    let Ok(claims) = keys.verify(token) else {
        return false;
    };
    request.extensions_mut().insert(VerifiedClaims(claims));
    true
}
