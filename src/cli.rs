//! The command line's subcommands: serving the API, and the one-shot
//! commands an operator runs on the database every server shares
//! (`migrate`, `session create`, `service-key ...`, `webhook ...`). In the
//! library, so that the binary is only an entry point and every command's
//! body sits beside the modules it drives.

use std::time::Duration;

use crate::{
    api::types::DeviceType,
    auth::TokenKeys,
    config::{
        resolve_jwt_secret, Command, CommonArgs, SecretSource, ServeArgs, ServiceKeyCommand,
        SessionCommand, SessionCreateArgs, WebhookCommand,
    },
    cursor::CursorKey,
    db::{self, webhook_deliveries, DatabaseUrl, Db, PoolSettings},
    docs,
    provisioning::{self, SignIn},
    service_auth,
    startup::{Application, ServerOptions},
    state::{AppState, Policy},
    webhooks::WebhookSecret,
};

/// The pool of a one-shot command: it makes one call at a time.
const COMMAND_POOL: PoolSettings = PoolSettings {
    max_size: 1,
    acquire_timeout: Duration::from_secs(5),
};

/// The target of the start-up log lines: the binary's, which log filters
/// (`RUST_LOG=flashback_devices=...`) and log readers name.
const LOG_TARGET: &str = "flashback_devices";

/// Runs `command`; an error is the message for the operator.
pub fn run(command: Command, common: &CommonArgs) -> Result<(), String> {
    match command {
        Command::Openapi {
            yaml,
            spec_version,
            public,
        } => print_openapi(yaml, &spec_version, public),
        Command::Migrate => {
            open_command_db(parse_url(common)?)?;
            println!("migrations are up to date");
            Ok(())
        }
        Command::Session(SessionCommand::Create(args)) => create_session(args, common),
        Command::ServiceKey(command) => service_keys(command, common),
        Command::Webhook(WebhookCommand::Secret) => {
            println!("{}", WebhookSecret::generate());
            Ok(())
        }
        Command::Webhook(command) => webhook_outbox(command, common),
        Command::Serve(args) => serve(args, common),
    }
}

fn print_openapi(yaml: bool, spec_version: &str, public: bool) -> Result<(), String> {
    if spec_version == "3.0" {
        if yaml {
            print!("{}", docs::SPEC_3_0_YAML);
        } else {
            println!("{}", docs::SPEC_3_0_JSON);
        }
    } else if yaml {
        print!("{}", docs::SPEC_YAML);
    } else {
        let spec = if public {
            docs::public_spec_json()
        } else {
            docs::spec_json()
        };
        let json = serde_json::to_string_pretty(spec).map_err(|e| e.to_string())?;
        println!("{json}");
    }
    Ok(())
}

fn parse_url(common: &CommonArgs) -> Result<DatabaseUrl, String> {
    DatabaseUrl::parse(&common.database_url).map_err(|e| e.to_string())
}

/// Opens the database (migrating it) for a one-shot command.
fn open_command_db(url: DatabaseUrl) -> Result<Db, String> {
    Db::open(url, COMMAND_POOL).map_err(|e| e.to_string())
}

/// The token keys from the environment: a public key (`JWT_PUBLIC_KEY_FILE`,
/// optionally with `JWT_PRIVATE_KEY_FILE` to sign), else `JWT_SECRET`, else
/// the development secret beside the SQLite database.
fn token_keys(url: &DatabaseUrl) -> Result<(TokenKeys, SecretSource), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let read =
        |name: &str, path: String| std::fs::read(&path).map_err(|e| format!("{name}={path}: {e}"));
    let (keys, source) = match env("JWT_PUBLIC_KEY_FILE") {
        Some(public_path) => {
            let public = read("JWT_PUBLIC_KEY_FILE", public_path)?;
            let private = env("JWT_PRIVATE_KEY_FILE")
                .map(|p| read("JWT_PRIVATE_KEY_FILE", p))
                .transpose()?;
            let keys =
                TokenKeys::public_key(&public, private.as_deref()).map_err(|e| e.to_string())?;
            (keys, SecretSource::Environment)
        }
        None => {
            let (secret, source) = resolve_jwt_secret(std::env::var("JWT_SECRET").ok(), url)
                .map_err(|e| e.to_string())?;
            (
                TokenKeys::hs256(&secret).map_err(|e| e.to_string())?,
                source,
            )
        }
    };
    Ok((
        keys.with_issuer_and_audience(env("JWT_ISSUER"), env("JWT_AUDIENCE")),
        source,
    ))
}

/// `webhook status` and `webhook retry`, on the database all servers share.
fn webhook_outbox(command: WebhookCommand, common: &CommonArgs) -> Result<(), String> {
    let db = open_command_db(parse_url(common)?)?;
    match command {
        WebhookCommand::Retry => {
            let retried = db
                .run_blocking(|conn| {
                    db::write_transaction(conn, |conn| {
                        webhook_deliveries::retry_failed(conn, db::now())
                    })
                })
                .map_err(|e| e.to_string())?;
            println!("{retried} failed deliveries are pending again");
        }
        _ => {
            let counts = db
                .run_blocking(webhook_deliveries::counts)
                .map_err(|e| e.to_string())?;
            println!("pending: {}", counts.pending);
            if counts.delivered_capped() {
                println!(
                    "delivered: {} or more",
                    webhook_deliveries::DELIVERED_COUNT_CAP
                );
            } else {
                println!("delivered: {}", counts.delivered);
            }
            println!("failed: {}", counts.failed);
            match counts.oldest_pending {
                Some(oldest) => {
                    let age = (db::now() - oldest).num_seconds().max(0);
                    println!("oldest pending: {age} s (event at {oldest} UTC)");
                }
                None => println!("oldest pending: none"),
            }
        }
    }
    Ok(())
}

/// `service-key create`, `list` and `revoke`, on the database all servers share.
fn service_keys(command: ServiceKeyCommand, common: &CommonArgs) -> Result<(), String> {
    use crate::db::{models::ServiceKeyRow, service_keys};
    let db = open_command_db(parse_url(common)?)?;
    match command {
        ServiceKeyCommand::Create { name } => {
            service_auth::check_name(&name)?;
            let key = service_auth::generate();
            let row = ServiceKeyRow {
                name: name.clone(),
                key_hash: service_auth::hash(&key),
                created_at: db::now(),
                last_used_at: None,
            };
            let created = db
                .run_blocking(|conn| {
                    db::write_transaction(conn, |conn| service_keys::create(conn, &row))
                })
                .map_err(|e| e.to_string())?;
            if !created {
                return Err(format!(
                    "a service key named {name} exists already (revoke it first to replace it)"
                ));
            }
            // Printed, never logged: the one time the key is shown.
            println!("{key}");
            eprintln!("service key {name} created; store it now, it cannot be shown again");
        }
        ServiceKeyCommand::List => {
            let keys = db
                .run_blocking(service_keys::list)
                .map_err(|e| e.to_string())?;
            println!("NAME\tCREATED\tLAST USED");
            for key in keys {
                let last_used = key.last_used_at.map_or_else(
                    || "never".to_owned(),
                    |at| format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S")),
                );
                println!(
                    "{}\t{}Z\t{last_used}",
                    key.name,
                    key.created_at.format("%Y-%m-%dT%H:%M:%S")
                );
            }
        }
        ServiceKeyCommand::Revoke { name } => {
            let revoked = db
                .run_blocking(|conn| {
                    db::write_transaction(conn, |conn| service_keys::revoke(conn, &name))
                })
                .map_err(|e| e.to_string())?;
            if !revoked {
                return Err(format!("no service key is named {name}"));
            }
            println!("service key {name} revoked");
        }
    }
    Ok(())
}

/// `session create`: a device and a session, and the session's token.
fn create_session(args: SessionCreateArgs, common: &CommonArgs) -> Result<(), String> {
    let url = parse_url(common)?;
    let device_type =
        DeviceType::from_wire(&args.device_type.to_ascii_uppercase()).ok_or_else(|| {
            format!(
                "--device-type must be one of DESKTOP, MOBILE, TABLET (got {})",
                args.device_type
            )
        })?;
    let (tokens, _) = token_keys(&url)?;
    let db = open_command_db(url)?;
    let policy = Policy::from_args(common);
    let request = SignIn {
        user_id: args.user,
        device_name: args.device_name,
        fingerprint: args.fingerprint,
        device_type,
        os: args.os,
        browser: args.browser,
        user_agent: args.user_agent,
        ip_address: args.ip,
        location: args.location,
        login_method: args.login_method,
        ttl: args
            .ttl
            .map(Duration::from_secs)
            .unwrap_or(policy.session_extension),
        trusted: args.trusted,
    };
    let issued =
        provisioning::sign_in(&db, &tokens, &policy, request).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&issued).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `serve`: the API until SIGINT/SIGTERM.
fn serve(args: ServeArgs, common: &CommonArgs) -> Result<(), String> {
    let url = parse_url(common)?;
    let options = ServerOptions::from_args(&args)?;
    let (tokens, source) = token_keys(&url)?;
    log::info!(target: LOG_TARGET, "database: {url}");
    let write_mode = args.write_mode(&url);
    log::info!(target: LOG_TARGET, "writes: {write_mode:?}");
    let db = Db::open_with(url, args.pool(), write_mode).map_err(|e| e.to_string())?;
    let cursor_key =
        CursorKey::load(&db).map_err(|e| format!("cannot read the cursor key: {e}"))?;
    let state = AppState {
        db,
        tokens,
        policy: Policy::from_args(common),
        cursor_key,
    };
    // Before anything records an event (the demo seed below, requests).
    let prepared = Application::prepare(state, &options)?;

    let demo = match &source {
        SecretSource::Environment => None,
        SecretSource::DevelopmentFile(file) => {
            log::warn!(
                target: LOG_TARGET,
                "development mode: JWT_SECRET is not set, so tokens are signed with a generated secret kept in {}; \
                 set JWT_SECRET in production",
                file.display()
            );
            let state = prepared.state();
            provisioning::seed_demo_if_empty(&state.db, &state.tokens, &state.policy)
                .map_err(|e| format!("cannot seed demo data: {e}"))?
        }
    };

    let options = &options;
    actix_web::rt::System::new().block_on(async move {
        let app = prepared
            .bind()
            .map_err(|e| format!("cannot listen on {}: {e}", options.bind_addr))?;
        let host = options
            .bind_addr
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h);
        let base = format!("http://{host}:{}", app.port());
        log::info!(target: LOG_TARGET, "listening on {base}; Swagger UI at {base}/swagger-ui/");
        if let (Some(port), Some(address)) = (app.metrics_port(), &options.metrics_bind_addr) {
            let host = address.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            log::info!(target: LOG_TARGET, "metrics at http://{host}:{port}/metrics");
        }
        if let (Some(port), Some(address)) = (app.platform_port(), &options.platform_bind_addr) {
            let host = address.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            log::info!(target: LOG_TARGET, "platform operations at http://{host}:{port}/platform/");
        }
        if let Some(demo) = demo {
            // Printed, not logged: it is the one token development mode hands out on purpose.
            println!("Swagger UI: {base}/swagger-ui/");
            println!(
                "Demo token for user `{}` (valid until {}); paste it into Authorize:",
                demo.user_id, demo.expires_at
            );
            println!("{}", demo.token);
        }
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}
