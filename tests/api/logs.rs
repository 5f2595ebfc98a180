//! The log of the real binary, in both formats (`LOG_FORMAT=text|json`):
//! tokens and secrets never appear, and every line about a request (access
//! log, auth refusals, database errors) carries that request's id, so that
//! one failing request can be found.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::helpers::{assert_succeeded, TEST_SECRET};

const FORMATS: [&str; 2] = ["text", "json"];

pub(crate) fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flashback-devices"));
    command
        .env_remove("LOG_FORMAT")
        .env_remove("METRICS_BIND_ADDR")
        .env("JWT_SECRET", TEST_SECRET);
    command
}

/// `session create` for `user` on the database at `url`: the printed JSON.
pub(crate) fn session_create(url: &str, user: &str) -> Value {
    let output = binary()
        .args([
            "session",
            "create",
            "--user",
            user,
            "--device-name",
            "Laptop",
        ])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_succeeded(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The token of a `session create` for `user` on the database at `url`.
pub(crate) fn session_token(url: &str, user: &str) -> String {
    session_create(url, user)["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// The real binary serving on a free loopback port.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Served {
    /// `serve` on a free loopback port, with `RUST_LOG` and `LOG_FORMAT`.
    pub(crate) async fn start(url: &str, rust_log: &str, format: &str) -> Self {
        Self::start_with(url, rust_log, format, &[]).await
    }

    /// Likewise, with more environment variables.
    pub(crate) async fn start_with(
        url: &str,
        rust_log: &str,
        format: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let child = binary()
            .arg("serve")
            .env("DATABASE_URL", url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", rust_log)
            .env("LOG_FORMAT", format)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, base }
    }

    /// Stops the server (SIGTERM) and returns its (stdout, stderr).
    pub(crate) fn stop(mut self) -> (String, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        let (mut stdout, mut stderr) = (String::new(), String::new());
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (stdout, stderr)
    }
}

/// One log line, whichever the format.
#[derive(Debug)]
pub(crate) struct Line {
    pub(crate) raw: String,
    pub(crate) level: String,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
    pub(crate) operation_id: Option<String>,
    pub(crate) status: Option<u64>,
    pub(crate) latency_ms: Option<f64>,
}

/// Every line of a log; panics on a line the format does not allow.
pub(crate) fn parse(format: &str, log: &str) -> Vec<Line> {
    log.lines()
        .map(|raw| match format {
            "json" => {
                let object: Value = serde_json::from_str(raw)
                    .unwrap_or_else(|e| panic!("not one JSON object ({e}): {raw}"));
                for key in ["timestamp", "level", "target", "message"] {
                    assert!(object[key].is_string(), "no {key}: {raw}");
                }
                let text = |key: &str| object[key].as_str().map(str::to_owned);
                Line {
                    raw: raw.to_owned(),
                    level: text("level").unwrap(),
                    target: text("target").unwrap(),
                    message: text("message").unwrap(),
                    request_id: text("request_id"),
                    operation_id: text("operation_id"),
                    status: object["status"].as_u64(),
                    latency_ms: object["latency_ms"].as_f64(),
                }
            }
            _ => {
                // [timestamp LEVEL target] message key=value…
                let rest = raw
                    .strip_prefix('[')
                    .unwrap_or_else(|| panic!("not a text line: {raw}"));
                let (head, message) = rest.split_once("] ").unwrap();
                let mut head = head.split_whitespace();
                let (_, level, target) = (head.next(), head.next().unwrap(), head.next().unwrap());
                let field = |key: &str| {
                    message
                        .split(' ')
                        .find_map(|word| word.strip_prefix(&format!("{key}=")))
                        .map(str::to_owned)
                };
                Line {
                    raw: raw.to_owned(),
                    level: level.to_owned(),
                    target: target.to_owned(),
                    message: message.to_owned(),
                    request_id: field("request_id"),
                    operation_id: field("operation_id"),
                    status: field("status").and_then(|s| s.parse().ok()),
                    latency_ms: field("latency_ms").and_then(|s| s.parse().ok()),
                }
            }
        })
        .collect()
}

#[tokio::test]
async fn tokens_and_secrets_never_reach_the_logs() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("logs.db").display());
        let issued = session_create(&url, "alice");
        let token = issued["token"].as_str().unwrap().to_owned();
        let server = Served::start(&url, "trace", format).await;
        let base = server.base.clone();
        let client = reqwest::Client::new();
        let bad = format!("{token}x");
        for value in [token.as_str(), bad.as_str()] {
            let response = client
                .get(format!("{base}/devices"))
                .bearer_auth(value)
                .send()
                .await
                .unwrap();
            assert!(response.status().as_u16() == 200 || response.status().as_u16() == 401);
        }
        client
            .post(format!("{base}/devices/trust"))
            .bearer_auth(&token)
            .body("{bad json")
            .send()
            .await
            .unwrap();
        client
            .post(format!("{base}/sessions/revoke-all"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        client
            .get(format!("{base}/sessions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (stdout, logs) = server.stop();
        assert_eq!(stdout, "", "{format}: nothing but the log, on stderr");
        let lines = parse(format, &logs);
        assert!(
            lines
                .iter()
                .any(|l| l.target == "flashback_devices::access" && l.message.contains("/devices")),
            "{format}: the request log is there: {logs}"
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature),
            "{format}: a token reached the logs"
        );
        assert!(
            !logs.contains(TEST_SECRET),
            "{format}: the secret reached the logs"
        );
        assert!(
            !logs.to_ascii_lowercase().contains("bearer ey"),
            "{format}: an Authorization header reached the logs"
        );
    }
}

#[tokio::test]
async fn every_log_line_about_a_request_carries_its_id() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.db");
        let url = format!("sqlite://{}", path.display());
        let alice = session_token(&url, "alice");
        let bob = session_token(&url, "bob");
        let server = Served::start(&url, "info", format).await;
        let client = reqwest::Client::new();
        let send = |id: &'static str, method: reqwest::Method, path: &str, token: Option<&str>| {
            let mut request = client
                .request(method, format!("{}{path}", server.base))
                .header("X-Request-Id", id);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.headers()["x-request-id"], id);
                response.status().as_u16()
            }
        };
        use reqwest::Method;
        assert_eq!(
            send("req-ok", Method::GET, "/devices", Some(&alice)).await,
            200
        );
        assert_eq!(
            send("req-missing", Method::GET, "/devices", None).await,
            401
        );
        assert_eq!(
            send("req-bad", Method::GET, "/sessions", Some("not-a-jwt")).await,
            401
        );
        assert_eq!(
            send(
                "req-revoke",
                Method::POST,
                "/sessions/revoke-all",
                Some(&bob)
            )
            .await,
            200
        );
        assert_eq!(
            send("req-inactive", Method::GET, "/devices", Some(&bob)).await,
            401
        );
        // A database error: the sessions table disappears under the server.
        {
            use diesel::{connection::SimpleConnection, Connection};
            let mut conn =
                diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            conn.batch_execute("PRAGMA busy_timeout = 5000; DROP TABLE sessions;")
                .unwrap();
        }
        assert_eq!(
            send("req-dberror", Method::GET, "/devices", Some(&alice)).await,
            500
        );
        let (_, logs) = server.stop();
        let lines = parse(format, &logs);
        let about = |id: &str| -> Vec<&Line> {
            lines
                .iter()
                .filter(|l| l.request_id.as_deref() == Some(id))
                .collect()
        };
        let show = |id: &str| {
            about(id)
                .iter()
                .map(|l| l.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (id, operation_id, status) in [
            ("req-ok", "listDevices", 200),
            ("req-missing", "listDevices", 401),
            ("req-bad", "listSessions", 401),
            ("req-revoke", "revokeAllSessions", 200),
            ("req-inactive", "listDevices", 401),
            ("req-dberror", "listDevices", 500),
        ] {
            let access: Vec<&Line> = about(id)
                .into_iter()
                .filter(|l| l.target == "flashback_devices::access")
                .collect();
            assert_eq!(access.len(), 1, "{format} {id}: one access line:\n{logs}");
            assert_eq!(
                access[0].status,
                Some(status),
                "{format}: {}",
                access[0].raw
            );
            assert_eq!(
                access[0].operation_id.as_deref(),
                Some(operation_id),
                "{format}: {}",
                access[0].raw
            );
            assert!(
                access[0].latency_ms.is_some_and(|ms| ms >= 0.0),
                "{format}: {}",
                access[0].raw
            );
        }
        // Why each refused or failed request failed, on a line with its id.
        for (id, level, words) in [
            ("req-missing", "INFO", "Missing bearer token"),
            ("req-bad", "INFO", "Invalid or expired token"),
            ("req-inactive", "INFO", "revoked, expired or unknown"),
            ("req-dberror", "ERROR", "no such table"),
        ] {
            assert!(
                about(id)
                    .iter()
                    .any(|l| l.target == "flashback_devices::api::error"
                        && l.level == level
                        && l.message.contains(words)),
                "{format} {id}: no {level} line saying {words:?}:\n{}\n--- whole log:\n{logs}",
                show(id)
            );
        }
        // Every line of those layers is about a request, so carries an id;
        // start-up lines are about none and carry none.
        for line in &lines {
            if line.target == "flashback_devices::access"
                || line.target == "flashback_devices::api::error"
            {
                assert!(
                    line.request_id.is_some(),
                    "{format}: no request id: {}",
                    line.raw
                );
            }
            if line.message.starts_with("listening on") {
                assert_eq!(line.request_id, None, "{format}: {}", line.raw);
            }
        }
        assert!(
            lines.iter().any(|l| l.message.starts_with("listening on")),
            "{format}: {logs}"
        );
    }
}
