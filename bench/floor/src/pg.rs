//! PostgreSQL: each worker owns a few connections (tokio-postgres on the
//! worker's own event loop, so nothing blocks and no thread is handed
//! work), each with its statements prepared once (16 connections in all by
//! default, as many as the server's pool). A request is ONE
//! statement, so one round trip and one implicit transaction: the session
//! check is a one-row CTE the read or the write joins, so the check and the
//! work see one snapshot; a write commits with `synchronous_commit = on`.
//! Concurrent requests on one connection are pipelined by tokio-postgres.

use std::cell::Cell;

use chrono::{NaiveDateTime, TimeDelta};
use tokio_postgres::{types::ToSql, Client, NoTls, Row, Statement};

use crate::{
    auth::Claims,
    wire::{self, Details, DeviceRow, Listed, SessionRow, DEVICE_COLUMN_COUNT},
    Outcome,
};

/// `$1` user, `$2` the token's session, `$3` now: the token's session, when
/// active (the server's `sessions::active_device`).
macro_rules! caller {
    () => {
        "caller AS (SELECT device_id FROM sessions WHERE id = $2::text AND user_id = $1::text \
         AND revoked_at IS NULL AND expires_at > $3::timestamp)"
    };
}

/// A row per device of the caller (none: one row of NULLs), or no row when
/// the session is not active.
const LIST: &str = concat!(
    "WITH ",
    caller!(),
    " SELECT caller.device_id, ",
    crate::device_columns!(),
    " FROM caller LEFT JOIN devices d ON d.user_id = $1::text ORDER BY d.last_seen DESC, d.id"
);

const CURRENT: &str = concat!(
    "SELECT ",
    crate::session_columns!(),
    ", ",
    crate::device_columns!(),
    " FROM sessions x JOIN devices d ON d.id = x.device_id WHERE x.id = $2::text AND x.user_id = $1::text \
     AND x.revoked_at IS NULL AND x.expires_at > $3::timestamp"
);

/// `$4` the device: a row per active session of it (none: one row of
/// NULL sessions; no device: NULL devices), or no row when the caller's
/// session is not active.
const GET: &str = concat!(
    "WITH ",
    caller!(),
    " SELECT caller.device_id, ",
    crate::device_columns!(),
    ", d.user_agent, d.fingerprint, ",
    crate::session_columns!(),
    " FROM caller LEFT JOIN devices d ON d.id = $4::text AND d.user_id = $1::text \
     LEFT JOIN sessions x ON x.device_id = d.id AND x.revoked_at IS NULL AND x.expires_at > $3::timestamp \
     ORDER BY x.last_activity DESC, x.id"
);

/// `$4` the device, `$5` the event's id, `$6` client address, `$7`
/// User-Agent. The device update, the revocation of its active sessions and
/// the DEVICE_UNTRUSTED event (the columns the server writes) in one
/// statement; devices before sessions, the server's lock order. Returns
/// (session active, device untrusted).
const UNTRUST: &str = concat!(
    "WITH ",
    caller!(),
    ", d AS (UPDATE devices SET is_trusted = FALSE, trust_level = 'LOW', trust_expires_at = NULL \
        WHERE id = $4::text AND user_id = $1::text AND EXISTS (SELECT 1 FROM caller) \
        RETURNING id, device_name), \
     r AS (UPDATE sessions SET revoked_at = $3::timestamp WHERE device_id IN (SELECT id FROM d) \
        AND revoked_at IS NULL AND expires_at > $3::timestamp RETURNING 1), \
     e AS (INSERT INTO security_events (id, user_id, event_type, occurred_at, device_id, device_name, \
        session_id, revoked_session_count, actor_session_id, ip_address, user_agent, actor_service) \
        SELECT $5::text, $1::text, 'DEVICE_UNTRUSTED', $3::timestamp, d.id, d.device_name, NULL, \
        (SELECT count(*) FROM r), $2::text, $6::text, $7::text, NULL FROM d RETURNING 1) \
     SELECT (SELECT count(*) FROM caller), (SELECT count(*) FROM e)"
);

/// `$4` the session, `$5` now + the extension. The expiry never passes the
/// session's absolute lifetime (30 days, the server's default). Device
/// before session (the main query asks for `dev` first): the lock order of
/// untrust. The session's update re-checks it is active, so a revocation
/// that commits meanwhile wins. Returns (session active, -, new expiry).
const HEARTBEAT: &str = concat!(
    "WITH ",
    caller!(),
    ", t AS (SELECT id, device_id, LEAST($5::timestamp, started_at + interval '30 days') AS new_expiry \
        FROM sessions WHERE id = $4::text AND user_id = $1::text AND revoked_at IS NULL \
        AND expires_at > $3::timestamp AND EXISTS (SELECT 1 FROM caller)), \
     dev AS (UPDATE devices SET last_seen = $3::timestamp WHERE id IN (SELECT device_id FROM t) RETURNING 1), \
     u AS (UPDATE sessions x SET last_activity = $3::timestamp, expires_at = t.new_expiry FROM t \
        WHERE x.id = t.id AND x.revoked_at IS NULL AND x.expires_at > $3::timestamp RETURNING x.expires_at) \
     SELECT (SELECT count(*) FROM caller), (SELECT count(*) FROM dev), (SELECT expires_at FROM u)"
);

struct Conn {
    client: Client,
    list: Statement,
    current: Statement,
    get: Statement,
    untrust: Statement,
    heartbeat: Statement,
}

pub struct Pg {
    conns: Vec<Conn>,
    next: Cell<usize>,
}

fn device(row: &Row, at: usize) -> DeviceRow {
    DeviceRow {
        id: row.get(at),
        name: row.get(at + 1),
        kind: row.get(at + 2),
        os: row.get(at + 3),
        browser: row.get(at + 4),
        ip: row.get(at + 5),
        country: row.get(at + 6),
        city: row.get(at + 7),
        trusted: row.get(at + 8),
        level: row.get(at + 9),
        trust_expires_at: row.get(at + 10),
        last_seen: row.get(at + 11),
        created_at: row.get(at + 12),
    }
}

fn session(row: &Row, at: usize) -> SessionRow {
    SessionRow {
        id: row.get(at),
        device_id: row.get(at + 1),
        ip: row.get(at + 2),
        location: row.get(at + 3),
        login_method: row.get(at + 4),
        started_at: row.get(at + 5),
        last_activity: row.get(at + 6),
        expires_at: row.get(at + 7),
    }
}

impl Pg {
    pub async fn connect(url: &str, n: usize) -> Result<Self, tokio_postgres::Error> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
            actix_web::rt::spawn(async move {
                if let Err(e) = connection.await {
                    eprintln!("ERROR PostgreSQL connection: {e}");
                }
            });
            // The server's durability: a write is answered once on disk.
            client.batch_execute("SET synchronous_commit = on").await?;
            conns.push(Conn {
                list: client.prepare(LIST).await?,
                current: client.prepare(CURRENT).await?,
                get: client.prepare(GET).await?,
                untrust: client.prepare(UNTRUST).await?,
                heartbeat: client.prepare(HEARTBEAT).await?,
                client,
            });
        }
        Ok(Self {
            conns,
            next: Cell::new(0),
        })
    }

    fn conn(&self) -> &Conn {
        let i = self.next.get();
        self.next.set((i + 1) % self.conns.len());
        &self.conns[i]
    }

    async fn query(
        &self,
        pick: fn(&Conn) -> &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, String> {
        let conn = self.conn();
        conn.client
            .query(pick(conn), params)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn list(&self, c: &Claims, now: NaiveDateTime) -> wire::Result<Listed> {
        let rows = self.query(|c| &c.list, &[&c.sub, &c.sid, &now]).await?;
        let Some(first) = rows.first() else {
            return Ok(Outcome::Inactive);
        };
        let current_device: String = first.get(0);
        let devices = rows
            .iter()
            .filter(|r| r.get::<_, Option<&str>>(1).is_some())
            .map(|r| device(r, 1))
            .collect();
        Ok(Outcome::Done(Listed {
            current_device,
            devices,
        }))
    }

    pub async fn current(
        &self,
        c: &Claims,
        now: NaiveDateTime,
    ) -> wire::Result<(SessionRow, DeviceRow)> {
        let rows = self.query(|c| &c.current, &[&c.sub, &c.sid, &now]).await?;
        Ok(match rows.first() {
            Some(row) => Outcome::Done((session(row, 0), device(row, 8))),
            None => Outcome::Inactive,
        })
    }

    pub async fn get(
        &self,
        c: &Claims,
        id: &str,
        now: NaiveDateTime,
    ) -> wire::Result<(String, Details)> {
        let rows = self.query(|c| &c.get, &[&c.sub, &c.sid, &now, &id]).await?;
        let Some(first) = rows.first() else {
            return Ok(Outcome::Inactive);
        };
        if first.get::<_, Option<&str>>(1).is_none() {
            return Ok(Outcome::NotFound);
        }
        let s = 1 + DEVICE_COLUMN_COUNT + 2;
        let details = Details {
            device: device(first, 1),
            user_agent: first.get(1 + DEVICE_COLUMN_COUNT),
            fingerprint: first.get(2 + DEVICE_COLUMN_COUNT),
            sessions: rows
                .iter()
                .filter(|r| r.get::<_, Option<&str>>(s).is_some())
                .map(|r| session(r, s))
                .collect(),
        };
        Ok(Outcome::Done((first.get(0), details)))
    }

    pub async fn untrust(
        &self,
        c: Claims,
        id: String,
        ip: Option<String>,
        ua: Option<String>,
    ) -> wire::Result<()> {
        let now = crate::now();
        let event_id = uuid::Uuid::now_v7().to_string();
        let rows = self
            .query(
                |c| &c.untrust,
                &[&c.sub, &c.sid, &now, &id, &event_id, &ip, &ua],
            )
            .await?;
        let row = rows.first().ok_or("untrust returned no row")?;
        Ok(match (row.get::<_, i64>(0), row.get::<_, i64>(1)) {
            (0, _) => Outcome::Inactive,
            (_, 0) => Outcome::NotFound,
            _ => Outcome::Done(()),
        })
    }

    pub async fn heartbeat(&self, c: Claims, id: String) -> wire::Result<NaiveDateTime> {
        let now = crate::now();
        let wanted = now + TimeDelta::hours(24);
        let rows = self
            .query(|c| &c.heartbeat, &[&c.sub, &c.sid, &now, &id, &wanted])
            .await?;
        let row = rows.first().ok_or("heartbeat returned no row")?;
        Ok(
            match (row.get::<_, i64>(0), row.get::<_, Option<NaiveDateTime>>(2)) {
                (0, _) => Outcome::Inactive,
                (_, None) => Outcome::NotFound,
                (_, Some(new_expiry)) => Outcome::Done(new_expiry),
            },
        )
    }
}
