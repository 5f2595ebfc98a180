//! The binary: `session create`, `openapi`, `migrate`, and start-up errors.

use std::process::Command;

use crate::helpers::*;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flashback-devices"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env("RUST_LOG", "warn");
    command
}

#[tokio::test]
async fn session_create_prints_one_json_object_whose_token_works() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let output = binary()
        .args([
            "session",
            "create",
            "--user",
            "carol",
            "--device-name",
            "Carol laptop",
            "--fingerprint",
            "fp-carol",
        ])
        .args([
            "--device-type",
            "TABLET",
            "--os",
            "Linux",
            "--browser",
            "Firefox",
            "--ip",
            "192.0.2.9",
        ])
        .args([
            "--location",
            "Porto, Portugal",
            "--login-method",
            "sso",
            "--ttl",
            "600",
            "--trusted",
        ])
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert_succeeded(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    let issued: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&String> = issued.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["token", "sessionId", "deviceId", "userId", "expiresAt"]
    );
    assert_eq!(issued["userId"], "carol");
    let claims = flashback_devices::auth::TokenKeys::hs256(TEST_SECRET.as_bytes())
        .unwrap()
        .verify(issued["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.sub, "carol");
    assert_eq!(claims.sid, issued["sessionId"].as_str().unwrap());

    // The same database served by the library: the token is accepted.
    let db = flashback_devices::db::Db::open(
        flashback_devices::db::DatabaseUrl::parse(&url).unwrap(),
        flashback_devices::db::PoolSettings {
            max_size: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .unwrap();
    let state = flashback_devices::state::AppState {
        cursor_key: flashback_devices::cursor::CursorKey::load(&db).unwrap(),
        db,
        tokens: flashback_devices::auth::TokenKeys::hs256(TEST_SECRET.as_bytes()).unwrap(),
        policy: Default::default(),
    };
    let app = flashback_devices::startup::Application::build(
        state,
        &flashback_devices::startup::ServerOptions::local(),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let response = fetch_json(
        reqwest::Client::new()
            .get(format!("{base}/devices"))
            .bearer_auth(issued["token"].as_str().unwrap()),
    )
    .await;
    let device = &response["devices"][0];
    assert_eq!(device["id"], issued["deviceId"]);
    assert_eq!(device["deviceType"], "TABLET");
    assert_eq!(device["isTrusted"], true);
    assert_eq!(device["city"], "Porto");
    assert_eq!(device["isCurrent"], true);

    // The sign-in is on record: started, then trusted, by no session of the
    // API (the command line), from the address it gave.
    let events = fetch_json(
        reqwest::Client::new()
            .get(format!("{base}/security-events"))
            .bearer_auth(issued["token"].as_str().unwrap()),
    )
    .await;
    let events = events["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["DEVICE_TRUSTED", "SESSION_STARTED"]);
    let started = &events[1];
    assert_eq!(started["sessionId"], issued["sessionId"]);
    assert_eq!(started["deviceId"], issued["deviceId"]);
    assert_eq!(started["deviceName"], "Carol laptop");
    assert_eq!(started["actorSessionId"], serde_json::Value::Null);
    assert_eq!(started["ipAddress"], "192.0.2.9");
    assert_eq!(events[0]["deviceId"], issued["deviceId"]);
    assert_eq!(events[0]["sessionId"], serde_json::Value::Null);
}

#[test]
fn development_mode_keeps_a_private_secret_beside_the_database() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dev.db").display());
    let create = |user: &str| {
        let output = binary()
            .args(["session", "create", "--user", user, "--device-name", "d"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert_succeeded(&output);
        let issued: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        issued["token"].as_str().unwrap().to_owned()
    };
    let first = create("u1");
    let secret_file = dir.path().join("dev.db.jwt-secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(secret.trim().len() >= 32);
    let keys = flashback_devices::auth::TokenKeys::hs256(secret.trim().as_bytes()).unwrap();
    assert_eq!(keys.verify(&first).unwrap().sub, "u1");
    // A second run reuses the same secret.
    assert_eq!(keys.verify(&create("u2")).unwrap().sub, "u2");
}

#[test]
fn bad_database_urls_exit_with_code_2_and_one_clear_line() {
    let cases = [
        (
            "mysql://root@localhost/db",
            "scheme `mysql` is not supported",
        ),
        ("flashback.db", "has no scheme"),
        (
            "postgres://nobody@127.0.0.1:1/none",
            "cannot open the database at postgres://nobody@127.0.0.1:1/none",
        ),
    ];
    for (url, expected) in cases {
        let output = binary()
            .arg("migrate")
            .env("DATABASE_URL", url)
            .env("JWT_SECRET", TEST_SECRET)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
    }
}

#[test]
fn postgres_requires_a_jwt_secret_and_hides_passwords() {
    let output = binary()
        .arg("serve")
        .env("DATABASE_URL", "postgres://user:hunter2@127.0.0.1:1/db")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET is required"), "{stderr}");

    let output = binary()
        .arg("migrate")
        .env("DATABASE_URL", "postgres://user:hunter2@127.0.0.1:1/db")
        .env("JWT_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_bad_trusted_proxy_stops_serve_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("p.db").display()),
        )
        .env("JWT_SECRET", TEST_SECRET)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("TRUSTED_PROXIES", "10.0.0.1, proxy.internal")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "TRUSTED_PROXIES: `proxy.internal` is neither an IP address nor a CIDR range"
        ),
        "{stderr}"
    );
}

#[test]
fn openapi_prints_the_spec() {
    let yaml = binary().args(["openapi", "--yaml"]).output().unwrap();
    assert!(yaml.status.success());
    assert_eq!(
        String::from_utf8(yaml.stdout).unwrap(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
            .unwrap()
    );
    let json = binary().arg("openapi").output().unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(&parsed, crate::conformance::spec());

    for args in [
        &["openapi", "--spec-version", "3.0"][..],
        &["openapi", "--spec-version", "3.0", "--yaml"],
    ] {
        let out = binary().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let edition: serde_json::Value = yaml_serde::from_slice(&out.stdout).unwrap();
        assert_eq!(edition["openapi"], "3.0.3", "{args:?}");
        assert_eq!(
            &edition,
            flashback_devices::docs::spec_3_0_json(),
            "{args:?}"
        );
    }
    let refused = binary()
        .args(["openapi", "--spec-version", "2.0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// The real binary serving in development mode (SQLite in `dir`, a free
/// loopback port) with `env` added, its stdout's lines after the first, and
/// its base URL, read from that first line. Keep the lines until the server
/// is stopped: it prints more of them (the demo token), and a closed pipe
/// would fail those prints.
struct DevServer {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    base: String,
}

impl DevServer {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut command = binary();
        command
            .arg("serve")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("dev.db").display()),
            )
            .env("BIND_ADDR", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let swagger = lines.next().unwrap().unwrap();
        let base = swagger
            .strip_prefix("Swagger UI: ")
            .and_then(|url| url.strip_suffix("/swagger-ui/"))
            .unwrap_or_else(|| panic!("first line names Swagger UI: {swagger}"))
            .to_owned();
        Self { child, lines, base }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn development_mode_seeds_a_demo_user_and_prints_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = DevServer::start(dir.path(), &[("RATE_LIMIT_RPS", "0")]);
    assert!(server
        .lines
        .next()
        .unwrap()
        .unwrap()
        .starts_with("Demo token for user `demo-user`"));
    let token = server.lines.next().unwrap().unwrap();
    let base = &server.base;
    let client = reqwest::Client::new();
    let devices = fetch_json(client.get(format!("{base}/devices")).bearer_auth(&token)).await;
    let sessions = fetch_json(client.get(format!("{base}/sessions")).bearer_auth(&token)).await;
    server.stop();
    assert_eq!(devices["devices"].as_array().unwrap().len(), 3, "{devices}");
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        4,
        "{sessions}"
    );
    let trusted = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["isTrusted"] == true)
        .count();
    assert_eq!(trusted, 2);
}

/// The pool's size `serve` settles on, read from its metrics: the real
/// binary in development mode with `env` added.
async fn served_pool_size(env: &[(&str, &str)]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut with_metrics = vec![("METRICS_PUBLIC", "true")];
    with_metrics.extend_from_slice(env);
    let server = DevServer::start(dir.path(), &with_metrics);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.stop();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("flashback_db_pool_max_connections "))
        .unwrap_or_else(|| panic!("no pool size in the metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_pool_has_a_connection_per_database_thread_unless_sized() {
    // 3 workers x 2 threads, and the 2 of the background tasks.
    assert_eq!(
        served_pool_size(&[("WORKERS", "3"), ("BLOCKING_THREADS", "2")]).await,
        8.0
    );
    assert_eq!(
        served_pool_size(&[
            ("WORKERS", "3"),
            ("BLOCKING_THREADS", "2"),
            ("DB_POOL_SIZE", "5")
        ])
        .await,
        5.0
    );
}

#[test]
fn webhook_secret_prints_a_standard_webhooks_secret() {
    let output = binary().args(["webhook", "secret"]).output().unwrap();
    assert!(output.status.success());
    let secret = String::from_utf8(output.stdout).unwrap();
    let secret = secret.trim();
    assert!(secret.starts_with("whsec_"), "{secret}");
    flashback_devices::webhooks::WebhookSecret::parse(secret).expect("a valid secret");
    let again = binary().args(["webhook", "secret"]).output().unwrap();
    assert_ne!(String::from_utf8(again.stdout).unwrap().trim(), secret);
}

#[test]
fn a_bad_webhook_configuration_stops_serve_with_code_2_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |urls: &str, secret: &str| {
        binary()
            .arg("serve")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("w.db").display()),
            )
            .env("JWT_SECRET", TEST_SECRET)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("WEBHOOK_URLS", urls)
            .env("WEBHOOK_SECRET", secret)
            .output()
            .unwrap()
    };
    for (urls, secret, expected) in [
        (
            "http://127.0.0.1:9/hook",
            "whsec_c2hvcnQ=",
            "error: WEBHOOK_SECRET must hold at least 24 random bytes (got 5)",
        ),
        (
            "http://127.0.0.1:9/hook",
            "not-a-secret",
            "error: WEBHOOK_SECRET must start with `whsec_`",
        ),
        (
            "http://127.0.0.1:9/hook",
            "",
            "error: WEBHOOK_SECRET is required with WEBHOOK_URLS",
        ),
        (
            "ftp://127.0.0.1/hook",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "error: WEBHOOK_URLS: `ftp://127.0.0.1/hook` is not an http or https URL",
        ),
    ] {
        let output = serve(urls, secret);
        assert_eq!(output.status.code(), Some(2), "{urls} {secret}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(expected), "{stderr}");
        assert!(
            !stderr.contains("c2hvcnQ") && !stderr.contains("MfKQ9r8"),
            "{stderr}"
        );
    }
}

#[test]
fn webhook_status_and_retry_read_and_reset_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("s.db").display());
    let run = |args: &[&str]| {
        let output = binary()
            .args(args)
            .env("DATABASE_URL", &database)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        run(&["webhook", "status"]),
        "pending: 0\ndelivered: 0\nfailed: 0\noldest pending: none\n"
    );
    assert_eq!(
        run(&["webhook", "retry"]),
        "0 failed deliveries are pending again\n"
    );
}

crate::backend_test!(
    service_keys_are_created_listed_and_revoked_from_the_command_line,
    |app| {
        let run = |args: &[&str]| {
            binary()
                .args(args)
                .env("DATABASE_URL", &app.database_url)
                .output()
                .unwrap()
        };
        let created = run(&["service-key", "create", "--name", "sign-in"]);
        assert_succeeded(&created);
        let stdout = String::from_utf8(created.stdout).unwrap();
        let key = stdout.trim();
        assert_eq!(stdout.lines().count(), 1, "only the key: {stdout}");
        assert!(key.starts_with("fbsk_") && key.len() == 48, "{key}");
        // The key works at once on the running server, which shares the database.
        let ok = app.get("/platform/users/alice/sessions", key).await;
        assert_eq!(ok.status, 200);

        let twice = run(&["service-key", "create", "--name", "sign-in"]);
        assert!(!twice.status.success());
        let bad_name = run(&["service-key", "create", "--name", "no spaces"]);
        assert!(!bad_name.status.success());

        let listed = run(&["service-key", "list"]);
        assert!(listed.status.success());
        let listing = String::from_utf8(listed.stdout).unwrap();
        let row = listing
            .lines()
            .find(|l| l.starts_with("sign-in\t"))
            .unwrap_or_else(|| panic!("{listing}"));
        assert_eq!(row.split('\t').count(), 3, "{row}");
        assert!(!row.ends_with("never"), "used once: {row}");
        assert!(!listing.contains(&key[5..]), "the key is never shown again");

        let revoked = run(&["service-key", "revoke", "sign-in"]);
        assert_succeeded(&revoked);
        let refused = app.get("/platform/users/alice/sessions", key).await;
        assert_eq!(refused.status, 401);
        let unknown = run(&["service-key", "revoke", "sign-in"]);
        assert!(!unknown.status.success());
    }
);

#[test]
fn openapi_public_prints_the_document_without_the_platform_operations() {
    let output = binary().args(["openapi", "--public"]).output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(&printed, flashback_devices::docs::public_spec_json());
    let paths = printed["paths"].as_object().unwrap();
    assert!(paths.contains_key("/devices/{id}/untrust"));
    assert!(!paths.keys().any(|p| p.starts_with("/platform")));
    // The full document still has them.
    let full = binary().args(["openapi"]).output().unwrap();
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert!(full["paths"].get("/platform/sessions").is_some());
}

/// `webhook status` reads a bounded number of delivered rows: past the cap it
/// says "or more" rather than read every delivered row of the day.
async fn webhook_status_counts_delivered_rows_up_to_a_cap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cap = flashback_devices::db::webhook_deliveries::DELIVERED_COUNT_CAP;
    let rows = |n: i64| {
        match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) \
             INSERT INTO webhook_deliveries (event_id, url, user_id, occurred_at, status, \
             next_attempt_at, enqueued_at, delivered_at) \
             SELECT 'e' || i, 'http://127.0.0.1:9/hook', 'u', '2026-01-01 00:00:00', \
             'delivered', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM g"
        ),
        Backend::Postgres => format!(
            "INSERT INTO webhook_deliveries (event_id, url, user_id, occurred_at, status, \
             next_attempt_at, enqueued_at, delivered_at) \
             SELECT 'e' || i, 'http://127.0.0.1:9/hook', 'u', '2026-01-01', 'delivered', \
             '2026-01-01', '2026-01-01', '2026-01-01' FROM generate_series(1, {n}) i"
        ),
    }
    };
    let status = |database_url: String| async move {
        let output = tokio::task::spawn_blocking(move || {
            binary()
                .args(["webhook", "status"])
                .env("DATABASE_URL", database_url)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    app.execute_sql(&rows(cap)).await;
    let exact = status(app.database_url.clone()).await;
    assert!(exact.contains(&format!("\ndelivered: {cap}\n")), "{exact}");
    app.execute_sql("UPDATE webhook_deliveries SET event_id = 'x' || event_id")
        .await;
    app.execute_sql(&rows(5)).await;
    let capped = status(app.database_url.clone()).await;
    assert!(
        capped.contains(&format!("\ndelivered: {cap} or more\n")),
        "{capped}"
    );
}

#[tokio::test]
async fn webhook_status_counts_delivered_rows_up_to_a_cap_sqlite() {
    webhook_status_counts_delivered_rows_up_to_a_cap(Backend::Sqlite).await;
}

#[tokio::test]
async fn webhook_status_counts_delivered_rows_up_to_a_cap_postgres() {
    if postgres_url().is_none() {
        return;
    }
    webhook_status_counts_delivered_rows_up_to_a_cap(Backend::Postgres).await;
}
