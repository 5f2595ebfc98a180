//! The floor of `bench/run`: the smallest fast server we know how to write
//! for the work of the server's hot paths (bench/README.md, "The floor").
//! Same tables (the server's migrations), same effects, same durability and
//! the same JSON bodies for the benchmarked operations; nothing else. Its
//! req/s is the yardstick the server's figures are divided by.
//!
//! Environment: DATABASE_URL (sqlite://PATH or postgres://…), JWT_SECRET,
//! BIND_ADDR, WORKERS (default: one per core), FLOOR_PG_CONNECTIONS (in all,
//! shared out among the workers; default 16, the server's default pool, so
//! that both run as many PostgreSQL backends).

mod auth;
mod lite;
mod pg;
mod wire;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{NaiveDateTime, Timelike};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A worker's database: its own PostgreSQL connections, or its own SQLite
/// read connection plus the process's one writer.
pub enum Db {
    Pg(pg::Pg),
    Lite(lite::Lite),
}

/// What a request may have to tell apart; every body is built by `wire`.
pub enum Outcome<T> {
    Done(T),
    /// The token's session is revoked, expired or unknown.
    Inactive,
    /// No such device / session of the caller.
    NotFound,
}

/// Now, to the microsecond (the server's `db::now`).
pub fn now() -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// A path id as the spec allows it: 1..=64 of `[A-Za-z0-9_-]`.
fn path_id(req: &HttpRequest) -> Option<String> {
    let id = req.match_info().get("id")?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| id.to_owned())
}

/// Client address and User-Agent, as the server records them on an event.
fn origin(req: &HttpRequest) -> (Option<String>, Option<String>) {
    let ip = req.peer_addr().map(|a| a.ip().to_string());
    let ua = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .map(|v| {
            let mut text = String::from_utf8_lossy(v.as_bytes()).into_owned();
            if text.len() > 512 {
                let mut end = 512;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            text
        })
        .filter(|t| !t.is_empty());
    (ip, ua)
}

macro_rules! authed {
    ($req:expr, $key:expr) => {
        match $key.verify(&$req) {
            Ok(claims) => claims,
            Err(refused) => return wire::unauthorized(refused),
        }
    };
}

macro_rules! id_or_400 {
    ($req:expr) => {
        match path_id(&$req) {
            Some(id) => id,
            None => return wire::error(400, "Invalid path parameter: id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'"),
        }
    };
}

async fn healthz() -> HttpResponse {
    wire::json(
        200,
        &wire::Health {
            success: true,
            status: "ok",
        },
    )
}

async fn readyz() -> HttpResponse {
    wire::json(
        200,
        &wire::Health {
            success: true,
            status: "ready",
        },
    )
}

async fn list_devices(
    req: HttpRequest,
    db: web::Data<Db>,
    key: web::Data<auth::Key>,
) -> HttpResponse {
    let claims = authed!(req, key);
    let now = now();
    let outcome = match &**db {
        Db::Pg(pg) => pg.list(&claims, now).await,
        Db::Lite(lite) => lite.list(&claims, now),
    };
    wire::list(outcome, now, "Failed to retrieve devices")
}

async fn current_session(
    req: HttpRequest,
    db: web::Data<Db>,
    key: web::Data<auth::Key>,
) -> HttpResponse {
    let claims = authed!(req, key);
    let now = now();
    let outcome = match &**db {
        Db::Pg(pg) => pg.current(&claims, now).await,
        Db::Lite(lite) => lite.current(&claims, now),
    };
    wire::current(outcome, &claims, now, "Failed to retrieve current session")
}

async fn get_device(
    req: HttpRequest,
    db: web::Data<Db>,
    key: web::Data<auth::Key>,
) -> HttpResponse {
    let claims = authed!(req, key);
    let id = id_or_400!(req);
    let now = now();
    let outcome = match &**db {
        Db::Pg(pg) => pg.get(&claims, &id, now).await,
        Db::Lite(lite) => lite.get(&claims, &id, now),
    };
    wire::details(outcome, &claims, now, "Failed to retrieve device details")
}

async fn untrust(req: HttpRequest, db: web::Data<Db>, key: web::Data<auth::Key>) -> HttpResponse {
    let claims = authed!(req, key);
    let id = id_or_400!(req);
    let (ip, ua) = origin(&req);
    let outcome = match &**db {
        Db::Pg(pg) => pg.untrust(claims, id, ip, ua).await,
        Db::Lite(lite) => lite.untrust(claims, id, ip, ua).await,
    };
    wire::message(
        outcome,
        "Device untrusted successfully",
        "Device not found",
        "Failed to untrust device",
    )
}

async fn heartbeat(req: HttpRequest, db: web::Data<Db>, key: web::Data<auth::Key>) -> HttpResponse {
    let claims = authed!(req, key);
    let id = id_or_400!(req);
    let outcome = match &**db {
        Db::Pg(pg) => pg.heartbeat(claims, id).await,
        Db::Lite(lite) => lite.heartbeat(claims, id).await,
    };
    wire::heartbeat(outcome)
}

async fn not_found() -> HttpResponse {
    wire::error(404, "Not found")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> std::io::Result<()> {
    let url = env("DATABASE_URL").expect("DATABASE_URL is required");
    let secret = env("JWT_SECRET").expect("JWT_SECRET is required");
    let bind = env("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = env("WORKERS")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let pg_connections: usize = env("FLOOR_PG_CONNECTIONS")
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let pg_connections = pg_connections.div_ceil(workers.max(1)).max(1);
    let key = web::Data::new(auth::Key::new(secret.as_bytes()));
    // SQLite: one writer thread for the whole process, started before the workers.
    let sqlite = url
        .strip_prefix("sqlite://")
        .map(|path| (path.to_owned(), lite::Writer::start(path)));
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let url = url.clone();
            let sqlite = sqlite.clone();
            App::new()
                .app_data(key.clone())
                .data_factory(move || {
                    let url = url.clone();
                    let sqlite = sqlite.clone();
                    async move {
                        match sqlite {
                            Some((path, writer)) => lite::Lite::open(&path, writer)
                                .map(Db::Lite)
                                .map_err(|e| e.to_string()),
                            None => pg::Pg::connect(&url, pg_connections)
                                .await
                                .map(Db::Pg)
                                .map_err(|e| e.to_string()),
                        }
                    }
                })
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/devices", web::get().to(list_devices))
                .route("/sessions/current", web::get().to(current_session))
                .route("/devices/{id}", web::get().to(get_device))
                .route("/devices/{id}/untrust", web::post().to(untrust))
                .route("/sessions/{id}/heartbeat", web::post().to(heartbeat))
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .bind(bind)?
        .run()
        .await
    })
}
