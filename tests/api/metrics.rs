//! `getMetrics`: the series move with the requests the server answers,
//! labelled by operationId and status class and never by anything from a
//! request; the database, process and connection series; `METRICS_BIND_ADDR`.
//! Every scrape goes through `TestApp::call`/`send`, so its status, media type
//! and body are checked against the spec like any other answer.

use std::{collections::BTreeMap, time::Duration};

use flashback_devices::{
    db::PoolSettings, middleware::RateLimitSettings, startup::ServerOptions, telemetry::Metrics,
};
use reqwest::Method;
use serde_json::json;

use crate::{backend_test, helpers::*};

/// One scrape: every sample, keyed by metric name and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').expect("labels end with }");
                    let labels = rest
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                            (key.to_owned(), value.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            assert!(
                samples.insert((name, labels), value).is_none(),
                "a series appears twice: {line}"
            );
        }
        Self(samples)
    }

    /// The sample of `name` with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.get(&(name.to_owned(), labels)).copied()
    }

    /// Like [`Scrape::get`], 0 for a series that does not exist yet.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    pub fn series(&self) -> Vec<&(String, BTreeMap<String, String>)> {
        self.0.keys().collect()
    }
}

pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    Scrape::parse(response.body.as_str().expect("a text body"))
}

const REQUESTS: &str = "flashback_http_requests_total";
const DURATION: &str = "flashback_http_request_duration_seconds";

fn op(operation_id: &'static str, class: &'static str) -> [(&'static str, &'static str); 2] {
    [("operation_id", operation_id), ("status_class", class)]
}

backend_test!(
    requests_are_counted_and_timed_by_operation_and_status_class,
    |app| {
        let alice = app.login("alice", "Laptop", None).await;
        for _ in 0..3 {
            assert_eq!(app.get("/devices", &alice.token).await.status, 200);
        }
        for id in ["missing-1", "missing-2"] {
            assert_eq!(
                app.get(&format!("/devices/{id}"), &alice.token)
                    .await
                    .status,
                404
            );
        }
        assert_eq!(
            app.call_unchecked(Method::GET, "/nowhere", None, None)
                .await
                .status,
            404
        );
        let metrics = scrape(&app).await;
        assert_eq!(metrics.count(REQUESTS, &op("listDevices", "2xx")), 3.0);
        assert_eq!(metrics.count(REQUESTS, &op("getDevice", "4xx")), 2.0);
        assert_eq!(metrics.count(REQUESTS, &op("getDevice", "2xx")), 0.0);
        assert_eq!(metrics.count(REQUESTS, &op("(none)", "4xx")), 1.0);
        for (operation_id, class, count) in [("listDevices", "2xx", 3.0), ("getDevice", "4xx", 2.0)]
        {
            let [a, b] = op(operation_id, class);
            let count_of = |suffix: &str| metrics.count(&format!("{DURATION}{suffix}"), &[a, b]);
            assert_eq!(count_of("_count"), count, "{operation_id} {class}");
            assert!(count_of("_sum") > 0.0, "{operation_id} {class}");
            let all = metrics.count(&format!("{DURATION}_bucket"), &[a, b, ("le", "+Inf")]);
            assert_eq!(
                all, count,
                "{operation_id} {class}: the +Inf bucket holds every request"
            );
        }
        // The scrape is itself counted, in the next one.
        let again = scrape(&app).await;
        assert_eq!(again.count(REQUESTS, &op("getMetrics", "2xx")), 1.0);
        assert_eq!(again.count(REQUESTS, &op("listDevices", "2xx")), 3.0);
    }
);

#[tokio::test]
async fn no_label_holds_anything_taken_from_a_request() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", None).await;
    let round = |range: std::ops::Range<usize>| {
        let (app, token) = (&app, alice.token.clone());
        async move {
            for i in range {
                let id = format!("id-{i:04}");
                let get = app.get(&format!("/devices/{id}"), &token).await;
                assert_eq!(get.status, 404);
                let untrust = app.post(&format!("/sessions/{id}/revoke"), &token).await;
                assert_eq!(untrust.status, 404);
                let unknown = app
                    .call_unchecked(Method::GET, &format!("/files/{id}"), None, None)
                    .await;
                assert_eq!(unknown.status, 404);
                let other_method = app
                    .call_unchecked(Method::PUT, &format!("/devices/{id}"), Some(&token), None)
                    .await;
                assert_eq!(other_method.status, 405);
            }
        }
    };
    round(0..3).await;
    scrape(&app).await;
    let before = scrape(&app).await;
    round(3..300).await;
    let after = scrape(&app).await;
    assert_eq!(
        before.series(),
        after.series(),
        "297 more distinct ids made new series"
    );
    for (name, labels) in after.series() {
        for value in labels.values() {
            assert!(
                !value.contains("id-") && !value.contains('/'),
                "{name} has a label taken from a request: {labels:?}"
            );
        }
    }
    assert_eq!(after.count(REQUESTS, &op("getDevice", "4xx")), 300.0);
    assert_eq!(after.count(REQUESTS, &op("revokeSession", "4xx")), 300.0);
    assert_eq!(after.count(REQUESTS, &op("(none)", "4xx")), 600.0);
}

const REFUSALS: &str = "flashback_auth_refusals_total";

backend_test!(unauthorized_requests_are_counted_by_reason, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "sid": alice.session_id, "iat": 0, "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another"),
    )
    .unwrap();
    let before = scrape(&app).await;
    for reason in ["missing_token", "bad_token", "inactive_session"] {
        assert_eq!(
            before.get(REFUSALS, &[("reason", reason)]),
            Some(0.0),
            "{reason} starts at 0"
        );
    }
    assert_eq!(
        app.call(Method::GET, "/devices", None, None).await.status,
        401
    );
    for token in ["not-a-jwt", forged.as_str()] {
        assert_eq!(app.get("/sessions", token).await.status, 401);
    }
    assert_eq!(
        app.post("/sessions/revoke-all", &alice.token).await.status,
        200
    );
    assert_eq!(app.get("/devices", &alice.token).await.status, 401);
    let after = scrape(&app).await;
    assert_eq!(after.count(REFUSALS, &[("reason", "missing_token")]), 1.0);
    assert_eq!(after.count(REFUSALS, &[("reason", "bad_token")]), 2.0);
    assert_eq!(
        after.count(REFUSALS, &[("reason", "inactive_session")]),
        1.0
    );
    assert_eq!(after.count(REQUESTS, &op("listDevices", "4xx")), 2.0);
    assert_eq!(after.count(REQUESTS, &op("listSessions", "4xx")), 2.0);
});

#[tokio::test]
async fn rate_limited_requests_are_counted_and_metrics_are_never_limited() {
    let options = ServerOptions {
        rate_limit: RateLimitSettings::new(1, 2),
        ..ServerOptions::local()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await;
    let alice = app.login("alice", "Laptop", None).await;
    let mut limited = 0;
    for _ in 0..6 {
        if app.get("/devices", &alice.token).await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 3, "only {limited} of 6 requests were limited");
    let mut last = None;
    for _ in 0..10 {
        last = Some(scrape(&app).await);
    }
    let metrics = last.unwrap();
    let rate_limited = "flashback_http_rate_limited_total";
    assert_eq!(
        metrics.count(rate_limited, &[("operation_id", "listDevices")]),
        f64::from(limited)
    );
    assert_eq!(
        metrics.get(rate_limited, &[("operation_id", "getDevice")]),
        Some(0.0)
    );
    assert_eq!(
        metrics.count(REQUESTS, &op("listDevices", "4xx")),
        f64::from(limited)
    );
    assert_eq!(metrics.count(REQUESTS, &op("getMetrics", "2xx")), 9.0);
}

backend_test!(database_series_count_waits_and_commits, |app| {
    let alice = app.login("alice", "Laptop", Some("fp-laptop")).await;
    assert_eq!(
        app.post_json(
            "/devices/trust",
            &alice.token,
            json!({"fingerprint": "fp-laptop"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.post(
            &format!("/sessions/{}/heartbeat", alice.session_id),
            &alice.token
        )
        .await
        .status,
        200
    );
    assert_eq!(app.get("/devices", &alice.token).await.status, 200);
    let metrics = scrape(&app).await;
    // Two writes, each its own transaction and commit.
    assert_eq!(metrics.count("flashback_db_commit_writes_count", &[]), 2.0);
    assert_eq!(metrics.count("flashback_db_commit_writes_sum", &[]), 2.0);
    assert_eq!(
        metrics.count("flashback_db_commit_duration_seconds_count", &[]),
        2.0
    );
    assert!(metrics.count("flashback_db_commit_duration_seconds_sum", &[]) > 0.0);
    // The two writes queued for the writer; the read too on PostgreSQL,
    // where it goes through the blocking pool (on SQLite it runs on the
    // worker's own connection).
    let pooled_reads = if app.backend == Backend::Postgres {
        1.0
    } else {
        0.0
    };
    assert_eq!(
        metrics.count("flashback_db_thread_wait_seconds_count", &[]),
        2.0 + pooled_reads
    );
    // The writer's connection per commit, the reads', the test's own sign-in.
    assert!(metrics.count("flashback_db_pool_wait_seconds_count", &[]) >= 3.0 + pooled_reads);
    assert_eq!(
        metrics.get("flashback_db_pool_timeouts_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metrics.get("flashback_db_pool_max_connections", &[]),
        Some(8.0)
    );
    let open = metrics.count("flashback_db_pool_connections", &[("state", "idle")])
        + metrics.count("flashback_db_pool_connections", &[("state", "in_use")]);
    assert!((1.0..=8.0).contains(&open), "{open} connections open");
    assert!(metrics.count("process_resident_memory_bytes", &[]) > 1e6);
    assert!(metrics.count("process_open_fds", &[]) > 3.0);
});

/// A request that cannot get a connection in time is a 503, counted as a
/// pool timeout.
async fn pool_timeouts_are_counted(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Setup {
            pool: PoolSettings {
                max_size: 1,
                acquire_timeout: Duration::from_millis(300),
            },
            ..Setup::default()
        },
    )
    .await;
    let alice = app.login("alice", "Laptop", None).await;
    let db = app.db.clone();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (taken, wait_taken) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        db.run_blocking(move |_| {
            taken.send(()).unwrap();
            let _ = held.recv_timeout(Duration::from_secs(10));
            Ok(())
        })
    });
    wait_taken.recv_timeout(Duration::from_secs(10)).unwrap();
    // A write: on SQLite a read would not need the pool (see db::Db::read).
    let heartbeat = format!("/sessions/{}/heartbeat", alice.session_id);
    assert_eq!(app.post(&heartbeat, &alice.token).await.status, 503);
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let metrics = scrape(&app).await;
    assert_eq!(
        metrics.get("flashback_db_pool_timeouts_total", &[]),
        Some(1.0)
    );
    assert_eq!(metrics.count(REQUESTS, &op("sessionHeartbeat", "5xx")), 1.0);
    assert_eq!(
        metrics.get("flashback_db_pool_max_connections", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_timeouts_are_counted_sqlite() {
    pool_timeouts_are_counted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_timeouts_are_counted_postgres() {
    if postgres_url().is_some() {
        pool_timeouts_are_counted(Backend::Postgres).await;
    }
}

/// Reads the open-connections gauge over a connection of its own (counted
/// too) until `expected` or 5 s.
async fn open_connections_become(app: &TestApp, expected: f64) -> f64 {
    let mut seen = f64::NAN;
    for _ in 0..50 {
        // A fresh client per scrape, so no idle connection of ours lingers.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let text = fetch_text(client.get(app.url("/metrics"))).await;
        seen = Scrape::parse(&text).count("flashback_http_open_connections", &[]);
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test]
async fn open_connections_are_counted_until_they_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        open_connections_become(&app, 1.0).await,
        1.0,
        "only the scrape's own"
    );
    let mut connections = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
            .await
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        connections.push(stream);
    }
    assert_eq!(
        open_connections_become(&app, 4.0).await,
        4.0,
        "three kept alive and the scrape's"
    );
    drop(connections);
    assert_eq!(
        open_connections_become(&app, 1.0).await,
        1.0,
        "closed connections are no longer counted"
    );
}

#[tokio::test]
async fn metrics_bind_addr_moves_the_metrics_to_their_own_listener() {
    let options = ServerOptions {
        metrics_bind_addr: Some("127.0.0.1:0".into()),
        ..ServerOptions::local()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await;
    let metrics_address = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics_address, app.address);
    let alice = app.login("alice", "Laptop", None).await;
    assert_eq!(app.get("/devices", &alice.token).await.status, 200);

    // Not on the API listener: the documented 404, as for any unknown path.
    let on_api = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(on_api.status, 404);
    assert_eq!(on_api.body, error_body("Not found"));

    let request = app.client.get(format!("{metrics_address}/metrics"));
    let on_metrics = app.send("GET", "/metrics", request).await;
    assert_eq!(on_metrics.status, 200);
    assert!(on_metrics.header("x-request-id").is_some());
    let metrics = Scrape::parse(on_metrics.body.as_str().unwrap());
    assert_eq!(metrics.count(REQUESTS, &op("listDevices", "2xx")), 1.0);
    assert_eq!(metrics.count(REQUESTS, &op("getMetrics", "4xx")), 1.0);

    // The metrics listener serves nothing else.
    let api_path = app
        .client
        .get(format!("{metrics_address}/devices"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api_path.status(), 404);
    let other_method = app
        .client
        .post(format!("{metrics_address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_method.status(), 405);
    assert_eq!(other_method.headers()["allow"], "GET");
}

#[test]
fn the_exposition_format_is_the_one_the_spec_documents() {
    let spec = crate::conformance::spec();
    let content = spec
        .pointer("/paths/~1metrics/get/responses/200/content")
        .and_then(|c| c.as_object())
        .expect("getMetrics documents a 200 body");
    let media_types: Vec<&String> = content.keys().collect();
    assert_eq!(media_types, [&Metrics::content_type()]);
}

#[tokio::test]
async fn process_cpu_seconds_have_their_fraction() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // The server runs in this process: some CPU between scrapes moves the
    // counter by ticks (1/100 s, usually), so that a whole number at every
    // scrape means the fraction is dropped.
    let mut readings = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let seconds = scrape(&app)
            .await
            .get("process_cpu_seconds_total", &[])
            .expect("process_cpu_seconds_total");
        readings.push(seconds);
    }
    assert!(
        readings.windows(2).all(|w| w[0] <= w[1]),
        "a counter: {readings:?}"
    );
    assert!(
        readings.iter().any(|s| s.fract() != 0.0),
        "whole seconds only: {readings:?}"
    );
}
