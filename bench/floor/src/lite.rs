//! SQLite: each worker reads on its own connection, on the worker thread
//! itself (a read of a few cached pages costs less than handing it to
//! another thread); the session check is a one-row CTE of the read, so one
//! statement and one snapshot. Every write goes to one writer thread, which
//! groups the writes waiting for it into one transaction and one commit
//! (WAL, synchronous=FULL: durable when answered), as the server does, with
//! each write's session check inside that transaction. A write that fails
//! fails its whole batch (every write of it is answered 500 and none is
//! applied): simple, and true to what each caller is told.

use std::{rc::Rc, sync::mpsc};

use chrono::{NaiveDateTime, TimeDelta};
use rusqlite::{types::ValueRef, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;

use crate::{
    auth::Claims,
    wire::{self, Details, DeviceRow, Listed, SessionRow, DEVICE_COLUMN_COUNT},
    Outcome,
};

/// The server's stored format of a TIMESTAMP on SQLite (Diesel's `%F %T%.f`),
/// compared as text by the queries, so the same format is bound.
const FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

fn text(at: NaiveDateTime) -> String {
    at.format(FORMAT).to_string()
}

fn time(row: &Row, i: usize) -> rusqlite::Result<NaiveDateTime> {
    let s: String = row.get(i)?;
    NaiveDateTime::parse_from_str(&s, FORMAT).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn opt_time(row: &Row, i: usize) -> rusqlite::Result<Option<NaiveDateTime>> {
    match row.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(_) => time(row, i).map(Some),
    }
}

/// `?1` user, `?2` the token's session, `?3` now.
macro_rules! caller {
    () => {
        "caller AS (SELECT device_id FROM sessions WHERE id = ?2 AND user_id = ?1 \
         AND revoked_at IS NULL AND expires_at > ?3)"
    };
}

const LIST: &str = concat!(
    "WITH ",
    caller!(),
    " SELECT caller.device_id, ",
    crate::device_columns!(),
    " FROM caller LEFT JOIN devices d ON d.user_id = ?1 ORDER BY d.last_seen DESC, d.id"
);

const CURRENT: &str = concat!(
    "SELECT ",
    crate::session_columns!(),
    ", ",
    crate::device_columns!(),
    " FROM sessions x JOIN devices d ON d.id = x.device_id WHERE x.id = ?2 AND x.user_id = ?1 \
     AND x.revoked_at IS NULL AND x.expires_at > ?3"
);

const GET: &str = concat!(
    "WITH ",
    caller!(),
    " SELECT caller.device_id, ",
    crate::device_columns!(),
    ", d.user_agent, d.fingerprint, ",
    crate::session_columns!(),
    " FROM caller LEFT JOIN devices d ON d.id = ?4 AND d.user_id = ?1 \
     LEFT JOIN sessions x ON x.device_id = d.id AND x.revoked_at IS NULL AND x.expires_at > ?3 \
     ORDER BY x.last_activity DESC, x.id"
);

const ACTIVE: &str = "SELECT device_id, started_at FROM sessions WHERE id = ?2 AND user_id = ?1 \
     AND revoked_at IS NULL AND expires_at > ?3";

fn device(row: &Row, at: usize) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: row.get(at)?,
        name: row.get(at + 1)?,
        kind: row.get(at + 2)?,
        os: row.get(at + 3)?,
        browser: row.get(at + 4)?,
        ip: row.get(at + 5)?,
        country: row.get(at + 6)?,
        city: row.get(at + 7)?,
        trusted: row.get(at + 8)?,
        level: row.get(at + 9)?,
        trust_expires_at: opt_time(row, at + 10)?,
        last_seen: time(row, at + 11)?,
        created_at: time(row, at + 12)?,
    })
}

fn session(row: &Row, at: usize) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(at)?,
        device_id: row.get(at + 1)?,
        ip: row.get(at + 2)?,
        location: row.get(at + 3)?,
        login_method: row.get(at + 4)?,
        started_at: time(row, at + 5)?,
        last_activity: time(row, at + 6)?,
        expires_at: time(row, at + 7)?,
    })
}

fn open(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// A worker's database: its read connection, and the writer's queue.
pub struct Lite {
    read: Rc<Connection>,
    writer: Writer,
}

impl Lite {
    pub fn open(path: &str, writer: Writer) -> rusqlite::Result<Self> {
        let read = open(path)?;
        read.execute_batch("PRAGMA query_only = 1;")?;
        Ok(Self {
            read: Rc::new(read),
            writer,
        })
    }

    pub fn list(&self, c: &Claims, now: NaiveDateTime) -> wire::Result<Listed> {
        let run = || -> rusqlite::Result<Outcome<Listed>> {
            let mut stmt = self.read.prepare_cached(LIST)?;
            let mut rows = stmt.query((&c.sub, &c.sid, text(now)))?;
            let mut listed: Option<Listed> = None;
            while let Some(row) = rows.next()? {
                let listed = listed.get_or_insert(Listed {
                    current_device: String::new(),
                    devices: Vec::new(),
                });
                listed.current_device = row.get(0)?;
                if !matches!(row.get_ref(1)?, ValueRef::Null) {
                    listed.devices.push(device(row, 1)?);
                }
            }
            Ok(listed.map_or(Outcome::Inactive, Outcome::Done))
        };
        run().map_err(|e| e.to_string())
    }

    pub fn current(&self, c: &Claims, now: NaiveDateTime) -> wire::Result<(SessionRow, DeviceRow)> {
        let run = || -> rusqlite::Result<Outcome<(SessionRow, DeviceRow)>> {
            let mut stmt = self.read.prepare_cached(CURRENT)?;
            let found = stmt
                .query_row((&c.sub, &c.sid, text(now)), |row| {
                    Ok((session(row, 0)?, device(row, 8)?))
                })
                .optional()?;
            Ok(found.map_or(Outcome::Inactive, Outcome::Done))
        };
        run().map_err(|e| e.to_string())
    }

    pub fn get(&self, c: &Claims, id: &str, now: NaiveDateTime) -> wire::Result<(String, Details)> {
        let run = || -> rusqlite::Result<Outcome<(String, Details)>> {
            let mut stmt = self.read.prepare_cached(GET)?;
            let mut rows = stmt.query((&c.sub, &c.sid, text(now), id))?;
            let Some(first) = rows.next()? else {
                return Ok(Outcome::Inactive);
            };
            if matches!(first.get_ref(1)?, ValueRef::Null) {
                return Ok(Outcome::NotFound);
            }
            let s = 1 + DEVICE_COLUMN_COUNT + 2;
            let current: String = first.get(0)?;
            let mut details = Details {
                device: device(first, 1)?,
                user_agent: first.get(1 + DEVICE_COLUMN_COUNT)?,
                fingerprint: first.get(2 + DEVICE_COLUMN_COUNT)?,
                sessions: Vec::new(),
            };
            if !matches!(first.get_ref(s)?, ValueRef::Null) {
                details.sessions.push(session(first, s)?);
            }
            while let Some(row) = rows.next()? {
                details.sessions.push(session(row, s)?);
            }
            Ok(Outcome::Done((current, details)))
        };
        run().map_err(|e| e.to_string())
    }

    pub async fn untrust(
        &self,
        c: Claims,
        id: String,
        ip: Option<String>,
        ua: Option<String>,
    ) -> wire::Result<()> {
        self.writer
            .send(move |conn, reply: &mut Option<Outcome<()>>| {
                *reply = Some(untrust(conn, &c, &id, ip.as_deref(), ua.as_deref())?);
                Ok(())
            })
            .await
    }

    pub async fn heartbeat(&self, c: Claims, id: String) -> wire::Result<NaiveDateTime> {
        self.writer
            .send(move |conn, reply: &mut Option<Outcome<NaiveDateTime>>| {
                *reply = Some(heartbeat(conn, &c, &id)?);
                Ok(())
            })
            .await
    }
}

fn active(
    conn: &Connection,
    user: &str,
    session: &str,
    now: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(ACTIVE)?
        .query_row((user, session, now), |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The server's untrust: the device, its active sessions revoked, and the
/// DEVICE_UNTRUSTED event with the columns the server writes.
fn untrust(
    conn: &Connection,
    c: &Claims,
    id: &str,
    ip: Option<&str>,
    ua: Option<&str>,
) -> rusqlite::Result<Outcome<()>> {
    let now = text(crate::now());
    if active(conn, &c.sub, &c.sid, &now)?.is_none() {
        return Ok(Outcome::Inactive);
    }
    let name: Option<String> = conn
        .prepare_cached(
            "UPDATE devices SET is_trusted = 0, trust_level = 'LOW', trust_expires_at = NULL \
             WHERE id = ?1 AND user_id = ?2 RETURNING device_name",
        )?
        .query_row((id, &c.sub), |r| r.get(0))
        .optional()?;
    let Some(name) = name else {
        return Ok(Outcome::NotFound);
    };
    let revoked = conn
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL \
             AND expires_at > ?2",
        )?
        .execute((id, &now))?;
    conn.prepare_cached(
        "INSERT INTO security_events (id, user_id, event_type, occurred_at, device_id, device_name, \
         session_id, revoked_session_count, actor_session_id, ip_address, user_agent, actor_service) \
         VALUES (?1, ?2, 'DEVICE_UNTRUSTED', ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9, NULL)",
    )?
    .execute((
        uuid::Uuid::now_v7().to_string(),
        &c.sub,
        &now,
        id,
        name,
        revoked as i64,
        &c.sid,
        ip,
        ua,
    ))?;
    Ok(Outcome::Done(()))
}

/// The server's heartbeat: the session's and its device's activity, the
/// expiry moved 24 h ahead but never past 30 days after its start.
fn heartbeat(conn: &Connection, c: &Claims, id: &str) -> rusqlite::Result<Outcome<NaiveDateTime>> {
    let at = crate::now();
    let now = text(at);
    if active(conn, &c.sub, &c.sid, &now)?.is_none() {
        return Ok(Outcome::Inactive);
    }
    let Some((device_id, started_at)) = active(conn, &c.sub, id, &now)? else {
        return Ok(Outcome::NotFound);
    };
    let started_at = NaiveDateTime::parse_from_str(&started_at, FORMAT).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let new_expiry = (at + TimeDelta::hours(24)).min(started_at + TimeDelta::days(30));
    conn.prepare_cached("UPDATE devices SET last_seen = ?2 WHERE id = ?1")?
        .execute((&device_id, &now))?;
    conn.prepare_cached("UPDATE sessions SET last_activity = ?2, expires_at = ?3 WHERE id = ?1")?
        .execute((id, &now, text(new_expiry)))?;
    Ok(Outcome::Done(new_expiry))
}

/// A write: runs inside the writer's transaction, keeps its answer until
/// the commit.
trait Job: Send {
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    fn answer(self: Box<Self>, committed: Result<(), String>);
}

struct Pending<T, F> {
    work: F,
    result: Option<Outcome<T>>,
    reply: oneshot::Sender<wire::Result<T>>,
}

impl<T: Send, F> Job for Pending<T, F>
where
    F: FnMut(&Connection, &mut Option<Outcome<T>>) -> rusqlite::Result<()> + Send,
{
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        (self.work)(conn, &mut self.result)
    }

    fn answer(self: Box<Self>, committed: Result<(), String>) {
        let Self { result, reply, .. } = *self;
        let result = committed.and_then(|()| result.ok_or_else(|| "not run".to_owned()));
        let _ = reply.send(result);
    }
}

/// The queue of the one writer thread.
#[derive(Clone)]
pub struct Writer(mpsc::Sender<Box<dyn Job>>);

/// The server's largest batch.
const MAX_BATCH: usize = 128;

impl Writer {
    pub fn start(path: &str) -> Self {
        let conn = open(path).expect("cannot open the SQLite database for writing");
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("floor-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let committed = commit(&conn, &mut batch).map_err(|e| e.to_string());
                    if let Err(e) = &committed {
                        eprintln!("ERROR write batch of {} rolled back: {e}", batch.len());
                    }
                    for job in batch {
                        job.answer(committed.clone());
                    }
                }
            })
            .expect("cannot start the writer thread");
        Self(jobs)
    }

    async fn send<T, F>(&self, work: F) -> wire::Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Option<Outcome<T>>) -> rusqlite::Result<()> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Box::new(Pending {
                work,
                result: None,
                reply,
            }))
            .map_err(|_| "the writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the writer dropped the write".to_owned())?
    }
}

fn commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        if let Err(e) = job.run(conn) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(())
}
