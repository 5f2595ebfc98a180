//! The database: backend chosen from `DATABASE_URL`, an r2d2 pool of Diesel
//! connections, migrations, and the ways handlers reach it: [`Db::read`]
//! (on SQLite, on the worker's own read-only connection, which never waits),
//! [`Db::write`] (through the one writer, [`writer`]) and [`Db::run`] (the
//! blocking pool), so that no actix worker ever waits for the database.

pub mod devices;
pub mod direct;
pub mod events;
pub mod models;
pub mod one_statement;
pub mod prepared;
pub mod schema;
pub mod server_keys;
pub mod service_keys;
pub mod sessions;
mod sqlite_settings;
pub mod webhook_deliveries;
pub mod writer;

use std::{
    cell::RefCell,
    fmt,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::telemetry::{context::Carried, DbMetrics, PoolState};

use diesel::{
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
    pg::PgConnection,
    result::{DatabaseErrorKind, Error as DieselError},
    sqlite::SqliteConnection,
    Connection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The migrations under `schema/`, portable across both backends.
///
/// A migration's directory name is its version: Diesel records it in
/// `__diesel_schema_migrations` of every database it ran on, and runs any
/// embedded version that table lacks. Three names are dated ahead of the
/// day they were written (`2026-12-01`, `-02` and `-03` were all committed
/// on 2026-11-27); they keep those names, since renaming one would make
/// every existing database run it a second time (its `CREATE TABLE` or
/// `DROP INDEX` then fails at start). Only the order of the names matters,
/// and it is the order the migrations were written in. A new migration is
/// named with the day it is written, later than every existing name.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("schema");

/// One connection of either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Where the data lives, parsed from `DATABASE_URL` by its scheme (as diesel
/// CLI's `InferConnection` does) so that a wrong URL is a clear error rather
/// than whatever the first backend tried happens to say.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    #[error("DATABASE_URL has no scheme: use sqlite://PATH or postgres://USER@HOST/DB")]
    NoScheme,
    #[error(
        "DATABASE_URL scheme `{0}` is not supported: use sqlite://PATH or postgres://USER@HOST/DB"
    )]
    UnsupportedScheme(String),
    #[error("DATABASE_URL sqlite:// needs a file path, e.g. sqlite://flashback-devices.db")]
    EmptySqlitePath,
}

impl DatabaseUrl {
    pub const DEFAULT: &'static str = "sqlite://flashback-devices.db";

    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(DatabaseUrlError::NoScheme)?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(DatabaseUrlError::EmptySqlitePath);
                }
                Ok(Self::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            "postgres" | "postgresql" => Ok(Self::Postgres {
                url: url.to_owned(),
            }),
            other => Err(DatabaseUrlError::UnsupportedScheme(other.to_owned())),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite { .. })
    }

    fn connect(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        match self {
            Self::Sqlite { path } => {
                create_private(path);
                let mut conn = sqlite_settings::establish(path)?;
                // The busy timeout makes a connection wait for a lock instead of
                // failing, so it comes first: even `journal_mode` reads the file
                // and can meet another connection's lock (bench runs logged
                // r2d2's bare "database is locked" now and then, most likely a
                // pool connection opened under load before it had a timeout).
                // WAL lets readers run beside the writer;
                // synchronous=FULL makes an acknowledged untrust survive power
                // loss, not only a crash of this process (WAL with NORMAL would
                // survive the latter).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(AnyConnection::Sqlite(conn))
            }
            Self::Postgres { url } => Ok(AnyConnection::Postgresql(PgConnection::establish(url)?)),
        }
    }
}

/// Creates a missing SQLite file readable by its owner only: it holds the
/// cursor key and users' addresses, and SQLite gives its `-wal` and `-shm`
/// files the mode of the database file. An existing file keeps its mode,
/// and a failure here is left to SQLite's own open to report.
fn create_private(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == ":memory:" || path.exists() {
        return;
    }
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// Shows the URL without its password, so it can go in logs and errors.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            Self::Postgres { url } => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    // libpq takes credentials as query parameters too.
                    let masked: Vec<(String, String)> = parsed
                        .query_pairs()
                        .map(|(key, value)| {
                            let secret = matches!(
                                key.to_ascii_lowercase().as_str(),
                                "password" | "sslpassword" | "passfile" | "sslkey"
                            );
                            let value = if secret {
                                "***".into()
                            } else {
                                value.into_owned()
                            };
                            (key.into_owned(), value)
                        })
                        .collect();
                    if !masked.is_empty() {
                        parsed.query_pairs_mut().clear().extend_pairs(masked);
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Opens connections of the backend the URL names; r2d2 calls it.
pub struct ConnectionManager {
    url: DatabaseUrl,
}

/// A pooled connection, and whether a query on it found the server gone.
///
/// The pool does not test connections on checkout (that would cost a round
/// trip per request); instead a connection whose query failed as
/// "unavailable" is marked lost here and dropped when it returns to the pool,
/// so after a database outage each stale connection fails at most one request
/// (with a 503) and the pool reconnects by itself.
pub struct PooledConnection {
    conn: AnyConnection,
    lost: bool,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledConnection;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<PooledConnection, Self::Error> {
        Ok(PooledConnection {
            conn: self.url.connect()?,
            lost: false,
        })
    }

    fn is_valid(&self, pooled: &mut PooledConnection) -> Result<(), Self::Error> {
        pooled
            .conn
            .batch_execute("SELECT 1")
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
    }

    fn has_broken(&self, pooled: &mut PooledConnection) -> bool {
        // A connection left inside a transaction must not be handed out again.
        pooled.lost
            || match &mut pooled.conn {
                AnyConnection::Postgresql(c) => {
                    AnsiTransactionManager::is_broken_transaction_manager(c)
                }
                AnyConnection::Sqlite(c) => {
                    AnsiTransactionManager::is_broken_transaction_manager(c)
                }
            }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections kept open at most.
    pub max_size: u32,
    /// How long a request waits for a free connection before it gets a 503.
    pub acquire_timeout: Duration,
}

/// Why a database call failed, split by what the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or the server went away: retryable (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken invariant (500).
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// The commit of a group of writes failed, so none of them is applied (500).
    #[error("the group's commit failed: {0}")]
    Commit(String),
}

impl DbError {
    /// The same failure, told to each write of a group that shares it.
    fn for_each_job(&self) -> Self {
        match self {
            Self::Unavailable(cause) => Self::Unavailable(cause.clone()),
            Self::Query(cause) => Self::Commit(cause.to_string()),
            Self::Commit(cause) => Self::Commit(cause.clone()),
        }
    }

    fn commit_failed(error: DieselError) -> Self {
        match Self::classify(error) {
            Self::Query(cause) => Self::Commit(cause.to_string()),
            other => other,
        }
    }

    fn classify(error: DieselError) -> Self {
        // libpq reports a server that went away in several ways; Diesel names
        // only some of them.
        const LOST: [&str; 5] = [
            "terminating connection",
            "server closed the connection",
            "no connection to the server",
            "could not receive data",
            "connection to server",
        ];
        match &error {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)
            | DieselError::BrokenTransactionManager => Self::Unavailable(error.to_string()),
            DieselError::DatabaseError(_, info)
                if LOST.iter().any(|m| info.message().contains(m)) =>
            {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Query(error),
        }
    }
}

/// How writes reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Through the one writer: waiting writes share a transaction and its
    /// commit, each in its own savepoint (see [`writer`]).
    Grouped,
    /// Each write its own transaction and commit on the blocking pool, as
    /// many at once as there are connections (the design before group
    /// commit).
    Alone,
}

impl WriteMode {
    /// What `GROUP_COMMIT=auto` picks: grouped on SQLite, which commits one
    /// writer at a time anyway; alone on PostgreSQL, which groups concurrent
    /// commits itself and measured faster with parallel connections than
    /// through one writer (docs/performance.md).
    pub fn for_url(url: &DatabaseUrl) -> Self {
        if url.is_sqlite() {
            Self::Grouped
        } else {
            Self::Alone
        }
    }
}

/// The pool, the writer, and for SQLite where the workers' read-only
/// connections open. Cheap to clone (a few reference counts), as every
/// database call does.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    /// `None` with [`WriteMode::Alone`].
    writer: Option<Arc<writer::Writer>>,
    /// With [`WriteMode::Alone`] on SQLite: SQLite admits one writer at a
    /// time, and its busy handler polls with sleeps, so writers racing for
    /// the lock are served unfairly (seconds of p99 under load). Writers of
    /// this process queue here instead, holding no connection while they
    /// wait; other processes still meet the busy timeout.
    sqlite_write_lane: Option<Arc<Mutex<()>>>,
    /// SQLite: the file the workers' read-only connections open, and this
    /// `Db`'s number, which tells its connections from those of another
    /// `Db` on the same thread (tests run many servers in one process).
    sqlite_reads: Option<(Arc<PathBuf>, u64)>,
    acquire_timeout: Duration,
    /// Waits and commits, for the server's `/metrics`.
    metrics: DbMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database at {url}: {source}")]
    Connect {
        url: DatabaseUrl,
        source: diesel::ConnectionError,
    },
    #[error("cannot run the migrations on {url}: {message}")]
    Migrate { url: DatabaseUrl, message: String },
    #[error("cannot start the database writer for {url}: {source}")]
    Writer {
        url: DatabaseUrl,
        source: std::io::Error,
    },
}

impl Db {
    /// Connects once (so that a bad URL or an unreachable server is reported
    /// with the driver's own words), runs pending migrations on that
    /// connection, then builds the pool. Blocking: call before serving.
    pub fn open(url: DatabaseUrl, settings: PoolSettings) -> Result<Self, OpenError> {
        let write_mode = WriteMode::for_url(&url);
        Self::open_with(url, settings, write_mode)
    }

    /// [`Db::open`], with writes grouped or not.
    pub fn open_with(
        url: DatabaseUrl,
        settings: PoolSettings,
        write_mode: WriteMode,
    ) -> Result<Self, OpenError> {
        let mut first = url.connect().map_err(|source| OpenError::Connect {
            url: url.clone(),
            source,
        })?;
        run_migrations(&mut first).map_err(|message| OpenError::Migrate {
            url: url.clone(),
            message,
        })?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(settings.max_size)
            .test_on_check_out(false)
            .min_idle(Some(settings.max_size.min(2)))
            .connection_timeout(settings.acquire_timeout)
            // The first connection above proved the database answers; the pool
            // fills in the background rather than failing start-up on a slow connect.
            .build_unchecked(ConnectionManager { url: url.clone() });
        let metrics = DbMetrics::new();
        let writer = match write_mode {
            WriteMode::Grouped => Some(Arc::new(
                writer::Writer::start(
                    pool.clone(),
                    url.is_sqlite(),
                    metrics.clone(),
                    settings.acquire_timeout,
                )
                .map_err(|e| OpenError::Writer {
                    url: url.clone(),
                    source: e,
                })?,
            )),
            WriteMode::Alone => None,
        };
        let sqlite_write_lane =
            (url.is_sqlite() && writer.is_none()).then(|| Arc::new(Mutex::new(())));
        static NEXT_DB: AtomicU64 = AtomicU64::new(0);
        let sqlite_reads = match &url {
            DatabaseUrl::Sqlite { path } => Some((
                Arc::new(path.clone()),
                NEXT_DB.fetch_add(1, Ordering::Relaxed),
            )),
            DatabaseUrl::Postgres { .. } => None,
        };
        Ok(Self {
            pool,
            writer,
            sqlite_write_lane,
            sqlite_reads,
            acquire_timeout: settings.acquire_timeout,
            metrics,
        })
    }

    /// The SQLite database's file; `None` on PostgreSQL.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_reads.as_ref().map(|(path, _)| path.as_path())
    }

    /// The series this pool records (waits for threads and connections, commits).
    pub fn metrics(&self) -> &DbMetrics {
        &self.metrics
    }

    /// The pool's connections now.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    ///
    /// The wait is bounded by the pool's acquire timeout counted from *now*:
    /// time spent queued for a blocking thread counts against it, so a request
    /// gets its 503 in bounded time even when the database hangs.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        let queued = Instant::now();
        let deadline = queued + self.acquire_timeout;
        // Log lines written on the database thread still name the request.
        let request = Carried::capture();
        actix_web::web::block(move || {
            request.run(|| {
                db.metrics.record_thread_wait(queued.elapsed());
                db.run_until(deadline, work)
            })
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("blocking pool: {e}")))?
    }

    /// Runs `work` as one write: through the writer, in a savepoint of its
    /// group's transaction, answered once that transaction is committed
    /// (see [`writer`]); with [`WriteMode::Alone`], in a transaction of its
    /// own on the blocking pool. `work` may run more than once (a group run
    /// again); only one run is ever committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(work).await,
            None => self.write_alone(work).await,
        }
    }

    /// One write in its own transaction (see [`write_transaction`]) on the
    /// blocking pool. A transaction PostgreSQL aborted as a deadlock victim
    /// or a serialization failure is retried: nothing of it was applied.
    async fn write_alone<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        let queued = Instant::now();
        let deadline = queued + self.acquire_timeout;
        let request = Carried::capture();
        actix_web::web::block(move || {
            request.run(|| {
                db.metrics.record_thread_wait(queued.elapsed());
                let _turn = match &db.sqlite_write_lane {
                    Some(lane) => Some(lane.try_lock_until(deadline).ok_or_else(|| {
                        DbError::Unavailable("timed out waiting for the SQLite write lane".into())
                    })?),
                    None => None,
                };
                db.run_until(deadline, |conn| {
                    committed_with_retries(&db.metrics, "transaction", || {
                        write_transaction(conn, &work)
                    })
                })
            })
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("blocking pool: {e}")))?
    }

    /// Whether writes may run as single statements of their own on the
    /// blocking pool ([`Db::write_statement`]): PostgreSQL without the
    /// writer. SQLite, and PostgreSQL with `GROUP_COMMIT=on`, send every
    /// write through [`Db::write`].
    pub fn writes_by_statement(&self) -> bool {
        self.sqlite_reads.is_none() && self.writer.is_none()
    }

    /// Runs `work`, one statement that writes, on the blocking pool in its
    /// implicit transaction (no BEGIN/COMMIT round trips). A statement
    /// PostgreSQL aborted as a deadlock victim or a serialization failure is
    /// run again: nothing of it was applied.
    pub async fn write_statement<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let metrics = self.metrics.clone();
        self.run(move |conn| committed_with_retries(&metrics, "statement", || work(conn)))
            .await
    }

    /// Runs `work`, which only reads. On SQLite it runs right here, on the
    /// calling worker's own read-only connection: WAL readers do not wait
    /// for the writer, and its busy timeout is zero, so a worker never
    /// waits; a read that finds the database busy all the same (a
    /// checkpoint, a recovery) runs again on the blocking pool, as every
    /// PostgreSQL read does.
    pub async fn read<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some((path, id)) = &self.sqlite_reads {
            match read_here(path, *id, &work) {
                Some(Err(error)) if is_busy(&error) => {
                    log::debug!("read found the database busy; retrying on the blocking pool");
                }
                Some(outcome) => return outcome.map_err(DbError::classify),
                None => {}
            }
        }
        self.run(work).await
    }

    /// Runs `work` with a pooled connection on this thread (the CLI and
    /// start-up, which run outside actix).
    pub fn run_blocking<T>(
        &self,
        work: impl FnOnce(&mut AnyConnection) -> Result<T, DieselError>,
    ) -> Result<T, DbError> {
        self.run_until(Instant::now() + self.acquire_timeout, work)
    }

    fn run_until<T>(
        &self,
        deadline: Instant,
        work: impl FnOnce(&mut AnyConnection) -> Result<T, DieselError>,
    ) -> Result<T, DbError> {
        let asked = Instant::now();
        let wait = deadline.saturating_duration_since(asked);
        if wait.is_zero() {
            self.metrics.record_timeout();
            return Err(DbError::Unavailable(
                "timed out queued for a database thread".into(),
            ));
        }
        let pooled = self.pool.get_timeout(wait);
        self.metrics.record_pool_wait(asked, pooled.is_ok());
        let mut pooled = pooled.map_err(|e| DbError::Unavailable(e.to_string()))?;
        let outcome = work(&mut pooled.conn).map_err(DbError::classify);
        if let Err(DbError::Unavailable(_)) = &outcome {
            pooled.lost = true;
        }
        outcome
    }
}

thread_local! {
    /// This thread's read-only SQLite connections, one per open [`Db`].
    static READERS: RefCell<Vec<(u64, AnyConnection)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` on this thread's read-only connection to `path`; `None` when
/// that connection cannot be opened (the caller reads elsewhere).
fn read_here<T>(
    path: &std::path::Path,
    id: u64,
    work: &impl Fn(&mut AnyConnection) -> Result<T, DieselError>,
) -> Option<Result<T, DieselError>> {
    READERS.with(|readers| {
        let mut readers = readers.borrow_mut();
        let index = match readers.iter().position(|(of, _)| *of == id) {
            Some(index) => index,
            None => {
                let conn = open_reader(path)
                    .map_err(|e| log::warn!("cannot open a read-only connection: {e}"))
                    .ok()?;
                readers.push((id, AnyConnection::Sqlite(conn)));
                readers.len() - 1
            }
        };
        Some(read_transaction(&mut readers[index].1, work))
    })
}

/// Runs `work` in one read transaction: its statements take SQLite's read
/// lock and look up the WAL index once, instead of once per statement.
fn read_transaction<T>(
    conn: &mut AnyConnection,
    work: &impl Fn(&mut AnyConnection) -> Result<T, DieselError>,
) -> Result<T, DieselError> {
    conn.batch_execute("BEGIN")?;
    let outcome = work(conn);
    if let Err(error) = conn.batch_execute("COMMIT") {
        // Never leave this connection inside a transaction: every later
        // read of this worker would fail at its BEGIN.
        let _ = conn.batch_execute("ROLLBACK");
        return Err(error);
    }
    outcome
}

fn open_reader(path: &std::path::Path) -> Result<SqliteConnection, DieselError> {
    let mut conn = sqlite_settings::establish(path)
        .map_err(|e| DieselError::QueryBuilderError(e.to_string().into()))?;
    // The file is in WAL mode already (set by the pool's connections), so
    // nothing here takes a lock.
    conn.batch_execute(
        "PRAGMA query_only = 1;
         PRAGMA busy_timeout = 0;",
    )?;
    Ok(conn)
}

/// SQLITE_BUSY or SQLITE_LOCKED: another connection holds what this one
/// needs (Diesel names neither, so the message tells).
fn is_busy(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("is locked")
                || message.contains("busy")
        }
        _ => false,
    }
}

/// Runs `commit` (one write that commits: a transaction, or a statement in
/// its implicit one) and records its commit; a deadlock victim or a
/// serialization failure is run again, at most three runs in all: nothing
/// of an aborted run was applied.
fn committed_with_retries<T>(
    metrics: &DbMetrics,
    what: &str,
    mut commit: impl FnMut() -> Result<T, DieselError>,
) -> Result<T, DieselError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let began = Instant::now();
        match commit() {
            Err(error) if attempt < ATTEMPTS && is_transient(&error) => {
                log::info!("retrying a write {what} (attempt {attempt}): {error}");
                attempt += 1;
            }
            Ok(value) => {
                metrics.record_commit(1, began.elapsed());
                return Ok(value);
            }
            outcome => return outcome,
        }
    }
}

/// Deadlock victims (SQLSTATE 40P01, which Diesel does not name) and
/// serialization failures (40001).
fn is_transient(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Runs `work` in a transaction that takes the write lock up front.
///
/// On SQLite a deferred transaction that reads first and writes later can
/// fail with SQLITE_BUSY without waiting for the busy timeout (the lock
/// upgrade would deadlock); `BEGIN IMMEDIATE` takes the write lock at once and
/// waits for it properly. PostgreSQL's ordinary transaction is already fine.
pub fn write_transaction<T>(
    conn: &mut AnyConnection,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, DieselError>,
) -> Result<T, DieselError> {
    if let AnyConnection::Postgresql(_) = conn {
        return conn.transaction(work);
    }
    if let AnyConnection::Sqlite(sqlite) = conn {
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    }
    let outcome = work(conn);
    let AnyConnection::Sqlite(sqlite) = conn else {
        unreachable!("checked above")
    };
    match outcome {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(error) => {
            AnsiTransactionManager::rollback_transaction(sqlite)?;
            Err(error)
        }
    }
}

pub fn run_migrations(conn: &mut AnyConnection) -> Result<(), String> {
    let applied = match conn {
        AnyConnection::Postgresql(c) => c.run_pending_migrations(MIGRATIONS).map(|v| v.len()),
        AnyConnection::Sqlite(c) => c.run_pending_migrations(MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| e.to_string())?;
    if applied > 0 {
        log::info!("applied {applied} database migration(s)");
    }
    Ok(())
}

/// The current time as stored: UTC, microsecond precision (PostgreSQL's).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
