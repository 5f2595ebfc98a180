//! Writes to the caller's sessions (the `sessions` tag).

use chrono::NaiveDateTime;
use diesel::result::Error;

use super::{statement_event, Outcome};
use diesel::PgConnection;

use crate::{
    api::types::SecurityEventType,
    auth::{Caller, OneStatement, SessionOf},
    db::{self, events::Actor, models::SecurityEventRow, AnyConnection},
    state::Policy,
};

/// The event of a change to `caller`'s sessions made as `actor`.
fn sessions_event(
    kind: SecurityEventType,
    caller: &Caller,
    actor: &Actor,
    at: NaiveDateTime,
) -> SecurityEventRow {
    SecurityEventRow::new(&caller.user_id, kind.as_str(), actor, at)
}

/// `revokeAllSessions`: ends every active session of the caller, theirs
/// included; the outcome is how many.
pub fn revoke_all(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
) -> Result<usize, Error> {
    let now = db::now();
    let revoked = db::sessions::revoke_all(conn, &caller.user_id, now)?;
    let event =
        sessions_event(SecurityEventType::AllSessionsRevoked, caller, actor, now).revoked(revoked);
    db::events::record(conn, &event)?;
    Ok(revoked)
}

/// `revokeAllSessions` (`keep_own` false) or `revokeOtherSessions` (true),
/// made from `origin` (an actor whose session is the caller's, filled in
/// once the caller is known).
pub struct RevokeAll {
    pub keep_own: bool,
    pub origin: Actor,
}

impl OneStatement for RevokeAll {
    type Done = usize;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        let actor = self.origin.of_session(&caller.session_id);
        if self.keep_own {
            revoke_others(conn, caller, &actor)
        } else {
            revoke_all(conn, caller, &actor)
        }
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let kind = if self.keep_own {
            SecurityEventType::OtherSessionsRevoked
        } else {
            SecurityEventType::AllSessionsRevoked
        };
        let checked = db::one_statement::revoke_sessions(
            conn,
            &session.user_id,
            &session.session_id,
            self.keep_own,
            session.now,
            &statement_event(kind, session, &self.origin),
        )?;
        Ok(checked.map(|(_device, revoked)| revoked))
    }
}

/// `revokeOtherSessions`: ends every active session of the caller but
/// theirs; the outcome is how many.
pub fn revoke_others(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
) -> Result<usize, Error> {
    let now = db::now();
    let revoked = db::sessions::revoke_all_except(conn, &caller.user_id, &caller.session_id, now)?;
    let event = sessions_event(SecurityEventType::OtherSessionsRevoked, caller, actor, now)
        .revoked(revoked);
    db::events::record(conn, &event)?;
    Ok(revoked)
}

/// `revokeSession` on `session_id`, made from `origin` (an actor whose
/// session is the caller's, filled in once the caller is known).
pub struct Revoke {
    pub session_id: String,
    pub origin: Actor,
}

impl OneStatement for Revoke {
    type Done = Outcome<()>;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        revoke(
            conn,
            caller,
            &self.origin.of_session(&caller.session_id),
            &self.session_id,
        )
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let event = statement_event(SecurityEventType::SessionRevoked, session, &self.origin);
        let checked = db::one_statement::revoke_session(
            conn,
            &session.user_id,
            &session.session_id,
            &self.session_id,
            session.now,
            &event,
        )?;
        Ok(checked.map(|(_device, revoked)| {
            if revoked {
                Outcome::Done(())
            } else {
                Outcome::NotFound
            }
        }))
    }
}

/// `revokeSession`: ends one active session of the caller.
pub fn revoke(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
    session_id: &str,
) -> Result<Outcome<()>, Error> {
    let now = db::now();
    let Some((device_id, device_name)) =
        db::sessions::revoke(conn, &caller.user_id, session_id, now)?
    else {
        return Ok(Outcome::NotFound);
    };
    let event = sessions_event(SecurityEventType::SessionRevoked, caller, actor, now)
        .device(&device_id, &device_name)
        .session(session_id)
        .revoked(1);
    db::events::record(conn, &event)?;
    Ok(Outcome::Done(()))
}

/// `sessionHeartbeat` on `session_id`, asked at `now`.
pub struct Heartbeat {
    pub session_id: String,
    pub policy: Policy,
    pub now: NaiveDateTime,
}

impl OneStatement for Heartbeat {
    type Done = Outcome<NaiveDateTime>;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        heartbeat(conn, caller, &self.policy, &self.session_id, self.now)
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let max_lifetime = self.policy.max_lifetime();
        let checked = db::one_statement::heartbeat(
            conn,
            &session.user_id,
            &session.session_id,
            &self.session_id,
            self.now,
            self.now + self.policy.session_extension,
            max_lifetime,
        )?;
        Ok(checked.map(|(_device, new_expiry)| new_expiry.into()))
    }
}

/// `sessionHeartbeat`: records activity on an active session of the caller
/// and extends it by the policy's extension, never past its absolute
/// lifetime; the outcome is the new expiry. Records no event (heartbeats
/// are not security events).
pub fn heartbeat(
    conn: &mut AnyConnection,
    caller: &Caller,
    policy: &Policy,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<Outcome<NaiveDateTime>, Error> {
    let wanted = now + policy.session_extension;
    let max_lifetime = policy.max_lifetime();
    // Most sessions are far from their absolute lifetime: the first update
    // extends only such a session, by the whole extension, and the start is
    // read only when it did not (capped, or no such session).
    let started_since = max_lifetime
        .and_then(|max| wanted.checked_sub_signed(max))
        .unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc());
    let user = &caller.user_id;
    if db::sessions::heartbeat(conn, user, session_id, now, wanted, started_since)? {
        return Ok(Outcome::Done(wanted));
    }
    if max_lifetime.is_none() {
        return Ok(Outcome::NotFound);
    }
    let Some(started_at) = db::sessions::active_started_at(conn, user, session_id, now)? else {
        return Ok(Outcome::NotFound);
    };
    let capped = policy.cap_expiry(started_at, wanted);
    let updated = db::sessions::heartbeat(conn, user, session_id, now, capped, started_at)?;
    Ok(if updated {
        Outcome::Done(capped)
    } else {
        Outcome::NotFound
    })
}
