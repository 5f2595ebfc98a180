//! Webhooks of security events, delivered to a real receiver: an HTTP server
//! on a loopback port inside the test, which checks every signature itself
//! (its own HMAC, not the server's code) and answers as each test scripts it.

use std::{
    collections::{HashMap, VecDeque},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use flashback_devices::{
    db::{self, webhook_deliveries},
    startup::ServerOptions,
    webhooks::{WebhookSecret, WebhookSettings},
};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{
    helpers::*,
    security_events::{revocations_fail_sql, revocations_work_sql},
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver answers to one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// 429 with `Retry-After: N` (seconds).
    TooMany(u64),
    /// No answer for this long (then a 200 nobody reads).
    Hang(Duration),
    /// This status with this `Retry-After` header, verbatim.
    RetryAfter(u16, &'static str),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    body: Value,
    content_type: String,
    signature_ok: bool,
    /// What the receiver answered (a hang counts as not acknowledged).
    acknowledged: bool,
    at: Instant,
}

#[derive(Default)]
struct ReceiverState {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn start_on(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ReceiverState::default());
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    fn script(&self, replies: &[Reply]) {
        self.state.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The acknowledged deliveries' event ids, in arrival order.
    fn acknowledged_ids(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.acknowledged)
            .map(|r| r.id)
            .collect()
    }

    /// Waits (failing after a minute) until every id in `ids` was acknowledged.
    async fn wait_for(&self, ids: &[String]) {
        wait_until("every delivery acknowledged", || {
            let acknowledged = self.acknowledged_ids();
            ids.iter().all(|id| acknowledged.contains(id))
        })
        .await;
    }
}

async fn receive(
    state: web::Data<ReceiverState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    let acknowledged = matches!(reply, Reply::Status(200..=299));
    state.received.lock().unwrap().push(Received {
        signature_ok: verify(&id, &timestamp, &body, &signature),
        id,
        timestamp: timestamp.parse().unwrap_or(-1),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        content_type: header("content-type"),
        acknowledged,
        at: Instant::now(),
    });
    match reply {
        Reply::Status(status) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
        }
        Reply::TooMany(seconds) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", seconds.to_string()))
            .finish(),
        Reply::Hang(duration) => {
            actix_web::rt::time::sleep(duration).await;
            HttpResponse::Ok().finish()
        }
        Reply::RetryAfter(status, value) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .insert_header(("Retry-After", value))
                .finish()
        }
    }
}

/// The Standard Webhooks check, written here from the specification.
fn verify(id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    signature.split(' ').any(|candidate| candidate == expected)
}

/// Fast settings for tests: short timeout, retries within milliseconds.
fn settings(urls: &[&str]) -> WebhookSettings {
    let mut settings = WebhookSettings::new(
        urls.iter().map(|u| u.to_string()).collect(),
        WebhookSecret::parse(SECRET).unwrap(),
    );
    settings.timeout = Duration::from_millis(400);
    settings.retry_base = Duration::from_millis(20);
    settings.retry_max = Duration::from_millis(200);
    settings.poll_interval = Duration::from_millis(50);
    settings
}

fn options(settings: WebhookSettings) -> ServerOptions {
    ServerOptions {
        webhooks: Some(settings),
        ..ServerOptions::local()
    }
}

async fn spawn_with_webhooks(backend: Backend, settings: WebhookSettings) -> TestApp {
    TestApp::spawn_with(backend, Setup::with_options(options(settings))).await
}

/// Polls `done` until it holds; fails the test after a minute (a bound for
/// a broken build, not a speed requirement).
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn outbox_counts(app: &TestApp) -> webhook_deliveries::Counts {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || db.run_blocking(webhook_deliveries::counts))
        .await
        .unwrap()
        .unwrap()
}

/// Every event of `token`'s user, oldest first (as they happened).
async fn events_in_order(app: &TestApp, token: &str) -> Vec<Value> {
    let mut events = app.events(token).await;
    events.reverse();
    events
}

/// Runs one test body on each backend, as `NAME::sqlite` and
/// `NAME::postgres` (as `backend_test!`, but the body starts its own
/// server: the receiver's URL comes first).
macro_rules! webhook_test {
    ($name:ident, |$backend:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = Backend::Sqlite;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if postgres_url().is_none() {
                    return;
                }
                let $backend = Backend::Postgres;
                $body
            }
        }
    };
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

webhook_test!(
    every_event_arrives_signed_with_the_listed_event_and_its_user,
    |backend| {
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let alice = Scenario::new(&app, "alice")
            .laptop()
            .trusted_phone()
            .build()
            .await;
        let (laptop, phone) = (alice.laptop(), alice.phone());
        let untrust = app
            .post(
                &format!("/devices/{}/untrust", phone.device_id),
                &laptop.token,
            )
            .await;
        assert_eq!(untrust.status, 200, "{}", untrust.body);
        let events = events_in_order(&app, &laptop.token).await;
        assert_eq!(
            event_types(&events),
            [
                "SESSION_STARTED",
                "SESSION_STARTED",
                "DEVICE_TRUSTED",
                "DEVICE_UNTRUSTED"
            ]
        );
        receiver.wait_for(&ids(&events)).await;

        let received = receiver.received();
        assert_eq!(received.len(), events.len(), "{received:#?}");
        let now = chrono::Utc::now().timestamp();
        for (event, delivery) in events.iter().zip(&received) {
            assert!(delivery.signature_ok, "{delivery:?}");
            assert_eq!(delivery.content_type, "application/json");
            assert_eq!(delivery.id, event["id"].as_str().unwrap());
            assert!(
                (now - 300..=now + 5).contains(&delivery.timestamp),
                "{delivery:?}"
            );
            let mut data = event.clone();
            data["userId"] = json!("alice");
            assert_eq!(
                delivery.body,
                json!({"type": event["type"], "timestamp": event["occurredAt"], "data": data})
            );
        }
        let counts = wait_for_counts(&app, |c| c.delivered == events.len() as i64).await;
        assert_eq!((counts.pending, counts.failed), (0, 0));
        assert_eq!(counts.delivered, events.len() as i64);
        assert_eq!(counts.oldest_pending, None);

        // Retention deletes delivered rows once old enough, a batch at a time.
        let db = app.db.clone();
        let later = db::now() + chrono::TimeDelta::seconds(1);
        let pruned = tokio::task::spawn_blocking(move || {
            db.run_blocking(|conn| webhook_deliveries::prune_delivered_before(conn, later, 3))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(pruned, 3);
        assert_eq!(outbox_counts(&app).await.delivered, events.len() as i64 - 3);
    }
);

webhook_test!(every_write_delivers_the_event_it_records, |backend| {
    // On PostgreSQL each write inserts its event's deliveries in its own
    // statement: one per operation, none may be left out.
    let receiver = Receiver::start().await;
    let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
    let laptop = app.login("alice", "Laptop", Some("fp-laptop")).await;
    let phone = app.login("alice", "Phone", Some("fp-phone")).await;
    let tablet = app.login("alice", "Tablet", Some("fp-tablet")).await;
    app.login("alice", "Laptop", Some("fp-laptop")).await;
    let phone_path = format!("/devices/{}", phone.device_id);
    let writes = [
        (
            Method::POST,
            "/devices/trust".to_owned(),
            Some(json!({"fingerprint": "fp-phone"})),
        ),
        (
            Method::PATCH,
            phone_path.clone(),
            Some(json!({"deviceName": "Work phone"})),
        ),
        (
            Method::POST,
            format!("/sessions/{}/revoke", tablet.session_id),
            None,
        ),
        (
            Method::DELETE,
            format!("/devices/{}", tablet.device_id),
            None,
        ),
        (Method::POST, "/sessions/revoke-others".to_owned(), None),
        (Method::POST, "/sessions/revoke-all".to_owned(), None),
    ];
    for (method, path, body) in writes {
        let response = app
            .call(method.clone(), &path, Some(&laptop.token), body)
            .await;
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
    }
    let after = app.login("alice", "Laptop", Some("fp-laptop")).await;
    let events = events_in_order(&app, &after.token).await;
    let written: Vec<&str> = event_types(&events)
        .into_iter()
        .filter(|kind| *kind != "SESSION_STARTED")
        .collect();
    assert_eq!(
        written,
        [
            "DEVICE_TRUSTED",
            "DEVICE_RENAMED",
            "SESSION_REVOKED",
            "DEVICE_REMOVED",
            "OTHER_SESSIONS_REVOKED",
            "ALL_SESSIONS_REVOKED"
        ]
    );
    receiver.wait_for(&ids(&events)).await;
    let mut received: Vec<String> = receiver.acknowledged_ids();
    received.sort();
    let mut expected = ids(&events);
    expected.sort();
    assert_eq!(received, expected, "one delivery of each event");
});

webhook_test!(
    each_user_s_events_arrive_in_order_despite_failures,
    |backend| {
        let receiver = Receiver::start().await;
        // The first attempts fail, whoever they are for: every user's queue is
        // held back at some point.
        receiver.script(&[
            Reply::Status(500),
            Reply::Status(503),
            Reply::Status(200),
            Reply::Status(500),
            Reply::Status(502),
        ]);
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let mut tokens = HashMap::new();
        for round in 0..4 {
            for user in ["alice", "bob", "carol"] {
                let login = app
                    .login(
                        user,
                        &format!("Device {round}"),
                        Some(&format!("fp-{round}")),
                    )
                    .await;
                tokens.insert(user, login.token);
            }
        }
        let mut expected = HashMap::new();
        for (user, token) in &tokens {
            expected.insert(user.to_string(), ids(&events_in_order(&app, token).await));
        }
        let all: Vec<String> = expected.values().flatten().cloned().collect();
        receiver.wait_for(&all).await;

        for (user, order) in &expected {
            let position = |id: &str| order.iter().position(|e| e == id);
            // Every attempt for this user, in arrival order: never an event
            // before every earlier one of the user was acknowledged.
            let mut acknowledged_up_to = 0; // events 0..this are acknowledged
            for attempt in receiver.received() {
                let Some(index) = position(&attempt.id) else {
                    continue;
                };
                assert!(
                    index <= acknowledged_up_to,
                    "{user}: event #{index} sent before #{acknowledged_up_to} was acknowledged"
                );
                if attempt.acknowledged && index == acknowledged_up_to {
                    acknowledged_up_to += 1;
                }
                assert!(attempt.signature_ok);
            }
            assert_eq!(acknowledged_up_to, order.len(), "{user}");
        }
    }
);

webhook_test!(
    a_receivers_absurd_retry_after_is_capped_and_never_stops_the_server,
    |backend| {
        // A receiver (or anyone on the path to an http:// URL) chooses
        // Retry-After: a delay that overflows a date, a date in year 9999
        // and garbage are each a retry within retry_max (200 ms here).
        let receiver = Receiver::start().await;
        receiver.script(&[
            Reply::RetryAfter(429, "99999999999999"),
            Reply::RetryAfter(503, "Fri, 31 Dec 9999 23:59:59 GMT"),
            Reply::RetryAfter(429, "garbage"),
            Reply::Status(200),
        ]);
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let alice = app.login("alice", "Laptop", None).await;
        let first = events_in_order(&app, &alice.token).await;
        receiver.wait_for(&ids(&first)).await;
        let received = receiver.received();
        assert_eq!(received.len(), 4, "{received:#?}");
        assert!(received.iter().all(|r| r.id == first[0]["id"]));
        for pair in received.windows(2) {
            // The retry comes within the maximum (200 ms) plus a claim's slack.
            assert!(
                pair[1].at - pair[0].at < Duration::from_secs(5),
                "{received:#?}"
            );
        }
        // The server still answers, and other deliveries go on.
        let bob = app.login("bob", "Laptop", None).await;
        assert_eq!(app.get("/devices", &bob.token).await.status, 200);
        let second = events_in_order(&app, &bob.token).await;
        receiver.wait_for(&ids(&second)).await;
        let counts = wait_for_counts(&app, |c| c.delivered == 2).await;
        assert_eq!((counts.pending, counts.failed), (0, 0));
    }
);

webhook_test!(
    a_receiver_answering_500_then_429_then_200_gets_it_after_backoff,
    |backend| {
        let receiver = Receiver::start().await;
        receiver.script(&[Reply::Status(500), Reply::TooMany(1), Reply::Status(200)]);
        // Retry-After is honoured up to the retry maximum: room for 1 s.
        let mut settings = settings(&[&receiver.url]);
        settings.retry_max = Duration::from_secs(2);
        let app = spawn_with_webhooks(backend, settings).await;
        let login = app.login("alice", "Laptop", None).await;
        let events = events_in_order(&app, &login.token).await;
        receiver.wait_for(&ids(&events)).await;

        let received = receiver.received();
        assert_eq!(received.len(), 3, "{received:#?}");
        assert!(received
            .iter()
            .all(|r| r.id == events[0]["id"] && r.signature_ok));
        assert_eq!(
            received.iter().map(|r| r.acknowledged).collect::<Vec<_>>(),
            [false, false, true]
        );
        // Retry-After: 1 is honoured (a lower bound: the retry is not sooner).
        assert!(received[2].at - received[1].at >= Duration::from_millis(900));
        let counts = wait_for_counts(&app, |c| c.delivered == 1).await;
        assert_eq!((counts.pending, counts.failed), (0, 0));

        // /metrics: the attempts by result, the lag of the one delivery, and the
        // gauges once recounted (every 2 s).
        let scrape = crate::metrics::scrape(&app).await;
        let attempts =
            |result| scrape.count("flashback_webhook_attempts_total", &[("result", result)]);
        assert_eq!(
            (
                attempts("delivered"),
                attempts("refused"),
                attempts("unreachable")
            ),
            (1.0, 2.0, 0.0)
        );
        assert_eq!(
            scrape.count("flashback_webhook_delivery_lag_seconds_count", &[]),
            1.0
        );
        assert!(scrape.count("flashback_webhook_delivery_lag_seconds_sum", &[]) >= 0.9);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let scrape = crate::metrics::scrape(&app).await;
            let pending = scrape.get("flashback_webhook_deliveries_pending", &[]);
            let failed = scrape.get("flashback_webhook_deliveries_failed", &[]);
            if pending == Some(0.0) && failed == Some(0.0) {
                break;
            }
            assert!(Instant::now() < deadline, "gauges: {pending:?} {failed:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
);

/// Waits until the outbox's counts satisfy `done`, and returns them.
async fn wait_for_counts(
    app: &TestApp,
    done: impl Fn(&webhook_deliveries::Counts) -> bool,
) -> webhook_deliveries::Counts {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = outbox_counts(app).await;
        if done(&counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "timed out: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

webhook_test!(
    a_hanging_receiver_times_out_and_gets_it_again_without_slowing_requests,
    |backend| {
        let receiver = Receiver::start().await;
        // Far longer than the 400 ms attempt timeout.
        receiver.script(&[Reply::Hang(Duration::from_secs(30))]);
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let login = app.login("alice", "Laptop", None).await;
        wait_until("the first attempt", || !receiver.received().is_empty()).await;
        // While that attempt hangs, the API answers as ever.
        let listed = app.get("/devices", &login.token).await;
        assert_eq!(listed.status, 200);
        let events = events_in_order(&app, &login.token).await;
        receiver.wait_for(&ids(&events)).await;
        let received = receiver.received();
        assert_eq!(received.len(), 2, "{received:#?}");
        assert_eq!(received[0].id, received[1].id);
        assert!(!received[0].acknowledged && received[1].acknowledged);
        wait_for_counts(&app, |c| c.delivered == 1 && c.pending == 0).await;
    }
);

webhook_test!(
    a_receiver_down_for_a_while_gets_everything_once_up,
    |backend| {
        // A port nobody listens on yet: connections are refused.
        let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = reserved.local_addr().unwrap();
        drop(reserved);
        let url = format!("http://{address}/hook");
        let app = spawn_with_webhooks(backend, settings(&[&url])).await;
        let alice = app.login("alice", "Laptop", None).await;
        let bob = app.login("bob", "Laptop", None).await;
        let mut expected = ids(&events_in_order(&app, &alice.token).await);
        expected.extend(ids(&events_in_order(&app, &bob.token).await));
        // Several attempts fail (the outbox counts them) before it comes up.
        let db = app.db.clone();
        let fewest_attempts = move || {
            use diesel::{dsl::min, prelude::*};
            use flashback_devices::db::schema::webhook_deliveries::dsl::*;
            db.run_blocking(|conn| {
                webhook_deliveries
                    .select(min(attempts))
                    .first::<Option<i32>>(conn)
            })
            .unwrap()
            .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let fewest_attempts = fewest_attempts.clone();
            if tokio::task::spawn_blocking(fewest_attempts).await.unwrap() >= 3 {
                break;
            }
            assert!(Instant::now() < deadline, "no failed attempts recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(outbox_counts(&app).await.pending, expected.len() as i64);
        // The pending gauge of /metrics says so too (recounted every 2 s).
        let deadline = Instant::now() + Duration::from_secs(60);
        while crate::metrics::scrape(&app)
            .await
            .get("flashback_webhook_deliveries_pending", &[])
            != Some(expected.len() as f64)
        {
            assert!(Instant::now() < deadline, "pending gauge never counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let receiver = Receiver::start_on(TcpListener::bind(address).unwrap());
        receiver.wait_for(&expected).await;
        assert!(receiver.received().iter().all(|r| r.signature_ok));
        wait_for_counts(&app, |c| c.delivered == expected.len() as i64).await;
    }
);

webhook_test!(
    a_rolled_back_change_has_no_delivery_and_a_failed_outbox_rolls_back_the_change,
    |backend| {
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let alice = Scenario::new(&app, "alice")
            .laptop()
            .trusted_phone()
            .build()
            .await;
        let (laptop, phone) = (alice.laptop(), alice.phone());
        let untrust = format!("/devices/{}/untrust", phone.device_id);
        let before = ids(&events_in_order(&app, &laptop.token).await);
        receiver.wait_for(&before).await;

        // The change fails after its event and deliveries were written: all undone.
        app.execute_sql(revocations_fail_sql(app.backend)).await;
        let failed = app.post(&untrust, &laptop.token).await;
        assert_eq!(failed.status, 500, "{}", failed.body);
        app.execute_sql(revocations_work_sql(app.backend)).await;

        // The outbox cannot be written: the change is undone with it.
        let (block, unblock) = match app.backend {
            Backend::Sqlite => (
                "CREATE TRIGGER no_outbox BEFORE INSERT ON webhook_deliveries \
             BEGIN SELECT RAISE(ABORT, 'outbox is off'); END;",
                "DROP TRIGGER no_outbox;",
            ),
            Backend::Postgres => (
                "CREATE FUNCTION no_outbox() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'outbox is off'; END $$; \
             CREATE TRIGGER no_outbox BEFORE INSERT ON webhook_deliveries \
               FOR EACH ROW EXECUTE FUNCTION no_outbox();",
                "DROP TRIGGER no_outbox ON webhook_deliveries; DROP FUNCTION no_outbox();",
            ),
        };
        app.execute_sql(block).await;
        let failed = app.post(&untrust, &laptop.token).await;
        assert_eq!(failed.status, 500, "{}", failed.body);
        app.execute_sql(unblock).await;
        let device = app
            .get(&format!("/devices/{}", phone.device_id), &laptop.token)
            .await;
        assert_eq!(device.body["device"]["isTrusted"], true);
        assert_eq!(ids(&events_in_order(&app, &laptop.token).await), before);

        // A change that commits is delivered after those that did not.
        let done = app.post(&untrust, &laptop.token).await;
        assert_eq!(done.status, 200, "{}", done.body);
        let after = ids(&events_in_order(&app, &laptop.token).await);
        assert_eq!(after.len(), before.len() + 1);
        receiver.wait_for(&after).await;
        assert_eq!(receiver.acknowledged_ids(), after);
        let counts = wait_for_counts(&app, |c| c.delivered == after.len() as i64).await;
        assert_eq!(
            (counts.pending, counts.failed),
            (0, 0),
            "only committed events have deliveries"
        );
    }
);

webhook_test!(
    two_servers_on_one_database_send_each_delivery_once,
    |backend| {
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        app.another_server_with(options(settings(&[&receiver.url])))
            .await;
        let mut expected = Vec::new();
        for user in 0..6 {
            let mut token = String::new();
            for device in 0..4 {
                token = app
                    .login(&format!("user-{user}"), &format!("Device {device}"), None)
                    .await
                    .token;
            }
            expected.extend(ids(&events_in_order(&app, &token).await));
        }
        receiver.wait_for(&expected).await;
        let mut counted: HashMap<String, usize> = HashMap::new();
        for attempt in receiver.received() {
            assert!(attempt.acknowledged && attempt.signature_ok);
            *counted.entry(attempt.id).or_default() += 1;
        }
        assert_eq!(counted.len(), expected.len());
        assert!(
            counted.values().all(|n| *n == 1),
            "sent more than once: {counted:?}"
        );
    }
);

webhook_test!(given_up_deliveries_are_failed_until_retried, |backend| {
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(500)]);
    let mut fast = settings(&[&receiver.url]);
    // The first failure is already past the retry period.
    fast.give_up_after = Duration::ZERO;
    let app = spawn_with_webhooks(backend, fast).await;
    let login = app.login("alice", "Laptop", None).await;
    let counts = wait_for_counts(&app, |c| c.failed == 1).await;
    assert_eq!((counts.pending, counts.delivered), (0, 0));
    assert_eq!(receiver.received().len(), 1);

    let db = app.db.clone();
    let retried = tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| webhook_deliveries::retry_failed(conn, db::now()))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(retried, 1);
    let events = events_in_order(&app, &login.token).await;
    receiver.wait_for(&ids(&events)).await;
    wait_for_counts(&app, |c| c.delivered == 1 && c.failed == 0).await;
});

/// On SQLite one process dispatches (it writes no leases): a server whose
/// database's dispatcher lock is held by another process sends nothing,
/// its events wait as pending, and it takes over once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_process_dispatches_and_another_takes_over_when_it_stops() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let path = app.sqlite_path().expect("a SQLite database");
    // Held as the dispatching process holds it: an exclusive lock of an open file.
    let held_elsewhere = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{path}-webhooks"))
        .unwrap();
    held_elsewhere.lock().unwrap();
    let settings = settings(&[&receiver.url]);
    let poll = settings.poll_interval;
    app.another_server_with(options(settings)).await;

    let token = app.login("alice", "Laptop", None).await.token;
    let expected = ids(&events_in_order(&app, &token).await);
    assert!(!expected.is_empty());
    tokio::time::sleep(poll * 10).await;
    assert!(
        receiver.received().is_empty(),
        "a server sent deliveries while another process held the dispatcher lock"
    );
    assert_eq!(outbox_counts(&app).await.pending, expected.len() as i64);

    drop(held_elsewhere);
    receiver.wait_for(&expected).await;
    assert_eq!(receiver.acknowledged_ids(), expected);
}

webhook_test!(
    platform_sign_ins_and_erasures_reach_the_subscribers,
    |backend| {
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let key = app.service_key("sign-in").await;
        let signed_in = app
            .post_json(
                "/platform/sessions",
                &key,
                json!({"userId": "alice", "device": {"fingerprint": "fp", "deviceName": "Laptop"}}),
            )
            .await;
        assert_eq!(signed_in.status, 201, "{}", signed_in.body);
        let token = signed_in.body["token"].as_str().unwrap();
        let events = events_in_order(&app, token).await;
        assert_eq!(
            event_types(&events),
            ["SESSION_STARTED", "NEW_DEVICE_SIGN_IN"]
        );
        receiver.wait_for(&ids(&events)).await;
        let deleted = app.delete("/platform/users/alice", &key).await;
        assert_eq!(deleted.status, 200);
        wait_until("the erasure delivered", || {
            receiver
                .received()
                .iter()
                .any(|r| r.acknowledged && r.body["type"] == json!("USER_DATA_DELETED"))
        })
        .await;
        let received = receiver.received();
        let types: Vec<&Value> = received.iter().map(|r| &r.body["type"]).collect();
        assert_eq!(
            types,
            [
                &json!("SESSION_STARTED"),
                &json!("NEW_DEVICE_SIGN_IN"),
                &json!("USER_DATA_DELETED")
            ]
        );
        let erased = &received[2];
        assert!(erased.signature_ok);
        assert_eq!(erased.body["data"]["userId"], json!("alice"));
        assert_eq!(erased.body["data"]["actorService"], json!("sign-in"));
        assert_eq!(erased.body["data"]["actorSessionId"], Value::Null);
        assert_eq!(erased.body["data"]["revokedSessionCount"], json!(1));
        assert_eq!(received[1].body["data"]["actorService"], json!("sign-in"));
    }
);

/// A URL where nothing listens: connections are refused.
fn unreachable_url() -> String {
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/hook", reserved.local_addr().unwrap())
}

/// Every delivery's URL, status and last error.
async fn deliveries(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    use diesel::prelude::*;
    use flashback_devices::db::schema::webhook_deliveries::dsl::*;
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| {
            webhook_deliveries
                .select((url, status, last_error))
                .order((url, occurred_at, event_id))
                .load(conn)
        })
    })
    .await
    .unwrap()
    .unwrap()
}

webhook_test!(
    pending_deliveries_to_a_removed_url_fail_and_stay_failed,
    |backend| {
        let gone = unreachable_url();
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&gone])).await;
        app.login("alice", "Laptop", None).await;
        let pending = outbox_counts(&app).await.pending;
        assert!(pending > 0);

        // A restart with the URL removed from WEBHOOK_URLS.
        app.another_server_with(options(settings(&[&receiver.url])))
            .await;
        let rows = deliveries(&app).await;
        assert_eq!(rows.len() as i64, pending, "{rows:?}");
        for (url, status, error) in &rows {
            assert_eq!(url, &gone);
            assert_eq!(status, "failed");
            assert_eq!(error.as_deref(), Some(webhook_deliveries::ENDPOINT_REMOVED));
        }
        // `webhook retry` leaves them: nothing would send them.
        let db = app.db.clone();
        let retried = tokio::task::spawn_blocking(move || {
            db.run_blocking(|conn| webhook_deliveries::retry_failed(conn, db::now()))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(retried, 0);
        let counts = outbox_counts(&app).await;
        assert_eq!((counts.pending, counts.failed), (0, pending));
    }
);

webhook_test!(
    servers_with_other_webhook_urls_say_they_disagree,
    |backend| {
        let (first, second) = (Receiver::start().await, Receiver::start().await);
        let app = spawn_with_webhooks(backend, settings(&[&first.url])).await;
        let disagreement = |metrics: &crate::metrics::Scrape| {
            metrics.get("flashback_webhook_endpoints_disagreement", &[])
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while disagreement(&crate::metrics::scrape(&app).await) != Some(0.0) {
            assert!(Instant::now() < deadline, "no agreement reported");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Started later with another list: its list is everybody's now.
        let later = app
            .another_server_with(options(settings(&[&second.url])))
            .await;
        while disagreement(&crate::metrics::scrape(&app).await) != Some(1.0) {
            assert!(Instant::now() < deadline, "no disagreement reported");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let scrape_later = || async {
            let body = fetch_text(app.client.get(format!("{later}/metrics"))).await;
            crate::metrics::Scrape::parse(&body)
        };
        while disagreement(&scrape_later().await) != Some(0.0) {
            assert!(Instant::now() < deadline, "the later server disagrees");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Events of the first server are fanned out to the later one's list.
        app.login("alice", "Laptop", None).await;
        let rows = deliveries(&app).await;
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|(url, ..)| url == &second.url), "{rows:?}");
    }
);

webhook_test!(
    events_of_one_microsecond_list_and_arrive_in_one_order,
    |backend| {
        let receiver = Receiver::start().await;
        let app = spawn_with_webhooks(backend, settings(&[&receiver.url])).await;
        let alice = app.login("alice", "Laptop", None).await;
        let first = ids(&events_in_order(&app, &alice.token).await);
        receiver.wait_for(&first).await;
        // Two servers record an event of alice in the same microsecond: the
        // id decides, for the listing (across a page boundary) and for the
        // deliveries alike, whichever was inserted first.
        let (low, high) = (
            "01930000-0000-7000-8000-00000000000a",
            "01930000-0000-7000-8000-00000000000b",
        );
        let at = "2030-01-01 00:00:00.000001";
        let copy = |id: &str| {
            format!(
                "INSERT INTO security_events (id, user_id, event_type, occurred_at, device_id, \
                 device_name, session_id, revoked_session_count, actor_session_id, ip_address, \
                 user_agent) SELECT '{id}', user_id, event_type, '{at}', device_id, device_name, \
                 session_id, revoked_session_count, actor_session_id, ip_address, user_agent \
                 FROM security_events WHERE id = '{}'; \
                 INSERT INTO webhook_deliveries (event_id, url, user_id, occurred_at, status, \
                 next_attempt_at, enqueued_at) SELECT '{id}', url, 'alice', '{at}', 'pending', \
                 '2020-01-01 00:00:00', '2020-01-01 00:00:00' FROM webhook_endpoints;",
                first[0]
            )
        };
        app.execute_sql(&format!("BEGIN; {} {} COMMIT;", copy(high), copy(low)))
            .await;
        let mut listed = Vec::new();
        let mut path = "/security-events?limit=1".to_owned();
        loop {
            let page = app.get(&path, &alice.token).await;
            assert_eq!(page.status, 200, "{}", page.body);
            listed.extend(ids(page.body["events"].as_array().unwrap()));
            match page.body["nextCursor"].as_str() {
                Some(cursor) => path = format!("/security-events?limit=1&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(listed.len(), first.len() + 2, "{listed:?}");
        assert_eq!(&listed[..2], [high, low], "newest first: {listed:?}");
        let expected: Vec<String> = first
            .iter()
            .cloned()
            .chain([low.to_owned(), high.to_owned()])
            .collect();
        receiver.wait_for(&expected).await;
        assert_eq!(receiver.acknowledged_ids(), expected);
    }
);
