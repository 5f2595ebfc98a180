//! Spawns the real server on port 0 with a throwaway database per test, on
//! SQLite always and on PostgreSQL when `TEST_POSTGRES_URL` is set (as in
//! zero2prod's `tests/api/helpers.rs`), and a client that checks every
//! response against `openapi/openapi.yaml`.

use std::{path::PathBuf, time::Duration};

use diesel::{pg::PgConnection, sql_query, Connection, RunQueryDsl};
use flashback_devices::{
    api::types::DeviceType,
    auth::TokenKeys,
    cursor::CursorKey,
    db::{DatabaseUrl, Db, PoolSettings, WriteMode},
    provisioning::{self, IssuedSession, SignIn},
    startup::{Application, ServerOptions},
    state::{AppState, Policy},
};
use reqwest::Method;
use serde_json::Value;

use crate::conformance;

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server to test against. Under CI its absence is a failure,
/// not a skip: a suite that silently did not run must not count as green.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!("CI is set but TEST_POSTGRES_URL is not"),
        _ => {
            eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
            None
        }
    }
}

/// Runs one test body on each backend, as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::helpers::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = TestApp::spawn(Backend::Sqlite).await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if postgres_url().is_none() {
                    return;
                }
                let $app = TestApp::spawn(Backend::Postgres).await;
                $body
            }
        }
    };
}

enum Scratch {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Scratch::Postgres {
            admin_url,
            database,
        } = self
        {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    /// The `metrics_bind_addr` listener, when the setup asked for one.
    #[allow(dead_code)]
    pub metrics_address: Option<String>,
    /// The `platform_bind_addr` listener, when the setup asked for one.
    #[allow(dead_code)]
    pub platform_address: Option<String>,
    #[allow(dead_code)]
    pub backend: Backend,
    pub db: Db,
    pub tokens: TokenKeys,
    pub policy: Policy,
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub database_url: String,
    cached_token: std::sync::Mutex<Option<String>>,
    _scratch: Scratch,
}

pub struct TestResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How to build the server under test; `Setup::default()` is the common case.
pub struct Setup {
    pub pool: PoolSettings,
    /// `None`: what `GROUP_COMMIT=auto` picks for the backend.
    pub write_mode: Option<WriteMode>,
    pub options: ServerOptions,
    pub tokens: TokenKeys,
    pub policy: Policy,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            pool: PoolSettings {
                max_size: 8,
                acquire_timeout: Duration::from_secs(5),
            },
            write_mode: None,
            options: ServerOptions::local(),
            tokens: TokenKeys::hs256(TEST_SECRET.as_bytes()).unwrap(),
            policy: Policy::default(),
        }
    }
}

impl Setup {
    /// The common case, with these server options.
    pub fn with_options(options: ServerOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// The common case, signing and checking tokens with `tokens`.
    pub fn with_tokens(tokens: TokenKeys) -> Self {
        Self {
            tokens,
            ..Self::default()
        }
    }
}

/// A device and session made for a test, with its token.
pub type Login = IssuedSession;

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Setup::default()).await
    }

    pub async fn spawn_with(backend: Backend, setup: Setup) -> Self {
        let (pool, write_mode) = (setup.pool, setup.write_mode);
        let _ = env_logger::builder().is_test(true).try_init();
        let (database_url, scratch) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("test.db");
                (format!("sqlite://{}", path.display()), Scratch::Sqlite(dir))
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect("TEST_POSTGRES_URL");
                let database = format!("fd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn =
                    PgConnection::establish(&admin_url).expect("connect to TEST_POSTGRES_URL");
                sql_query(format!("CREATE DATABASE \"{database}\""))
                    .execute(&mut conn)
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&database);
                (
                    url.to_string(),
                    Scratch::Postgres {
                        admin_url,
                        database,
                    },
                )
            }
        };
        let parsed = DatabaseUrl::parse(&database_url).expect("test database URL");
        let (db, cursor_key) = tokio::task::spawn_blocking(move || {
            let write_mode = write_mode.unwrap_or_else(|| WriteMode::for_url(&parsed));
            let db = Db::open_with(parsed, pool, write_mode).expect("open test database");
            let cursor_key = CursorKey::load(&db).expect("cursor key");
            (db, cursor_key)
        })
        .await
        .unwrap();
        let tokens = setup.tokens;
        let policy = setup.policy;
        let state = AppState {
            db: db.clone(),
            tokens: tokens.clone(),
            policy,
            cursor_key,
        };
        let app = Application::build(state, &setup.options).expect("bind");
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let platform_address = app
            .platform_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            address,
            metrics_address,
            platform_address,
            backend,
            db,
            tokens,
            policy,
            client,
            database_url,
            cached_token: Default::default(),
            _scratch: scratch,
        }
    }

    /// Signs `user` in on a new device named `device_name` (or the user's
    /// device with `fingerprint`), as `session create` does.
    pub async fn login(&self, user: &str, device_name: &str, fingerprint: Option<&str>) -> Login {
        self.login_with(
            user,
            device_name,
            fingerprint,
            Duration::from_secs(3600),
            false,
        )
        .await
    }

    pub async fn login_with(
        &self,
        user: &str,
        device_name: &str,
        fingerprint: Option<&str>,
        ttl: Duration,
        trusted: bool,
    ) -> Login {
        let (db, tokens, policy) = (self.db.clone(), self.tokens.clone(), self.policy);
        let request = SignIn {
            user_id: user.into(),
            device_name: device_name.into(),
            fingerprint: fingerprint.map(str::to_owned),
            device_type: DeviceType::Desktop,
            os: "Linux".into(),
            browser: "Firefox".into(),
            user_agent: Some("test-agent".into()),
            ip_address: Some("192.0.2.1".into()),
            location: Some("Lisbon, Portugal".into()),
            login_method: "password".into(),
            ttl,
            trusted,
        };
        tokio::task::spawn_blocking(move || provisioning::sign_in(&db, &tokens, &policy, request))
            .await
            .unwrap()
            .expect("sign in")
    }

    /// Creates a service key named `name`, as `service-key create` does, and
    /// returns it.
    #[allow(dead_code)]
    pub async fn service_key(&self, name: &str) -> String {
        use flashback_devices::{db::models::ServiceKeyRow, service_auth};
        let key = service_auth::generate();
        let row = ServiceKeyRow {
            name: name.to_owned(),
            key_hash: service_auth::hash(&key),
            created_at: flashback_devices::db::now(),
            last_used_at: None,
        };
        let db = self.db.clone();
        let created = tokio::task::spawn_blocking(move || {
            db.run_blocking(|conn| flashback_devices::db::service_keys::create(conn, &row))
        })
        .await
        .unwrap()
        .expect("create service key");
        assert!(created, "service key {name} exists already");
        key
    }

    /// Sends a request and checks the response against the spec.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let response = self.call_unchecked(method.clone(), path, token, body).await;
        conformance::check(method.as_str(), path, response.status, &response.body);
        conformance::check_headers(method.as_str(), path, response.status, &response.headers);
        response
    }

    /// Sends a request without checking the response against the spec (for
    /// paths and methods outside it).
    pub async fn call_unchecked(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_test_response(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::POST, path, Some(token), None).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// A raw request built by the test, checked against the spec.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> TestResponse {
        let response = into_test_response(request.send().await.expect("request")).await;
        conformance::check(method, path, response.status, &response.body);
        conformance::check_headers(method, path, response.status, &response.headers);
        response
    }

    /// A valid token of user `fuzz`, made once and remade when revoked.
    pub async fn login_cached(&self) -> String {
        let cached = self.cached_token.lock().unwrap().clone();
        if let Some(token) = cached {
            let still_valid = self
                .call_unchecked(Method::GET, "/sessions", Some(&token), None)
                .await
                .status
                == 200;
            if still_valid {
                return token;
            }
        }
        let token = self.login("fuzz", "Fuzz device", Some("fp")).await.token;
        *self.cached_token.lock().unwrap() = Some(token.clone());
        token
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Every security event `token`'s user can list, newest first, walking
    /// `nextCursor` to the end (100 a page).
    pub async fn events(&self, token: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut path = "/security-events?limit=100".to_owned();
        loop {
            let page = self.get(&path, token).await;
            assert_eq!(page.status, 200, "{path}: {}", page.body);
            events.extend(page.body["events"].as_array().unwrap().iter().cloned());
            match page.body["nextCursor"].as_str() {
                Some(cursor) => path = format!("/security-events?limit=100&cursor={cursor}"),
                None => return events,
            }
        }
    }

    /// The SQLite database's file, on SQLite.
    #[allow(dead_code)]
    pub fn sqlite_path(&self) -> Option<String> {
        self.database_url
            .strip_prefix("sqlite://")
            .map(str::to_owned)
    }

    /// Runs SQL on a connection of the server's pool, behind its back (to
    /// break or repair the schema under it, say).
    pub async fn execute_sql(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        let (db, sql) = (self.db.clone(), sql.to_owned());
        tokio::task::spawn_blocking(move || db.run_blocking(|conn| conn.batch_execute(&sql)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("test SQL failed: {e}"));
    }

    /// Another server on this app's database, as a second server of one
    /// deployment (or this one after a restart) would be: its own pool,
    /// its own state read from the database. Returns its base URL.
    pub async fn another_server(&self) -> String {
        self.another_server_with(ServerOptions::local()).await
    }

    /// Like [`TestApp::another_server`], with these options.
    pub async fn another_server_with(&self, options: ServerOptions) -> String {
        let parsed = DatabaseUrl::parse(&self.database_url).expect("test database URL");
        let (db, cursor_key) = tokio::task::spawn_blocking(move || {
            let db = Db::open(parsed, Setup::default().pool).expect("open test database");
            let cursor_key = CursorKey::load(&db).expect("cursor key");
            (db, cursor_key)
        })
        .await
        .unwrap();
        let state = AppState {
            db,
            tokens: self.tokens.clone(),
            policy: self.policy,
            cursor_key,
        };
        let app = Application::build(state, &options).expect("bind");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }
}

/// A device of the [`Scenario`]s, with the name and fingerprint it signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Laptop,
    Phone,
    Tablet,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Self::Laptop => "Laptop",
            Self::Phone => "Phone",
            Self::Tablet => "Tablet",
        }
    }

    /// One fingerprint per device, so that signing in on it again adds a
    /// session to the same device.
    pub fn fingerprint(self) -> &'static str {
        match self {
            Self::Laptop => "fp-laptop",
            Self::Phone => "fp-phone",
            Self::Tablet => "fp-tablet",
        }
    }
}

/// One user's sign-ins, made as `session create` makes them, in the order
/// the steps are written:
///
/// ```ignore
/// let alice = Scenario::new(&app, "alice").laptop().trusted_phone().build().await;
/// app.post(&format!("/devices/{}/untrust", alice.phone().device_id), &alice.laptop().token)
/// ```
///
/// A device named twice (`.laptop().laptop()`) gets a second session.
#[must_use = "nothing is signed in until `build`"]
pub struct Scenario<'a> {
    app: &'a TestApp,
    user: String,
    sign_ins: Vec<(Device, SignInKind)>,
}

#[derive(Debug, Clone, Copy)]
enum SignInKind {
    Plain,
    Trusted,
    /// A lifetime of one millisecond: over by the time the test looks.
    Expired,
}

impl<'a> Scenario<'a> {
    pub fn new(app: &'a TestApp, user: &str) -> Self {
        Self {
            app,
            user: user.to_owned(),
            sign_ins: Vec::new(),
        }
    }

    fn then(mut self, device: Device, kind: SignInKind) -> Self {
        self.sign_ins.push((device, kind));
        self
    }

    pub fn laptop(self) -> Self {
        self.then(Device::Laptop, SignInKind::Plain)
    }

    /// A sign-in on the laptop that trusts it.
    pub fn trusted_laptop(self) -> Self {
        self.then(Device::Laptop, SignInKind::Trusted)
    }

    pub fn phone(self) -> Self {
        self.then(Device::Phone, SignInKind::Plain)
    }

    /// A sign-in on the phone that trusts it.
    pub fn trusted_phone(self) -> Self {
        self.then(Device::Phone, SignInKind::Trusted)
    }

    pub fn tablet(self) -> Self {
        self.then(Device::Tablet, SignInKind::Plain)
    }

    /// A sign-in on the tablet whose session expires at once (the test
    /// waits a little before relying on that).
    pub fn expired_tablet(self) -> Self {
        self.then(Device::Tablet, SignInKind::Expired)
    }

    pub async fn build(self) -> Signed {
        let mut sessions = Vec::with_capacity(self.sign_ins.len());
        for (device, kind) in self.sign_ins {
            let (ttl, trusted) = match kind {
                SignInKind::Plain => (Duration::from_secs(3600), false),
                SignInKind::Trusted => (Duration::from_secs(3600), true),
                SignInKind::Expired => (Duration::from_millis(1), false),
            };
            let login = self
                .app
                .login_with(
                    &self.user,
                    device.name(),
                    Some(device.fingerprint()),
                    ttl,
                    trusted,
                )
                .await;
            sessions.push((device, login));
        }
        Signed { sessions }
    }
}

/// The sessions a [`Scenario`] signed in, by device.
pub struct Signed {
    sessions: Vec<(Device, Login)>,
}

impl Signed {
    /// The laptop's first session.
    pub fn laptop(&self) -> &Login {
        self.session(Device::Laptop, 0)
    }

    /// The phone's first session.
    pub fn phone(&self) -> &Login {
        self.session(Device::Phone, 0)
    }

    /// The tablet's first session.
    pub fn tablet(&self) -> &Login {
        self.session(Device::Tablet, 0)
    }

    /// The `nth` session (from 0) signed in on `device`.
    pub fn session(&self, device: Device, nth: usize) -> &Login {
        self.sessions_on(device)
            .get(nth)
            .copied()
            .unwrap_or_else(|| panic!("the scenario signs in on the {device:?} fewer times"))
    }

    /// Every session signed in on `device`, in order.
    pub fn sessions_on(&self, device: Device) -> Vec<&Login> {
        self.sessions
            .iter()
            .filter(|(on, _)| *on == device)
            .map(|(_, login)| login)
            .collect()
    }
}

/// Another process that looks, to SQLite, as if it were rebuilding the WAL
/// index of the database at `path` ("recovery"): it holds the write and
/// recovery locks of the `-shm` file and has zeroed the index header, so
/// every reader must wait for it. A reader that does not wait (busy timeout
/// 0, as the workers' own connections) fails with "database is locked":
/// the busy that sends a worker's read to the blocking pool. It ends when
/// dropped, and the next reader rebuilds the index for real.
pub struct RecoveryElsewhere(std::process::Child);

impl RecoveryElsewhere {
    pub fn start(path: &str) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        // SQLite's shm locks are POSIX byte locks, which only another
        // process can hold against this one: 120 is the WAL write lock,
        // 122 the recovery lock; the header is the first 96 bytes.
        const HOLD: &str = "import fcntl, os, sys\n\
            fd = os.open(sys.argv[1] + '-shm', os.O_RDWR)\n\
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 120)\n\
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 122)\n\
            os.pwrite(fd, bytes(96), 0)\n\
            print('held', flush=True)\n\
            sys.stdin.read()\n";
        let mut child = Command::new("python3")
            .args(["-c", HOLD, path])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held", "the lock holder did not start");
        Self(child)
    }
}

impl Drop for RecoveryElsewhere {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// The types of `events`, in their order.
pub fn event_types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

pub async fn into_test_response(response: reqwest::Response) -> TestResponse {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    TestResponse {
        status,
        headers,
        body,
    }
}

/// The body of the answer to `request`, as text, whatever its status (for
/// what the spec does not describe: pages, metrics, documents).
pub async fn fetch_text(request: reqwest::RequestBuilder) -> String {
    request
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

/// The body of the answer to `request`, as JSON, whatever its status.
pub async fn fetch_json(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("a JSON body")
}

/// Fails the test with the command's standard error unless it exited 0.
#[track_caller]
pub fn assert_succeeded(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The time in a JSON string field, such as `expiresAt`.
pub fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
        .parse()
        .unwrap_or_else(|e| panic!("{value} is not a time: {e}"))
}

/// The exact error body of the spec's convention.
pub fn error_body(message: &str) -> Value {
    serde_json::json!({"success": false, "error": message})
}

pub fn message_body(message: &str) -> Value {
    serde_json::json!({"success": true, "message": message})
}
