//! Sign-ins: `createSession` (the sign-in service, with a service key),
//! `session create` on the command line, and the demo data that development
//! mode seeds into an empty database, all through the same writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    api::types::{DeviceType, SecurityEventType},
    auth::TokenKeys,
    db::{
        self,
        devices::TRUST_LEVEL_TRUSTED,
        events::Actor,
        models::{DeviceRow, SecurityEventRow, SessionRow},
        Db, DbError,
    },
    state::Policy,
};

/// Who signs in, on what, and for how long.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub user_id: String,
    pub device_name: String,
    pub fingerprint: Option<String>,
    pub device_type: DeviceType,
    pub os: String,
    pub browser: String,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// Free text; "City, Country" also fills the device's city and country.
    pub location: Option<String>,
    pub login_method: String,
    pub ttl: Duration,
    pub trusted: bool,
}

/// What `session create` prints: exactly these fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedSession {
    pub token: String,
    pub session_id: String,
    pub device_id: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot sign the token: {0}")]
    Token(#[from] crate::auth::SignError),
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Who asked for a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInBy {
    /// `session create`, the demo data, tests.
    CommandLine,
    /// `createSession`, with the service key named so.
    Service(String),
}

/// What a sign-in did, as the transaction left it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub issued: IssuedSession,
    pub session: SessionRow,
    pub device: DeviceRow,
    /// The device was registered by this sign-in.
    pub new_device: bool,
}

/// A checked sign-in, ready to be written (the rows are cloned into each
/// try of the write, which the writer may retry).
#[derive(Debug, Clone)]
struct Prepared {
    device: DeviceRow,
    session: SessionRow,
    actor: Actor,
    trusted_until: Option<chrono::NaiveDateTime>,
    by: SignInBy,
    max_sessions: Option<u32>,
    now: chrono::NaiveDateTime,
}

fn prepare(policy: &Policy, request: SignIn, by: SignInBy) -> Result<Prepared, ProvisionError> {
    for (name, value) in [
        ("user", &request.user_id),
        (
            "fingerprint",
            request.fingerprint.as_ref().unwrap_or(&"x".into()),
        ),
    ] {
        if value.is_empty() || value.chars().count() > 256 {
            return Err(ProvisionError::Invalid(format!(
                "--{name} must be 1 to 256 characters"
            )));
        }
    }
    let now = db::now();
    let ttl = chrono::TimeDelta::from_std(request.ttl)
        .map_err(|_| ProvisionError::Invalid("--ttl is too large".into()))?;
    let expires_at = policy.cap_expiry(now, now + ttl);
    let (city, country) = match request.location.as_deref().and_then(|l| l.split_once(',')) {
        Some((city, country)) => (
            Some(city.trim().to_owned()),
            Some(country.trim().to_owned()),
        ),
        None => (None, None),
    };
    let trusted_until = request.trusted.then(|| now + policy.trust_period);
    let device = DeviceRow {
        id: new_id(),
        user_id: request.user_id.clone(),
        fingerprint: request
            .fingerprint
            .clone()
            .unwrap_or_else(|| format!("fp-{}", new_id())),
        device_name: request.device_name,
        device_type: request.device_type.as_str().to_owned(),
        os: request.os,
        browser: request.browser,
        user_agent: request.user_agent,
        ip_address: request.ip_address.clone(),
        country,
        city,
        is_trusted: request.trusted,
        trust_level: if request.trusted {
            TRUST_LEVEL_TRUSTED
        } else {
            "UNKNOWN"
        }
        .to_owned(),
        trust_expires_at: trusted_until,
        last_seen: now,
        created_at: now,
    };
    let actor = Actor {
        session_id: None,
        ip_address: request.ip_address.clone(),
        user_agent: device.user_agent.clone(),
        service: match &by {
            SignInBy::Service(name) => Some(name.clone()),
            SignInBy::CommandLine => None,
        },
    };
    let session = SessionRow {
        id: new_id(),
        user_id: request.user_id.clone(),
        device_id: String::new(),
        ip_address: request.ip_address,
        location: request.location,
        login_method: request.login_method,
        started_at: now,
        last_activity: now,
        expires_at,
        revoked_at: None,
    };
    Ok(Prepared {
        device,
        session,
        actor,
        trusted_until,
        by,
        max_sessions: policy.max_sessions_per_user,
        now,
    })
}

/// The sign-in's writes, inside the caller's write transaction: registers
/// the device (or refreshes the user's device with that fingerprint) and a
/// new session on it, ends the sessions beyond the per-user limit, and
/// records the events: `SESSION_STARTED`, `NEW_DEVICE_SIGN_IN` when a
/// service registered the device, `DEVICE_TRUSTED` when it trusts the
/// device, `SESSION_REVOKED` for each session the limit ended. Returns the
/// session, the device as it is now, and whether it is new.
fn write(
    conn: &mut db::AnyConnection,
    prepared: Prepared,
) -> Result<(SessionRow, DeviceRow, bool), diesel::result::Error> {
    let Prepared {
        mut device,
        session,
        actor,
        trusted_until,
        by,
        max_sessions,
        now,
    } = prepared;
    let new_device =
        match db::devices::find_by_fingerprint(conn, &device.user_id, &device.fingerprint)? {
            Some(existing) => {
                device.id = existing.id;
                if matches!(by, SignInBy::Service(_)) {
                    // The name the user chose (renameDevice) outlives sign-ins.
                    device.device_name = existing.device_name;
                }
                db::devices::record_sign_in(conn, &device)?;
                if let Some(until) = trusted_until {
                    db::devices::trust(conn, &device.user_id, &device.fingerprint, until)?;
                }
                false
            }
            None => {
                db::devices::insert(conn, &device)?;
                true
            }
        };
    let session = SessionRow {
        device_id: device.id.clone(),
        ..session
    };
    db::sessions::insert(conn, &session)?;
    let event = |kind: SecurityEventType| {
        SecurityEventRow::new(&device.user_id, kind.as_str(), &actor, now)
            .device(&device.id, &device.device_name)
    };
    db::events::record(
        conn,
        &event(SecurityEventType::SessionStarted).session(&session.id),
    )?;
    if new_device && matches!(by, SignInBy::Service(_)) {
        db::events::record(
            conn,
            &event(SecurityEventType::NewDeviceSignIn).session(&session.id),
        )?;
    }
    if trusted_until.is_some() {
        db::events::record(conn, &event(SecurityEventType::DeviceTrusted))?;
    }
    if let Some(max) = max_sessions {
        for (revoked, device_id, device_name) in
            db::sessions::revoke_beyond(conn, &device.user_id, i64::from(max), now)?
        {
            let revoked_event = SecurityEventRow::new(
                &device.user_id,
                SecurityEventType::SessionRevoked.as_str(),
                &actor,
                now,
            )
            .device(&device_id, &device_name)
            .session(&revoked)
            .revoked(1);
            db::events::record(conn, &revoked_event)?;
        }
    }
    let device = db::devices::find_by_fingerprint(conn, &device.user_id, &device.fingerprint)?
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((session, device, new_device))
}

fn issue(
    tokens: &TokenKeys,
    session: SessionRow,
    device: DeviceRow,
    new_device: bool,
) -> Result<SignedIn, ProvisionError> {
    let expires_at = crate::api::views::utc(session.expires_at);
    let token = tokens.sign(&session.user_id, &session.id, expires_at)?;
    Ok(SignedIn {
        issued: IssuedSession {
            token,
            session_id: session.id.clone(),
            device_id: device.id.clone(),
            user_id: session.user_id.clone(),
            expires_at,
        },
        session,
        device,
        new_device,
    })
}

/// A sign-in from the command line (or the demo data): the writes of
/// [`write`] in one transaction, then the session's token. The events have
/// no actor session (this is not a request of one); their address and
/// User-Agent are the sign-in's. Blocking.
pub fn sign_in(
    db: &Db,
    tokens: &TokenKeys,
    policy: &Policy,
    request: SignIn,
) -> Result<IssuedSession, ProvisionError> {
    let prepared = prepare(policy, request, SignInBy::CommandLine)?;
    let (session, device, new_device) = db.run_blocking(move |conn| {
        db::write_transaction(conn, |conn| write(conn, prepared.clone()))
    })?;
    Ok(issue(tokens, session, device, new_device)?.issued)
}

/// A sign-in by a service (`createSession`): the same writes as
/// [`sign_in`], through the server's writer, with the service's name as the
/// events' actor.
pub async fn sign_in_by_service(
    db: &Db,
    tokens: &TokenKeys,
    policy: &Policy,
    request: SignIn,
    service: &str,
) -> Result<SignedIn, ProvisionError> {
    let prepared = prepare(policy, request, SignInBy::Service(service.to_owned()))?;
    let (session, device, new_device) = db.write(move |conn| write(conn, prepared.clone())).await?;
    issue(tokens, session, device, new_device)
}

pub const DEMO_USER: &str = "demo-user";

/// Seeds a demo user with a few devices and sessions when the database has
/// no device at all; returns the session whose token to show, if it did.
pub fn seed_demo_if_empty(
    db: &Db,
    tokens: &TokenKeys,
    policy: &Policy,
) -> Result<Option<IssuedSession>, ProvisionError> {
    if db.run_blocking(db::devices::count_all)? > 0 {
        return Ok(None);
    }
    let day = Duration::from_secs(24 * 3600);
    struct Demo {
        name: &'static str,
        fingerprint: &'static str,
        kind: DeviceType,
        os: &'static str,
        browser: &'static str,
        ip: &'static str,
        location: &'static str,
        trusted: bool,
    }
    let laptop = Demo {
        name: "Work laptop",
        fingerprint: "demo-laptop",
        kind: DeviceType::Desktop,
        os: "macOS 15",
        browser: "Firefox 133",
        ip: "203.0.113.7",
        location: "Lisbon, Portugal",
        trusted: true,
    };
    // The first session's token is the one shown.
    let demo = [
        Demo {
            browser: "Safari 18",
            ..laptop
        },
        Demo {
            name: "Phone",
            fingerprint: "demo-phone",
            kind: DeviceType::Mobile,
            os: "Android 15",
            browser: "Chrome 131",
            ip: "198.51.100.23",
            location: "Porto, Portugal",
            trusted: true,
        },
        Demo {
            name: "Old tablet",
            fingerprint: "demo-tablet",
            kind: DeviceType::Tablet,
            os: "iPadOS 17",
            browser: "Safari 17",
            ip: "192.0.2.44",
            location: "Madrid, Spain",
            trusted: false,
        },
    ];
    let mut issued = Vec::new();
    for Demo {
        name,
        fingerprint,
        kind,
        os,
        browser,
        ip,
        location,
        trusted,
    } in std::iter::once(laptop).chain(demo)
    {
        let request = SignIn {
            user_id: DEMO_USER.into(),
            device_name: name.into(),
            fingerprint: Some(fingerprint.into()),
            device_type: kind,
            os: os.into(),
            browser: browser.into(),
            user_agent: Some(format!("Mozilla/5.0 ({os}) {browser}")),
            ip_address: Some(ip.into()),
            location: Some(location.into()),
            login_method: "password".into(),
            ttl: day,
            trusted,
        };
        issued.push(sign_in(db, tokens, policy, request)?);
    }
    Ok(issued.into_iter().next())
}
