//! The spec says what the server says: every example body in
//! `openapi/openapi.yaml` (what Swagger UI shows under each response) is
//! provoked for real, through the server, and its fixed words are compared
//! with the answer: `success`, `error`, `message` and `status`, word for
//! word. Data (ids, dates, lists, counts) is illustration and not compared.
//! A text example (the metrics) is compared by its `#` lines, word for
//! word, and the names of the series it shows.
//!
//! The list of examples is read from the spec (every response of every
//! operation, `example` and each of `examples`), and every response must
//! have one, so that no response, and no example added later, can go
//! unchecked: an example this file cannot provoke fails the test, naming it.
//! Each status is provoked by its real cause: a bad token, a bad id or body,
//! a missing resource, a rate limit, a schema broken under the running
//! server (500), a pool with no connection to give (503).

use std::time::Duration;

use flashback_devices::{
    db::{self, PoolSettings},
    middleware::RateLimitSettings,
    startup::ServerOptions,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{backend_test, conformance, helpers::*};

/// The fields of a body that are the same in every answer of its kind.
const FIXED: [&str; 4] = ["success", "error", "message", "status"];

#[derive(Debug, Clone)]
struct Example {
    operation_id: String,
    method: Method,
    template: String,
    status: u16,
    /// `example`, or the key of the entry of `examples`.
    name: String,
    body: Value,
}

impl Example {
    fn label(&self) -> String {
        format!(
            "{} ({} {}) {} {}",
            self.operation_id, self.method, self.template, self.status, self.name
        )
    }
}

fn resolve(node: &Value) -> &Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => conformance::spec()
            .pointer(reference.trim_start_matches('#'))
            .expect("ref resolves"),
        None => node,
    }
}

/// Every example of every response of every operation, in document order.
fn spec_examples() -> Vec<Example> {
    let mut examples = Vec::new();
    let mut without = Vec::new();
    for (template, item) in conformance::spec()["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let operation_id = operation["operationId"].as_str().unwrap().to_owned();
            for (status, response) in operation["responses"].as_object().unwrap() {
                // The one media type of the response (JSON, or the metrics' text).
                let content = &resolve(response)["content"];
                let media = content
                    .as_object()
                    .and_then(|c| c.values().next())
                    .unwrap_or(&Value::Null);
                let mut found: Vec<(String, Value)> = Vec::new();
                if let Some(body) = media.get("example") {
                    found.push(("example".into(), body.clone()));
                }
                for (name, example) in media["examples"].as_object().into_iter().flatten() {
                    found.push((name.clone(), resolve(example)["value"].clone()));
                }
                if found.is_empty() {
                    without.push(format!("{operation_id} {status}"));
                }
                for (name, body) in found {
                    examples.push(Example {
                        operation_id: operation_id.clone(),
                        method: method.clone(),
                        template: template.clone(),
                        status: status.parse().unwrap(),
                        name,
                        body,
                    });
                }
            }
        }
    }
    assert!(
        without.is_empty(),
        "responses without an example (Swagger UI shows no body for them): {without:?}"
    );
    examples
}

/// What makes the server give an example's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Everything right.
    Fine,
    NoToken,
    BadToken,
    /// A well-signed token whose session was revoked.
    EndedSession,
    BadBody,
    BadPathId,
    /// A `userId` in the path that is too long.
    BadUserId,
    BadLimit,
    BadCursor,
    Missing,
    /// Over the rate limit.
    TooFast,
    /// The schema broken under the running server.
    Broken,
    /// No database connection to be had in time.
    NoConnection,
    /// The metrics asked of the API listener while `METRICS_BIND_ADDR`
    /// serves them elsewhere.
    MetricsElsewhere,
    /// A body with a `Content-Encoding`.
    Compressed,
    /// A body that stops arriving.
    SlowBody,
}

fn cause(example: &Example) -> Option<Cause> {
    let has_path_id = example.template.contains("{id}");
    Some(match (example.status, example.name.as_str()) {
        (200, "example") => Cause::Fine,
        (201, "example") => Cause::Fine,
        (401, "missingToken" | "missingKey") => Cause::NoToken,
        (401, "invalidToken" | "invalidKey") => Cause::BadToken,
        (401, "inactiveSession") => Cause::EndedSession,
        (400, "example")
            if ["trustDevice", "renameDevice", "createSession"]
                .contains(&example.operation_id.as_str()) =>
        {
            Cause::BadBody
        }
        (400, "example") if has_path_id => Cause::BadPathId,
        (400, "example" | "badUserId") if example.template.contains("{userId}") => Cause::BadUserId,
        (400, "badLimit") if example.operation_id.ends_with("SecurityEvents") => Cause::BadLimit,
        (400, "badCursor") if example.operation_id.ends_with("SecurityEvents") => Cause::BadCursor,
        (404, "example") if example.operation_id == "getMetrics" => Cause::MetricsElsewhere,
        (404, "example") => Cause::Missing,
        (429, "example") => Cause::TooFast,
        (415, "example") => Cause::Compressed,
        (408, "example") => Cause::SlowBody,
        (500, "example") => Cause::Broken,
        (503, "example") => Cause::NoConnection,
        _ => return None,
    })
}

/// A user of its own for one request: a laptop (whose token asks), a
/// trusted phone, a second laptop session and a revoked one.
struct Fixture {
    laptop: Login,
    phone: Login,
    second: Login,
    ended: Login,
    /// A service key of its own, for the platform operations.
    key: String,
}

async fn fixture(app: &TestApp, user: &str) -> Fixture {
    let signed = Scenario::new(app, user)
        .laptop()
        .trusted_phone()
        .laptop()
        .laptop()
        .build()
        .await;
    let (laptop, phone) = (signed.laptop().clone(), signed.phone().clone());
    let second = signed.session(Device::Laptop, 1).clone();
    let ended = signed.session(Device::Laptop, 2).clone();
    // Not over HTTP: on the rate-limited server that would spend the allowance.
    let (db, user, session) = (app.db.clone(), user.to_owned(), ended.session_id.clone());
    let revoked = tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| db::sessions::revoke(conn, &user, &session, db::now()))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(revoked.is_some());
    Fixture {
        key: app.service_key(&format!("key-{}", laptop.user_id)).await,
        laptop,
        phone,
        second,
        ended,
    }
}

struct Request {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    /// Sent with `Content-Encoding: gzip` (the body itself is plain JSON:
    /// the server must refuse it without reading it).
    encoded: bool,
}

/// The request that gives `example`'s answer for `cause`, as `fixture`'s user.
fn request(example: &Example, cause: Cause, fixture: &Fixture) -> Request {
    let op = example.operation_id.as_str();
    let id = match (op, cause) {
        (_, Cause::BadPathId) => "not%20an%20id".to_owned(),
        (_, Cause::Missing) => "no-such-id".to_owned(),
        ("revokeSession", _) => fixture.second.session_id.clone(),
        ("sessionHeartbeat", _) => fixture.laptop.session_id.clone(),
        _ => fixture.phone.device_id.clone(),
    };
    let user = match cause {
        Cause::BadUserId => "u".repeat(129),
        _ => fixture.laptop.user_id.clone(),
    };
    let mut path = example
        .template
        .replace("{id}", &id)
        .replace("{userId}", &user);
    match cause {
        Cause::BadLimit => path.push_str("?limit=0"),
        // Well formed, but not signed by this server.
        Cause::BadCursor => path.push_str("?cursor=AQAAAAAAAAAAeA"),
        _ => {}
    }
    let body = match op {
        "trustDevice" => Some(match cause {
            Cause::BadBody => json!({}),
            Cause::Missing => json!({"fingerprint": "no-such-fingerprint"}),
            _ => json!({"fingerprint": Device::Phone.fingerprint()}),
        }),
        "renameDevice" => Some(match cause {
            Cause::BadBody => json!({"deviceName": "   "}),
            _ => json!({"deviceName": "Renamed phone"}),
        }),
        "createSession" => Some(match cause {
            Cause::BadBody => json!({"userId": fixture.laptop.user_id}),
            _ => json!({
                "userId": fixture.laptop.user_id,
                "device": {"fingerprint": "fp-tablet", "deviceName": "Tablet"}
            }),
        }),
        _ => None,
    };
    let platform = example.template.starts_with("/platform/");
    let secured = conformance::find_operation(example.method.as_str(), &example.template)
        .map(|(_, operation)| operation.get("security") != Some(&json!([])))
        .unwrap();
    let token = match cause {
        _ if !secured => None,
        Cause::NoToken => None,
        Cause::BadToken => Some("not-a-token".to_owned()),
        Cause::EndedSession => Some(fixture.ended.token.clone()),
        _ if platform => Some(fixture.key.clone()),
        _ => Some(fixture.laptop.token.clone()),
    };
    Request {
        method: example.method.clone(),
        path,
        token,
        body,
        encoded: cause == Cause::Compressed,
    }
}

async fn send(app: &TestApp, request: Request) -> TestResponse {
    if !request.encoded {
        return app
            .call(
                request.method,
                &request.path,
                request.token.as_deref(),
                request.body,
            )
            .await;
    }
    let mut builder = app
        .client
        .request(request.method.clone(), app.url(&request.path))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(request.body.unwrap_or_default().to_string());
    if let Some(token) = &request.token {
        builder = builder.bearer_auth(token);
    }
    app.send(request.method.as_str(), &request.path, builder)
        .await
}

/// Sends `request`'s head and the first bytes of its body, then nothing:
/// the server's answer once its body deadline passes.
async fn send_stalled(app: &TestApp, request: Request) -> TestResponse {
    use std::io::{Read, Write};
    let address = app.address.strip_prefix("http://").unwrap().to_owned();
    let token = request.token.clone().unwrap_or_default();
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"fin",
        request.method, request.path
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    TestResponse {
        status,
        headers: Default::default(),
        body: serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}")),
    }
}

/// The name of the series of a sample line: `name{labels} value` → `name`.
fn series_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or(line)
}

/// Differences between the fixed fields of the example and of the answer.
fn compare(example: &Example, answer: &TestResponse) -> Option<String> {
    let mut wrong = Vec::new();
    if answer.status != example.status {
        wrong.push(format!("status {}", answer.status));
    }
    if let (Some(shown), Some(said)) = (example.body.as_str(), answer.body.as_str()) {
        let said: Vec<&str> = said.lines().collect();
        for line in shown.lines().filter(|l| !l.is_empty()) {
            let found = if line.starts_with('#') {
                said.contains(&line)
            } else {
                said.iter()
                    .any(|l| !l.starts_with('#') && series_name(l) == series_name(line))
            };
            if !found {
                wrong.push(format!("the server says no {line:?}"));
            }
        }
    }
    for field in FIXED {
        if let Some(shown) = example.body.get(field) {
            if answer.body.get(field) != Some(shown) {
                wrong.push(format!(
                    "{field}: spec {shown}, server {}",
                    answer.body[field]
                ));
            }
        }
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", example.label(), wrong.join("; ")))
}

/// SQL that breaks every secured operation (each checks its session first;
/// the platform operations read devices, sessions or events) and the SQL
/// that repairs it.
const BREAK: &str = "ALTER TABLE sessions RENAME TO sessions_gone;
    ALTER TABLE devices RENAME TO devices_gone;
    ALTER TABLE security_events RENAME TO security_events_gone;";
const REPAIR: &str = "ALTER TABLE security_events_gone RENAME TO security_events;
    ALTER TABLE devices_gone RENAME TO devices;
    ALTER TABLE sessions_gone RENAME TO sessions;";

backend_test!(every_example_in_the_spec_is_what_the_server_says, |app| {
    let examples = spec_examples();
    let mut unprovoked = Vec::new();
    let mut by_cause: Vec<(Example, Cause)> = Vec::new();
    for example in &examples {
        match cause(example) {
            Some(cause) => by_cause.push((example.clone(), cause)),
            None => unprovoked.push(example.label()),
        }
    }
    assert!(
        unprovoked.is_empty(),
        "examples this test does not know how to provoke (add their cause): {unprovoked:#?}"
    );
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let mut user = 0;
    let mut next_user = || {
        user += 1;
        format!("user-{user}")
    };

    // Causes the ordinary server answers, one fresh user per request.
    let ordinary = [
        Cause::TooFast,
        Cause::Broken,
        Cause::NoConnection,
        Cause::MetricsElsewhere,
        Cause::SlowBody,
    ];
    for (example, cause) in by_cause.iter().filter(|(_, c)| !ordinary.contains(c)) {
        let fixture = fixture(&app, &next_user()).await;
        let answer = send(&app, request(example, *cause, &fixture)).await;
        mismatches.extend(compare(example, &answer));
        checked += 1;
    }

    // 429: a server that allows one request at a time; each user spends
    // theirs on getCurrentSession first.
    let limited = TestApp::spawn_with(
        app.backend,
        Setup::with_options(ServerOptions {
            rate_limit: RateLimitSettings::new(1, 1),
            ..ServerOptions::local()
        }),
    )
    .await;
    for (example, cause) in by_cause.iter().filter(|(_, c)| *c == Cause::TooFast) {
        let fixture = fixture(&limited, &next_user()).await;
        // A service key has an allowance of its own.
        let spend = if example.template.starts_with("/platform/") {
            limited.get("/platform/users/x/devices", &fixture.key).await
        } else {
            limited
                .get("/sessions/current", &fixture.laptop.token)
                .await
        };
        assert_eq!(spend.status, 200);
        let answer = send(&limited, request(example, *cause, &fixture)).await;
        mismatches.extend(compare(example, &answer));
        checked += 1;
    }

    // 404 of getMetrics: a server whose metrics have a listener of their own.
    let elsewhere = TestApp::spawn_with(
        app.backend,
        Setup::with_options(ServerOptions {
            metrics_bind_addr: Some("127.0.0.1:0".into()),
            ..ServerOptions::local()
        }),
    )
    .await;
    for (example, cause) in by_cause
        .iter()
        .filter(|(_, c)| *c == Cause::MetricsElsewhere)
    {
        let fixture = fixture(&elsewhere, &next_user()).await;
        let answer = send(&elsewhere, request(example, *cause, &fixture)).await;
        mismatches.extend(compare(example, &answer));
        checked += 1;
    }

    // 408: a server with a short body deadline, and a body that stalls.
    let impatient = TestApp::spawn_with(
        app.backend,
        Setup::with_options(ServerOptions {
            body_timeout: Duration::from_millis(300),
            ..ServerOptions::local()
        }),
    )
    .await;
    for (example, cause) in by_cause.iter().filter(|(_, c)| *c == Cause::SlowBody) {
        let fixture = fixture(&impatient, &next_user()).await;
        let answer = send_stalled(&impatient, request(example, *cause, &fixture)).await;
        mismatches.extend(compare(example, &answer));
        checked += 1;
    }

    // 500: the sessions table renamed away under the running server.
    let broken: Vec<_> = by_cause
        .iter()
        .filter(|(_, c)| *c == Cause::Broken)
        .collect();
    let mut requests = Vec::new();
    for (example, cause) in &broken {
        let fixture = fixture(&app, &next_user()).await;
        requests.push(request(example, *cause, &fixture));
    }
    app.execute_sql(BREAK).await;
    let mut answers = Vec::new();
    for request in requests {
        answers.push(send(&app, request).await);
    }
    app.execute_sql(REPAIR).await;
    for ((example, _), answer) in broken.iter().zip(&answers) {
        mismatches.extend(compare(example, answer));
        checked += 1;
    }
    let healthy = fixture(&app, &next_user()).await;
    assert_eq!(app.get("/devices", &healthy.laptop.token).await.status, 200);

    // 503: a pool of one connection, held by the test for as long as the
    // requests take; each waits 200 ms for it and gives up.
    let starved = TestApp::spawn_with(
        app.backend,
        Setup {
            pool: PoolSettings {
                max_size: 1,
                acquire_timeout: Duration::from_millis(200),
            },
            ..Setup::default()
        },
    )
    .await;
    let unavailable: Vec<_> = by_cause
        .iter()
        .filter(|(_, c)| *c == Cause::NoConnection)
        .collect();
    let mut requests = Vec::new();
    for (example, cause) in &unavailable {
        let fixture = fixture(&starved, &next_user()).await;
        requests.push(request(example, *cause, &fixture));
    }
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = starved.db.clone();
    let holder = tokio::task::spawn_blocking(move || {
        db.run_blocking(|_conn| {
            held_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
            Ok(())
        })
    });
    // SQLite reads need no pooled connection (each worker has its own)
    // unless the database is busy for them: make it so.
    let recovery = starved
        .sqlite_path()
        .map(|path| RecoveryElsewhere::start(&path));
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(send(&starved, request).await);
    }
    drop(recovery);
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    for ((example, _), answer) in unavailable.iter().zip(&answers) {
        mismatches.extend(compare(example, answer));
        checked += 1;
    }

    assert!(
        mismatches.is_empty(),
        "{} of {checked} examples are not what the server says:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(checked, examples.len());
    // Every operation's every status, and all three 401 messages of each secured one.
    assert!(checked >= 90, "only {checked} examples");
});
