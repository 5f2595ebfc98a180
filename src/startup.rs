//! Builds the application on a listener whose port callers can read back
//! (port 0 in tests), in the manner of zero2prod's `startup.rs`.

use std::net::TcpListener;

use actix_web::{
    dev::Server,
    middleware::{DefaultHeaders, Logger},
    web, App, HttpServer,
};

use crate::{
    api::{self, error},
    docs,
    state::AppState,
};

/// Largest JSON body accepted (the only body, trustDevice's, is tiny).
pub const MAX_JSON_BODY: usize = 4 * 1024;

pub struct Application {
    port: u16,
    server: Server,
}

pub struct ServerOptions {
    pub bind_addr: String,
    pub workers: Option<usize>,
}

impl Application {
    pub fn build(state: AppState, options: &ServerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&options.bind_addr)?;
        let port = listener.local_addr()?.port();
        let server = run(listener, web::Data::new(state), options.workers)?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

pub fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        App::new()
            // The request line and status only: the Authorization header is never logged.
            .wrap(Logger::new(r#"%a "%r" %s %b %Dms"#))
            .wrap(
                DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Frame-Options", "DENY"))
                    .add(("Cache-Control", "no-store")),
            )
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BODY)
                    .content_type_required(true)
                    .error_handler(error::json_error_handler),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
            .configure(api::configure)
            .configure(docs::configure)
            .default_service(web::to(error::route_not_found))
    })
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.run())
}
