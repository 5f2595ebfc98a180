//! Builds the application on a listener whose port callers can read back
//! (port 0 in tests), in the manner of zero2prod's `startup.rs`.

use std::{net::TcpListener, time::Duration};

use actix_web::{
    dev::{Server, ServerHandle},
    middleware::{from_fn, Condition},
    web, App, HttpServer,
};

use crate::{
    api::{self, error, extract::BodyDeadline, types::OPERATIONS},
    client_addr::TrustedProxies,
    config::ServeArgs,
    db::Db,
    docs,
    middleware::{self, ClientRateLimiter, RateLimitSettings},
    retention::{self, RetentionSettings},
    state::AppState,
    telemetry::{self, Metrics, MetricsListener, WebhookMetrics},
    webhooks::{self, WebhookSettings},
};

/// Largest JSON body accepted (the only body, trustDevice's, is tiny).
pub const MAX_JSON_BODY: usize = 4 * 1024;

pub struct Application {
    port: u16,
    server: Server,
    /// The `METRICS_BIND_ADDR` listener's port and server, when there is one.
    metrics: Option<(u16, Server)>,
    /// The `PLATFORM_BIND_ADDR` listener's port and server, when there is one.
    platform: Option<(u16, Server)>,
    /// The retention task, run beside the server and stopped with it.
    retention: Option<(Db, RetentionSettings)>,
    /// The webhook dispatcher, likewise.
    webhooks: Option<(Db, WebhookSettings, WebhookMetrics)>,
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
    /// Serve `getMetrics` on this address instead of `bind_addr` (which then
    /// answers 404 there), so that it need not be exposed with the API.
    pub metrics_bind_addr: Option<String>,
    /// Without `metrics_bind_addr`: serve `getMetrics` on `bind_addr`
    /// (else it is served nowhere).
    pub metrics_public: bool,
    /// Serve the `platform` operations on this address only (`bind_addr`
    /// then answers 404 for them), so that they need not be exposed with
    /// the API.
    pub platform_bind_addr: Option<String>,
    /// Where security events are pushed; `None`: webhooks off.
    pub webhooks: Option<WebhookSettings>,
    /// How long a request body may take to arrive (408 after that).
    pub body_timeout: Duration,
}

impl ServerOptions {
    /// The options of the command line's; an error names the option that is
    /// wrong.
    pub fn from_args(args: &ServeArgs) -> Result<Self, String> {
        Ok(Self {
            bind_addr: args.bind_addr.clone(),
            workers: Some(args.workers()),
            rate_limit: RateLimitSettings::new(args.rate_limit_rps, args.rate_limit_burst)
                .map(|settings| settings.with_ipv6_prefix(args.rate_limit_ipv6_prefix)),
            blocking_threads: Some(args.blocking_threads),
            cors_allowed_origins: args
                .cors_allowed_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            trusted_proxies: TrustedProxies::parse(&args.trusted_proxies)?,
            event_retention: RetentionSettings::days(args.security_event_retention_days),
            metrics_bind_addr: args
                .metrics_bind_addr
                .as_ref()
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty()),
            metrics_public: args.metrics_public,
            platform_bind_addr: args
                .platform_bind_addr
                .as_ref()
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty()),
            webhooks: WebhookSettings::from_args(args)?,
            body_timeout: Duration::from_millis(args.body_timeout_ms.max(1)),
        })
    }

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
            metrics_bind_addr: None,
            // The tests scrape the API listener.
            metrics_public: true,
            platform_bind_addr: None,
            webhooks: None,
            body_timeout: BodyDeadline::default().0,
        }
    }
}

impl Application {
    /// [`Application::prepare`], then [`Prepared::bind`].
    pub fn build(state: AppState, options: &ServerOptions) -> std::io::Result<Self> {
        Self::prepare(state, options)
            .map_err(std::io::Error::other)?
            .bind()
    }

    /// Makes the configured webhook URLs the endpoints events are fanned out
    /// to (none when webhooks are off), before anything records an event, so
    /// that no event is recorded without its deliveries. Blocking: one short
    /// write. A step of its own so that `serve` can seed its demo data
    /// between it and [`Prepared::bind`].
    pub fn prepare(state: AppState, options: &ServerOptions) -> Result<Prepared<'_>, String> {
        let urls = options
            .webhooks
            .as_ref()
            .map(|w| w.urls.clone())
            .unwrap_or_default();
        webhooks::set_endpoints(&state.db, &urls)?;
        Ok(Prepared { state, options })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when `metrics_bind_addr` was given.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The port of the platform listener, when `platform_bind_addr` was given.
    pub fn platform_port(&self) -> Option<u16> {
        self.platform.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first. The
    /// retention task and the webhook dispatcher run meanwhile and are
    /// dropped when the server stops (a batch already handed to the database
    /// finishes or rolls back whole; a webhook attempt in flight is cut off
    /// and sent again after a restart, once its lease expires); the metrics
    /// listener stops after the API server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        use futures_util::future::{join, select, Either};
        let Self {
            server,
            metrics,
            platform,
            retention,
            webhooks,
            ..
        } = self;
        // The platform listener serves alongside the API's and stops with it
        // (both answer SIGINT/SIGTERM).
        let server = async move {
            match platform {
                None => server.await,
                Some((_, platform)) => {
                    let (api, platform) = join(server, platform).await;
                    api.and(platform)
                }
            }
        };
        let metrics_handle: Option<ServerHandle> =
            metrics.as_ref().map(|(_, server)| server.handle());
        let api = async move {
            let pruning = async move {
                if let Some((db, settings)) = retention {
                    retention::run(db, settings).await;
                }
            };
            let dispatching = async move {
                if let Some((db, settings, metrics)) = webhooks {
                    webhooks::dispatch::run(db, settings, metrics).await;
                }
            };
            let background = std::pin::pin!(join(pruning, dispatching));
            let server = std::pin::pin!(server);
            let outcome = match select(server, background).await {
                Either::Left((outcome, _)) => outcome,
                Either::Right((_, server)) => server.await,
            };
            if let Some(handle) = metrics_handle {
                handle.stop(true).await;
            }
            outcome
        };
        match metrics {
            None => api.await,
            Some((_, metrics_server)) => {
                let (api, metrics) = join(api, metrics_server).await;
                api.and(metrics)
            }
        }
    }
}

/// An application whose webhook endpoints are set, not listening yet (see
/// [`Application::prepare`]).
pub struct Prepared<'a> {
    state: AppState,
    options: &'a ServerOptions,
}

impl Prepared<'_> {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Binds the listeners (the API's, and the metrics' when configured) and
    /// builds the server's metrics registry, the database's series included.
    /// Nothing is served before [`Application::run_until_stopped`].
    pub fn bind(self) -> std::io::Result<Application> {
        let Self { state, options } = self;
        let metrics = Metrics::new(
            OPERATIONS
                .iter()
                .map(|o| (o.method, o.path, o.operation_id)),
        );
        let db = state.db.clone();
        metrics
            .register_database(state.db.metrics(), move || db.pool_state())
            .map_err(std::io::Error::other)?;

        let listener = TcpListener::bind(&options.bind_addr)?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match &options.metrics_bind_addr {
            Some(address) => {
                let listener = TcpListener::bind(address).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("METRICS_BIND_ADDR {address}: {e}"))
                })?;
                Some((listener.local_addr()?.port(), listener))
            }
            None => None,
        };
        let platform_listener = match &options.platform_bind_addr {
            Some(address) => {
                let listener = TcpListener::bind(address).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("PLATFORM_BIND_ADDR {address}: {e}"))
                })?;
                Some((listener.local_addr()?.port(), listener))
            }
            None => None,
        };
        let retention = options
            .event_retention
            .map(|settings| (state.db.clone(), settings));
        let webhook_metrics = WebhookMetrics::new();
        metrics
            .register_webhooks(&webhook_metrics)
            .map_err(std::io::Error::other)?;
        let webhooks = options
            .webhooks
            .clone()
            .filter(|settings| !settings.urls.is_empty())
            .map(|settings| (state.db.clone(), settings, webhook_metrics));
        let state = web::Data::new(state);
        let server = run_scoped(
            listener,
            state.clone(),
            options,
            metrics.clone(),
            if metrics_listener.is_none() && options.metrics_public {
                MetricsListener::This
            } else {
                MetricsListener::NotHere
            },
            if platform_listener.is_some() {
                PlatformScope::PublicOnly
            } else {
                PlatformScope::All
            },
        )?;
        let platform = match platform_listener {
            Some((port, listener)) => Some((
                port,
                run_scoped(
                    listener,
                    state,
                    options,
                    metrics.clone(),
                    MetricsListener::NotHere,
                    PlatformScope::PlatformOnly,
                )?,
            )),
            None => None,
        };
        let metrics = match metrics_listener {
            Some((port, listener)) => Some((port, run_metrics(listener, metrics)?)),
            None => None,
        };
        Ok(Application {
            port,
            server,
            metrics,
            platform,
            retention,
            webhooks,
        })
    }
}

pub fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    options: &ServerOptions,
    metrics: Metrics,
    metrics_listener: MetricsListener,
) -> std::io::Result<Server> {
    run_scoped(
        listener,
        state,
        options,
        metrics,
        metrics_listener,
        PlatformScope::All,
    )
}

/// Which operations a listener serves, as to the `platform` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformScope {
    /// All operations: no `PLATFORM_BIND_ADDR`.
    All,
    /// All but the platform operations (`BIND_ADDR` beside a `PLATFORM_BIND_ADDR`).
    PublicOnly,
    /// The platform operations only (`PLATFORM_BIND_ADDR`).
    PlatformOnly,
}

impl PlatformScope {
    fn serves(self, path: &str) -> bool {
        let platform = path == "/platform" || path.starts_with("/platform/");
        match self {
            Self::All => true,
            Self::PublicOnly => !platform,
            Self::PlatformOnly => platform,
        }
    }
}

/// Answers 404, as for any unknown path, for what this listener does not
/// serve (see [`PlatformScope`]), before anything else looks at the request.
async fn platform_scope(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let scope = request
        .app_data::<web::Data<PlatformScope>>()
        .map_or(PlatformScope::All, |scope| *scope.get_ref());
    if scope.serves(request.path()) {
        return next
            .call(request)
            .await
            .map(actix_web::dev::ServiceResponse::map_into_left_body);
    }
    let response =
        actix_web::HttpResponse::NotFound().json(api::types::ErrorResponse::new("Not found"));
    Ok(request.into_response(response).map_into_right_body())
}

/// [`run`], serving what `scope` says of the platform operations.
pub fn run_scoped(
    listener: TcpListener,
    state: web::Data<AppState>,
    options: &ServerOptions,
    metrics: Metrics,
    metrics_listener: MetricsListener,
    scope: PlatformScope,
) -> std::io::Result<Server> {
    let scope = web::Data::new(scope);
    // One limiter shared by all workers, so a client's allowance is per process.
    let limiter = options
        .rate_limit
        .map(|settings| web::Data::new(ClientRateLimiter::new(settings)));
    let origins = options.cors_allowed_origins.clone();
    let trusted_proxies = web::Data::new(options.trusted_proxies.clone());
    let body_deadline = BodyDeadline(options.body_timeout);
    let connections = metrics.clone();
    let metrics = web::Data::new(metrics);
    let metrics_listener = web::Data::new(metrics_listener);
    let mut server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(state.clone())
            .app_data(trusted_proxies.clone())
            .app_data(metrics.clone())
            .app_data(metrics_listener.clone())
            .app_data(body_deadline)
            .app_data(scope.clone());
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
        .wrap(from_fn(platform_scope))
        .wrap(Condition::new(
            !origins.is_empty(),
            middleware::cors(&origins),
        ))
        .wrap(from_fn(middleware::json_errors))
        .wrap(from_fn(middleware::security_headers))
        // Request id, access log (the client address — behind a trusted
        // proxy, the client's own —, the request line, status and request id
        // only: the Authorization header is never logged) and metrics.
        .wrap(from_fn(telemetry::instrument))
    })
    // The guard lives in the connection's extensions, dropped when it closes.
    .on_connect(move |_, extensions| {
        extensions.insert(connections.connection_guard());
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

/// The `METRICS_BIND_ADDR` listener: `getMetrics` and nothing else, with the
/// request id, headers and error shape of the API listener. One worker;
/// stopped by [`Application::run_until_stopped`], not by signals.
pub fn run_metrics(listener: TcpListener, metrics: Metrics) -> std::io::Result<Server> {
    let metrics = web::Data::new(metrics);
    let here = web::Data::new(MetricsListener::This);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .app_data(here.clone())
            .service(api::health::get_metrics)
            .default_service(web::to(error::metrics_route_not_found))
            .wrap(from_fn(middleware::json_errors))
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(telemetry::instrument))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
