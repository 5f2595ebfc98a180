//! Builds the application on a listener whose port callers can read back
//! (port 0 in tests), in the manner of zero2prod's `startup.rs`.

use std::net::TcpListener;

use actix_web::{
    dev::Server,
    middleware::{from_fn, Condition, Logger},
    web, App, HttpMessage, HttpServer,
};

use crate::{
    api::{self, error},
    client_addr::{self, TrustedProxies},
    db::Db,
    docs,
    middleware::{self, ClientRateLimiter, RateLimitSettings},
    retention::{self, RetentionSettings},
    state::AppState,
    telemetry::{self, RequestId},
};

/// Largest JSON body accepted (the only body, trustDevice's, is tiny).
pub const MAX_JSON_BODY: usize = 4 * 1024;

pub struct Application {
    port: u16,
    server: Server,
    /// The retention task, run beside the server and stopped with it.
    retention: Option<(Db, RetentionSettings)>,
}

pub struct ServerOptions {
    pub bind_addr: String,
    pub workers: Option<usize>,
    /// `None`: no rate limiting.
    pub rate_limit: Option<RateLimitSettings>,
    /// Origins allowed to call the API from a browser; empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Threads per worker for database calls (actix's default: 512 / workers).
    pub blocking_threads: Option<usize>,
    /// Peers whose `X-Forwarded-For` names the client (see `client_addr`).
    pub trusted_proxies: TrustedProxies,
    /// Deleting old security events; `None`: they are kept for ever.
    pub event_retention: Option<RetentionSettings>,
}

impl ServerOptions {
    /// Loopback, any free port, one worker, no rate limit, no proxy, no
    /// retention task: for tests.
    pub fn local() -> Self {
        Self {
            bind_addr: "127.0.0.1:0".into(),
            workers: Some(1),
            rate_limit: None,
            cors_allowed_origins: Vec::new(),
            blocking_threads: None,
            trusted_proxies: TrustedProxies::default(),
            event_retention: None,
        }
    }
}

impl Application {
    pub fn build(state: AppState, options: &ServerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&options.bind_addr)?;
        let port = listener.local_addr()?.port();
        let retention = options
            .event_retention
            .map(|settings| (state.db.clone(), settings));
        let server = run(listener, web::Data::new(state), options)?;
        Ok(Self {
            port,
            server,
            retention,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first. The
    /// retention task runs meanwhile and is dropped when the server stops (a
    /// batch already handed to the database finishes or rolls back whole).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        use futures_util::future::{select, Either};
        let Some((db, settings)) = self.retention else {
            return self.server.await;
        };
        let server = std::pin::pin!(self.server);
        let pruning = std::pin::pin!(retention::run(db, settings));
        match select(server, pruning).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), server)) => server.await,
        }
    }
}

pub fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    options: &ServerOptions,
) -> std::io::Result<Server> {
    // One limiter shared by all workers, so a client's allowance is per process.
    let limiter = options
        .rate_limit
        .map(|settings| web::Data::new(ClientRateLimiter::new(settings)));
    let origins = options.cors_allowed_origins.clone();
    // The token extractor and the rate limiter need only the keys, not the whole state.
    let token_keys = web::Data::new(state.tokens.clone());
    let trusted_proxies = web::Data::new(options.trusted_proxies.clone());
    let mut server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(state.clone())
            .app_data(token_keys.clone())
            .app_data(trusted_proxies.clone());
        if let Some(limiter) = &limiter {
            app = app.app_data(limiter.clone());
        }
        app.app_data(
            web::JsonConfig::default()
                .limit(MAX_JSON_BODY)
                .content_type_required(true)
                .error_handler(error::json_error_handler),
        )
        .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
        .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
        .configure(api::configure)
        .configure(docs::configure)
        .default_service(web::to(error::route_not_found))
        // Innermost first: the limiter sees requests after CORS has answered preflights.
        .wrap(from_fn(middleware::rate_limit))
        .wrap(Condition::new(
            !origins.is_empty(),
            middleware::cors(&origins),
        ))
        .wrap(from_fn(middleware::json_errors))
        .wrap(from_fn(middleware::security_headers))
        // The client address (`client_addr`: behind a trusted proxy, the
        // client's own), the request line, status and request id only:
        // the Authorization header is never logged.
        .wrap(
            Logger::new(r#"%{client_addr}xi "%r" %s %b %Dms request_id=%{request_id}xi"#)
                .custom_request_replace("client_addr", |request| {
                    client_addr::of(request.request())
                        .map_or_else(|| "-".to_owned(), |address| address.to_string())
                })
                .custom_request_replace("request_id", |request| {
                    request
                        .extensions()
                        .get::<RequestId>()
                        .map_or_else(|| "-".to_owned(), |id| id.as_str().to_owned())
                }),
        )
        .wrap(from_fn(telemetry::request_id))
    })
    .listen(listener)?;
    if let Some(workers) = options.workers {
        server = server.workers(workers.max(1));
    }
    if let Some(threads) = options.blocking_threads {
        server = server.worker_max_blocking_threads(threads.max(1));
    }
    Ok(server.run())
}
