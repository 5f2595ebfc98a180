//! Configuration: the command line and its environment variables (clap), and
//! the JWT secret, which comes from `JWT_SECRET` or, in development mode on
//! SQLite, from a generated file beside the database.
//!
//! Plain data only: each part of the server builds its own settings from
//! these arguments (`ServerOptions::from_args`, `WebhookSettings::from_args`,
//! `Policy::from_args`), so the server depends on configuration and never the
//! other way round, and a new setting is checked where it is used.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, Parser, Subcommand};

use crate::{
    db::{DatabaseUrl, PoolSettings, WriteMode},
    telemetry::logging::LogFormat,
};

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC output.
/// Defined here, where `JWT_SECRET` is read, and used by `auth` too.
pub const MIN_SECRET_LEN: usize = 32;

/// The prefix length IPv6 clients are counted by unless configured
/// (`RATE_LIMIT_IPV6_PREFIX`); the rate limiter's default too.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "flashback-devices",
    version,
    about = "Device/Session Management API of the Flashback platform (OpenAPI-first)",
    args_conflicts_with_subcommands = true,
    after_help = "Environment: JWT_SECRET (HS256 secret, at least 32 bytes; without it, development \
                  mode keeps a generated secret beside the SQLite database), RUST_LOG (log filter, default info)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// sqlite://PATH (the default, created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = DatabaseUrl::DEFAULT,
        global = true
    )]
    pub database_url: String,
    /// How long trustDevice (and `session create --trusted`) trusts a device, in days.
    #[arg(long, env = "TRUST_PERIOD_DAYS", default_value_t = 30, global = true)]
    pub trust_period_days: u32,
    /// How far a heartbeat extends a session, in seconds; also the default --ttl.
    #[arg(
        long,
        env = "SESSION_EXTENSION_SECONDS",
        default_value_t = 86_400,
        global = true
    )]
    pub session_extension_seconds: u64,
    /// How long a session lasts at most from its sign-in, whatever its heartbeats, in seconds; 0: no limit.
    #[arg(
        long,
        env = "SESSION_MAX_LIFETIME_SECONDS",
        default_value_t = 2_592_000,
        global = true
    )]
    pub session_max_lifetime_seconds: u64,
    /// Active sessions one user may have; a sign-in beyond it ends the least recently active ones. 0: no limit.
    #[arg(
        long,
        env = "MAX_SESSIONS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_sessions_per_user: u32,
    /// How log lines are written: text (human-readable) or json (one object per line).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Manage sessions from the command line.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Keys of the deployment's own services, for the platform operations.
    #[command(subcommand, name = "service-key")]
    ServiceKey(ServiceKeyCommand),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON, or YAML with --yaml).
    Openapi {
        #[arg(long)]
        yaml: bool,
        /// 3.1: the source document; 3.0: its 3.0.3 edition, for the tools that read 3.0 only.
        #[arg(long, default_value = "3.1", value_parser = ["3.1", "3.0"])]
        spec_version: String,
        /// Without the platform operations (JSON, 3.1): the document frontend teams generate clients from.
        #[arg(long, conflicts_with_all = ["yaml", "spec_version"])]
        public: bool,
    },
    /// Security-event webhooks: a new secret, the outbox's state, retrying failed deliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Print a new WEBHOOK_SECRET (`whsec_` + base64 of 32 random bytes).
    Secret,
    /// Print how many deliveries are pending, delivered and failed, and the oldest pending one's age.
    Status,
    /// Put every failed delivery back to pending (retried from now, for a new retry period).
    Retry,
}

#[derive(Debug, Subcommand)]
pub enum ServiceKeyCommand {
    /// Create a key and print it, once (only its hash is stored).
    Create {
        /// The key's name, shown as `actorService` in security events: 1 to 64 characters of A-Za-z0-9._-.
        #[arg(long)]
        name: String,
    },
    /// List the keys: name, created, last used (never the key).
    List,
    /// Revoke the key named NAME: refused from the next request on, on every server.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// Connections of the pool beside the database threads': the retention
/// task's and the webhook dispatcher's.
const BACKGROUND_CONNECTIONS: usize = 2;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: String,
    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,
    /// Threads per HTTP worker that run database calls. A few per core is
    /// fastest (more only add context switches and lock contention; fewer
    /// leave PostgreSQL commits ungrouped).
    #[arg(long, env = "BLOCKING_THREADS", default_value_t = 4)]
    pub blocking_threads: usize,
    /// Database connections kept at most (default: one per database thread,
    /// workers x BLOCKING_THREADS, plus 2 for the background tasks).
    #[arg(long, env = "DB_POOL_SIZE")]
    pub db_pool_size: Option<u32>,
    /// How long a request waits for a database connection before answering 503, in milliseconds.
    #[arg(long, env = "DB_POOL_TIMEOUT_MS", default_value_t = 2_000)]
    pub db_pool_timeout_ms: u64,
    /// Requests per second allowed to one client (its token's user, else its address); 0 turns rate limiting off.
    #[arg(long, env = "RATE_LIMIT_RPS", default_value_t = 20)]
    pub rate_limit_rps: u32,
    /// Requests one client may send at once above the steady rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 40)]
    pub rate_limit_burst: u32,
    /// IPv6 clients without a token are counted by this prefix of their address (0-128).
    #[arg(long, env = "RATE_LIMIT_IPV6_PREFIX", default_value_t = DEFAULT_IPV6_PREFIX,
          value_parser = clap::value_parser!(u8).range(0..=128))]
    pub rate_limit_ipv6_prefix: u8,
    /// Comma-separated origins allowed to call the API from a browser (CORS); empty: CORS off.
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Comma-separated addresses and CIDR ranges of reverse proxies whose
    /// X-Forwarded-For names the client; empty: the peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Days security events are kept; older ones are deleted in the background. 0: kept for ever.
    #[arg(long, env = "SECURITY_EVENT_RETENTION_DAYS", default_value_t = 90)]
    pub security_event_retention_days: u32,
    /// How long a request body may take to arrive after the request's head, in milliseconds (then 408).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 5_000)]
    pub body_timeout_ms: u64,
    /// Serve GET /metrics on this address (BIND_ADDR answers 404 there). Without it, and without
    /// METRICS_PUBLIC, the metrics are not served at all.
    #[arg(long, env = "METRICS_BIND_ADDR")]
    pub metrics_bind_addr: Option<String>,
    /// Serve GET /metrics on BIND_ADDR, beside the API, to anyone who can reach it (off by default:
    /// the metrics show traffic, refusals and the pool's state).
    #[arg(long, env = "METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_public: bool,
    /// Serve the platform operations (/platform/...) on this address only (BIND_ADDR then answers 404 for them).
    #[arg(long, env = "PLATFORM_BIND_ADDR")]
    pub platform_bind_addr: Option<String>,
    /// on: waiting writes share one transaction and one commit (one writer);
    /// off: every write commits alone, concurrently; auto: on for SQLite, off
    /// for PostgreSQL (which groups concurrent commits itself, and gains more
    /// from parallel connections than from one writer: docs/performance.md).
    #[arg(long, env = "GROUP_COMMIT", value_enum, default_value_t = GroupCommit::Auto)]
    pub group_commit: GroupCommit,
    /// Comma-separated http(s) URLs every security event is POSTed to, signed; empty: webhooks off.
    #[arg(long, env = "WEBHOOK_URLS", hide_env_values = true, default_value = "")]
    pub webhook_urls: String,
    /// The webhooks' signing secret, `whsec_` + base64 of at least 24 random bytes
    /// (`flashback-devices webhook secret` prints one). Required with WEBHOOK_URLS.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub webhook_secret: String,
    /// How long one webhook attempt may take, in milliseconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 5_000)]
    pub webhook_timeout_ms: u64,
    /// The first webhook retry's delay in milliseconds; each further one doubles it (with jitter).
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000)]
    pub webhook_retry_base_ms: u64,
    /// The longest delay between two webhook attempts, in milliseconds.
    #[arg(long, env = "WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_retry_max_ms: u64,
    /// How long a webhook delivery is retried before it is marked failed, in seconds.
    #[arg(long, env = "WEBHOOK_GIVE_UP_AFTER_SECS", default_value_t = 86_400)]
    pub webhook_give_up_after_secs: u64,
    /// How often an idle webhook dispatcher looks for deliveries recorded by other processes, in milliseconds.
    #[arg(long, env = "WEBHOOK_POLL_MS", default_value_t = 500)]
    pub webhook_poll_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupCommit {
    Auto,
    On,
    Off,
}

impl ServeArgs {
    pub fn write_mode(&self, url: &DatabaseUrl) -> WriteMode {
        match self.group_commit {
            GroupCommit::On => WriteMode::Grouped,
            GroupCommit::Off => WriteMode::Alone,
            GroupCommit::Auto => WriteMode::for_url(url),
        }
    }

    /// HTTP workers: as given, else one per CPU core (actix's own default).
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// Every database thread has a connection of its own, so that none of
    /// them waits for one; the retention task and the webhook dispatcher
    /// take theirs beside them.
    pub fn pool(&self) -> PoolSettings {
        let per_thread = self.workers() * self.blocking_threads.max(1) + BACKGROUND_CONNECTIONS;
        PoolSettings {
            max_size: self
                .db_pool_size
                .unwrap_or_else(|| u32::try_from(per_thread).unwrap_or(u32::MAX))
                .max(1),
            acquire_timeout: Duration::from_millis(self.db_pool_timeout_ms.max(1)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Register a device (or reuse the user's device with that fingerprint) and a
    /// new session, and print its token as one JSON object.
    Create(SessionCreateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SessionCreateArgs {
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub device_name: String,
    /// Identifies the device among the user's devices (default: a new one).
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// DESKTOP, MOBILE or TABLET.
    #[arg(long, default_value = "DESKTOP")]
    pub device_type: String,
    #[arg(long, default_value = "unknown")]
    pub os: String,
    #[arg(long, default_value = "unknown")]
    pub browser: String,
    #[arg(long)]
    pub user_agent: Option<String>,
    #[arg(long)]
    pub ip: Option<String>,
    /// "City, Country" or any free text.
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long, default_value = "password")]
    pub login_method: String,
    /// Session lifetime in seconds (default: SESSION_EXTENSION_SECONDS).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Mark the device trusted for the trust period.
    #[arg(long)]
    pub trusted: bool,
}

/// Where the JWT secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    /// Development mode: generated once and kept in this file.
    DevelopmentFile(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("JWT_SECRET is set but empty: give a secret of at least {MIN_SECRET_LEN} bytes, or unset it for development mode (SQLite only)")]
    Empty,
    #[error("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (got {0})")]
    TooShort(usize),
    #[error(
        "JWT_SECRET is required when DATABASE_URL is PostgreSQL (development mode is SQLite only)"
    )]
    RequiredForPostgres,
    #[error("development JWT secret file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The secret from `JWT_SECRET`, or in development mode the one kept beside
/// the SQLite database (created with mode 0600 on first use), so that
/// `serve` and `session create` agree without configuration.
pub fn resolve_jwt_secret(
    env_secret: Option<String>,
    database: &DatabaseUrl,
) -> Result<(Vec<u8>, SecretSource), SecretError> {
    if let Some(secret) = env_secret {
        // Set but empty is a mistake (a template's placeholder, a missing
        // value in a secret store), not a request for development mode.
        if secret.trim().is_empty() {
            return Err(SecretError::Empty);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(secret.len()));
        }
        return Ok((secret.into_bytes(), SecretSource::Environment));
    }
    let DatabaseUrl::Sqlite { path } = database else {
        return Err(SecretError::RequiredForPostgres);
    };
    let file = development_secret_path(path);
    let secret = read_or_create_secret(&file).map_err(|reason| SecretError::File {
        path: file.clone(),
        reason,
    })?;
    Ok((secret, SecretSource::DevelopmentFile(file)))
}

pub fn development_secret_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".jwt-secret");
    database.with_file_name(name)
}

fn read_or_create_secret(file: &Path) -> Result<Vec<u8>, String> {
    use rand::RngCore;
    use std::os::unix::fs::PermissionsExt;
    match fs::read_to_string(file) {
        Ok(text) => {
            if let Ok(metadata) = fs::metadata(file) {
                if metadata.permissions().mode() & 0o077 != 0 {
                    log::warn!(
                        "the development JWT secret file {} is readable by others (mode {:o}): \
                         anyone who reads it can sign tokens; chmod 600 it",
                        file.display(),
                        metadata.permissions().mode() & 0o777
                    );
                }
            }
            let secret = text.trim().as_bytes().to_vec();
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "holds {} bytes; delete it to generate a new one",
                    secret.len()
                ));
            }
            return Ok(secret);
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        Err(_) => {}
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
    match created {
        Ok(mut handle) => {
            handle
                .write_all(secret.as_bytes())
                .map_err(|e| e.to_string())?;
            handle.sync_all().map_err(|e| e.to_string())?;
            Ok(secret.into_bytes())
        }
        // Another process (say `session create` racing `serve`) won: use its secret.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create_secret(file),
        Err(e) => Err(e.to_string()),
    }
}
