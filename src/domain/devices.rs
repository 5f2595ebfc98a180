//! Writes to the caller's devices (the `devices` tag).

use chrono::NaiveDateTime;
use diesel::result::Error;

use super::{statement_event, Outcome};
use diesel::PgConnection;

use crate::{
    api::types::SecurityEventType,
    auth::{Caller, OneStatement, SessionOf},
    db::{
        self,
        devices::Changed,
        events::Actor,
        models::{DeviceRow, SecurityEventRow},
        AnyConnection,
    },
};

/// The event of a change to a device made by `caller` as `actor`.
fn device_event(
    kind: SecurityEventType,
    changed: &Changed,
    caller: &Caller,
    actor: &Actor,
    at: NaiveDateTime,
) -> SecurityEventRow {
    SecurityEventRow::new(&caller.user_id, kind.as_str(), actor, at)
        .device(&changed.id, &changed.name)
        .revoked(changed.revoked_sessions)
}

/// Records the event of `change` when there was one, and passes it on.
fn recorded(
    conn: &mut AnyConnection,
    change: Option<Changed>,
    kind: SecurityEventType,
    caller: &Caller,
    actor: &Actor,
    at: NaiveDateTime,
) -> Result<Outcome<Changed>, Error> {
    if let Some(changed) = &change {
        db::events::record(conn, &device_event(kind, changed, caller, actor, at))?;
    }
    Ok(change.into())
}

/// `trustDevice` on the device with `fingerprint`, until `until`, made from
/// `origin` (an actor whose session is the caller's, filled in once the
/// caller is known).
pub struct Trust {
    pub fingerprint: String,
    pub until: NaiveDateTime,
    pub origin: Actor,
}

impl OneStatement for Trust {
    type Done = Outcome<Changed>;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        let actor = self.origin.of_session(&caller.session_id);
        trust(conn, caller, &actor, &self.fingerprint, self.until)
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let event = statement_event(SecurityEventType::DeviceTrusted, session, &self.origin);
        let checked = db::one_statement::trust(
            conn,
            &session.user_id,
            &session.session_id,
            &self.fingerprint,
            self.until,
            session.now,
            &event,
        )?;
        Ok(checked.map(|(_device, trusted)| trusted.into()))
    }
}

/// `trustDevice`: trusts the caller's device with `fingerprint` until `until`.
pub fn trust(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
    fingerprint: &str,
    until: NaiveDateTime,
) -> Result<Outcome<Changed>, Error> {
    let now = db::now();
    let trusted = db::devices::trust(conn, &caller.user_id, fingerprint, until)?;
    recorded(
        conn,
        trusted,
        SecurityEventType::DeviceTrusted,
        caller,
        actor,
        now,
    )
}

/// `untrustDevice` on `device_id`, made from `origin` (an actor whose
/// session is the caller's, filled in once the caller is known).
pub struct Untrust {
    pub device_id: String,
    pub origin: Actor,
}

impl OneStatement for Untrust {
    type Done = Outcome<Changed>;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        untrust(
            conn,
            caller,
            &self.origin.of_session(&caller.session_id),
            &self.device_id,
        )
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let actor = self.origin.of_session(&session.session_id);
        let event = SecurityEventRow::new(
            &session.user_id,
            SecurityEventType::DeviceUntrusted.as_str(),
            &actor,
            session.now,
        );
        let checked = db::one_statement::untrust(
            conn,
            &session.user_id,
            &session.session_id,
            &self.device_id,
            session.now,
            &event,
        )?;
        Ok(checked.map(|(_device, untrusted)| untrusted.into()))
    }
}

/// `untrustDevice`: untrusts the device and revokes its active sessions.
pub fn untrust(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
    device_id: &str,
) -> Result<Outcome<Changed>, Error> {
    let now = db::now();
    let untrusted = db::devices::untrust(conn, &caller.user_id, device_id, now)?;
    recorded(
        conn,
        untrusted,
        SecurityEventType::DeviceUntrusted,
        caller,
        actor,
        now,
    )
}

/// `deleteDevice` on `device_id`, made from `origin` (an actor whose
/// session is the caller's, filled in once the caller is known).
pub struct Delete {
    pub device_id: String,
    pub origin: Actor,
}

impl OneStatement for Delete {
    type Done = Outcome<Changed>;

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        let actor = self.origin.of_session(&caller.session_id);
        delete(conn, caller, &actor, &self.device_id)
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let event = statement_event(SecurityEventType::DeviceRemoved, session, &self.origin);
        let checked = db::one_statement::delete_device(
            conn,
            &session.user_id,
            &session.session_id,
            &self.device_id,
            session.now,
            &event,
        )?;
        Ok(checked.map(|(_device, removed)| removed.into()))
    }
}

/// `deleteDevice`: removes the device and its sessions.
pub fn delete(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
    device_id: &str,
) -> Result<Outcome<Changed>, Error> {
    let now = db::now();
    let removed = db::devices::delete(conn, &caller.user_id, device_id, now)?;
    recorded(
        conn,
        removed,
        SecurityEventType::DeviceRemoved,
        caller,
        actor,
        now,
    )
}

/// `renameDevice` on `device_id`, to `name` (already trimmed and not
/// blank), made from `origin` (an actor whose session is the caller's,
/// filled in once the caller is known). Done: the outcome, and the caller
/// (the device is shown as they see it).
pub struct Rename {
    pub device_id: String,
    pub name: String,
    pub origin: Actor,
}

impl OneStatement for Rename {
    type Done = (Outcome<DeviceRow>, Caller);

    fn run(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<Self::Done, Error> {
        let actor = self.origin.of_session(&caller.session_id);
        let renamed = rename(conn, caller, &actor, &self.device_id, &self.name)?;
        Ok((renamed, caller.clone()))
    }

    fn run_checked(
        &self,
        conn: &mut PgConnection,
        session: &SessionOf,
    ) -> Result<Option<Self::Done>, Error> {
        let event = statement_event(SecurityEventType::DeviceRenamed, session, &self.origin);
        let checked = db::one_statement::rename(
            conn,
            &session.user_id,
            &session.session_id,
            &self.device_id,
            &self.name,
            session.now,
            &event,
        )?;
        Ok(checked.map(|(caller_device, renamed)| (renamed.into(), session.caller(caller_device))))
    }
}

/// `renameDevice`: gives the device `name` (already trimmed and not blank);
/// the outcome is the renamed device.
pub fn rename(
    conn: &mut AnyConnection,
    caller: &Caller,
    actor: &Actor,
    device_id: &str,
    name: &str,
) -> Result<Outcome<DeviceRow>, Error> {
    let Some(renamed) = db::devices::rename(conn, &caller.user_id, device_id, name)? else {
        return Ok(Outcome::NotFound);
    };
    let changed = Changed {
        id: renamed.id.clone(),
        name: renamed.device_name.clone(),
        revoked_sessions: 0,
    };
    let event = device_event(
        SecurityEventType::DeviceRenamed,
        &changed,
        caller,
        actor,
        db::now(),
    );
    db::events::record(conn, &event)?;
    Ok(Outcome::Done(renamed))
}
