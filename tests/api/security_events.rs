//! Security events: each change records its event in the same transaction,
//! with who did it and from where; `listSecurityEvents` pages by signed
//! keyset cursors; retention deletes old events in the background.

use std::time::Duration;

use flashback_devices::{
    cursor::CursorKey,
    db::{self, events::Actor, models::SecurityEventRow},
    retention::RetentionSettings,
    startup::ServerOptions,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{backend_test, helpers::*};

const AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) events-test/1.0";

/// `method path` as `token`, with a User-Agent of its own.
async fn act(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token)
        .header("user-agent", AGENT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    app.send(method.as_str(), path, request).await.status
}

backend_test!(every_change_records_its_event_with_who_and_where, |app| {
    let alice = Scenario::new(&app, "alice")
        .laptop()
        .trusted_phone()
        .tablet()
        .build()
        .await;
    let (laptop, phone, tablet) = (alice.laptop(), alice.phone(), alice.tablet());
    let bob = app.login("bob", "Laptop", None).await;
    let t = &laptop.token;

    // Sign-ins: SESSION_STARTED (and DEVICE_TRUSTED for a trusted one), with
    // the sign-in's address and User-Agent and no actor session.
    let signed_in = app.events(t).await;
    assert_eq!(
        event_types(&signed_in),
        [
            "SESSION_STARTED",
            "DEVICE_TRUSTED",
            "SESSION_STARTED",
            "SESSION_STARTED"
        ]
    );
    let started = &signed_in[0];
    assert_eq!(started["sessionId"], tablet.session_id.as_str());
    assert_eq!(started["deviceId"], tablet.device_id.as_str());
    assert_eq!(started["deviceName"], "Tablet");
    assert_eq!(started["actorSessionId"], Value::Null);
    assert_eq!(started["ipAddress"], "192.0.2.1");
    assert_eq!(started["userAgent"], "test-agent");
    assert_eq!(started["revokedSessionCount"], 0);
    assert_eq!(signed_in[1]["deviceId"], phone.device_id.as_str());
    assert_eq!(signed_in[1]["sessionId"], Value::Null);

    // Requests that change nothing record nothing: reads, heartbeats, 404s.
    let before = app.events(t).await.len();
    app.get("/devices", t).await;
    app.get("/sessions/current", t).await;
    let heartbeat = format!("/sessions/{}/heartbeat", laptop.session_id);
    assert_eq!(act(&app, Method::POST, &heartbeat, t, None).await, 200);
    for (method, path) in [
        (Method::POST, "/devices/no-such-device/untrust"),
        (Method::DELETE, "/devices/no-such-device"),
        (Method::POST, "/sessions/no-such-session/revoke"),
    ] {
        assert_eq!(act(&app, method, path, t, None).await, 404);
    }
    let unknown = json!({"fingerprint": "no-such-fingerprint"});
    assert_eq!(
        act(&app, Method::POST, "/devices/trust", t, Some(unknown)).await,
        404
    );
    assert_eq!(app.events(t).await.len(), before);

    // Each change, made from the laptop's session.
    let trust = json!({"fingerprint": Device::Laptop.fingerprint()});
    assert_eq!(
        act(&app, Method::POST, "/devices/trust", t, Some(trust)).await,
        200
    );
    let revoke = format!("/sessions/{}/revoke", tablet.session_id);
    assert_eq!(act(&app, Method::POST, &revoke, t, None).await, 200);
    let untrust = format!("/devices/{}/untrust", phone.device_id);
    assert_eq!(act(&app, Method::POST, &untrust, t, None).await, 200);
    // A new sign-in renames the phone: older events keep the old name.
    let phone_again = app
        .login("alice", "Phone 2", Some(Device::Phone.fingerprint()))
        .await;
    let delete = format!("/devices/{}", phone.device_id);
    assert_eq!(act(&app, Method::DELETE, &delete, t, None).await, 200);
    app.login("alice", "Desktop", None).await;
    app.login("alice", "Desktop", None).await;
    assert_eq!(
        act(&app, Method::POST, "/sessions/revoke-others", t, None).await,
        200
    );
    assert_eq!(
        act(&app, Method::POST, "/sessions/revoke-all", t, None).await,
        200
    );

    let reader = app.login("alice", "Reader", None).await;
    let events = app.events(&reader.token).await;
    assert_eq!(
        event_types(&events[..10]),
        [
            "SESSION_STARTED", // the reader
            "ALL_SESSIONS_REVOKED",
            "OTHER_SESSIONS_REVOKED",
            "SESSION_STARTED",
            "SESSION_STARTED",
            "DEVICE_REMOVED",
            "SESSION_STARTED", // phone_again
            "DEVICE_UNTRUSTED",
            "SESSION_REVOKED",
            "DEVICE_TRUSTED",
        ]
    );
    assert_eq!(events.len(), 14);
    // Every change by the laptop's session, from this client, with its agent.
    for event in events[1..10]
        .iter()
        .filter(|e| e["type"] != "SESSION_STARTED")
    {
        assert_eq!(
            event["actorSessionId"],
            laptop.session_id.as_str(),
            "{event}"
        );
        assert_eq!(event["ipAddress"], "127.0.0.1", "{event}");
        assert_eq!(event["userAgent"], AGENT, "{event}");
    }
    let all = &events[1];
    assert_eq!(
        all["revokedSessionCount"], 1,
        "only the laptop's own was left"
    );
    assert_eq!(all["deviceId"], Value::Null);
    assert_eq!(all["sessionId"], Value::Null);
    // The two desktop sessions (the tablet's was revoked, the phone's ended with it).
    assert_eq!(events[2]["revokedSessionCount"], 2);
    let removed = &events[5];
    assert_eq!(removed["deviceId"], phone.device_id.as_str());
    assert_eq!(removed["deviceName"], "Phone 2");
    assert_eq!(removed["revokedSessionCount"], 1, "phone_again's session");
    assert_eq!(events[6]["sessionId"], phone_again.session_id.as_str());
    let untrusted = &events[7];
    assert_eq!(untrusted["deviceName"], "Phone");
    assert_eq!(untrusted["revokedSessionCount"], 1);
    let revoked = &events[8];
    assert_eq!(revoked["sessionId"], tablet.session_id.as_str());
    assert_eq!(revoked["deviceId"], tablet.device_id.as_str());
    assert_eq!(revoked["deviceName"], "Tablet");
    assert_eq!(revoked["revokedSessionCount"], 1);
    let trusted = &events[9];
    assert_eq!(trusted["deviceId"], laptop.device_id.as_str());
    assert_eq!(trusted["deviceName"], "Laptop");
    assert_eq!(trusted["revokedSessionCount"], 0);
    // Ids are unique, times never go up as the list goes down.
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
    let times: Vec<chrono::DateTime<chrono::Utc>> = events
        .iter()
        .map(|e| e["occurredAt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Bob sees his own only.
    assert_eq!(
        event_types(&app.events(&bob.token).await),
        ["SESSION_STARTED"]
    );
});

backend_test!(revoking_other_sessions_keeps_the_callers_own, |app| {
    let alice = Scenario::new(&app, "alice")
        .laptop()
        .phone()
        .laptop()
        .expired_tablet()
        .build()
        .await;
    let (laptop, phone, expired) = (alice.laptop(), alice.phone(), alice.tablet());
    let second = alice.session(Device::Laptop, 1);
    let bob = app.login("bob", "Laptop", None).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let response = app.post("/sessions/revoke-others", &laptop.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        json!({"success": true, "message": "Other sessions revoked successfully", "revokedCount": 2})
    );
    assert_eq!(app.get("/sessions", &laptop.token).await.status, 200);
    for other in [phone, second, expired] {
        assert_eq!(app.get("/sessions", &other.token).await.status, 401);
    }
    assert_eq!(app.get("/sessions", &bob.token).await.status, 200);
    let listed = app.get("/sessions", &laptop.token).await;
    let ids: Vec<&str> = listed.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [laptop.session_id.as_str()]);
    // Again: nothing left to revoke, and that is what it says.
    let again = app.post("/sessions/revoke-others", &laptop.token).await;
    assert_eq!(again.body["revokedCount"], 0);
    let events = app.events(&laptop.token).await;
    assert_eq!(
        event_types(&events[..2]),
        ["OTHER_SESSIONS_REVOKED", "OTHER_SESSIONS_REVOKED"]
    );
    assert_eq!(events[0]["revokedSessionCount"], 0);
    assert_eq!(events[1]["revokedSessionCount"], 2);
});

/// SQL that makes every revocation of a session fail, on either backend.
pub fn revocations_fail_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER no_revocation BEFORE UPDATE OF revoked_at ON sessions
             WHEN NEW.revoked_at IS NOT NULL
             BEGIN SELECT RAISE(ABORT, 'revocations are off'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION no_revocation() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'revocations are off'; END $$;
             CREATE TRIGGER no_revocation BEFORE UPDATE OF revoked_at ON sessions
               FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION no_revocation();"
        }
    }
}

pub fn revocations_work_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "DROP TRIGGER no_revocation;",
        Backend::Postgres => {
            "DROP TRIGGER no_revocation ON sessions; DROP FUNCTION no_revocation();"
        }
    }
}

backend_test!(a_change_and_its_event_land_together_or_not_at_all, |app| {
    let alice = Scenario::new(&app, "alice")
        .laptop()
        .trusted_phone()
        .build()
        .await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let untrust = format!("/devices/{}/untrust", phone.device_id);
    let before = app.events(&laptop.token).await;

    // The change fails half-way (its sessions cannot be revoked): no event,
    // and the device is still trusted.
    app.execute_sql(revocations_fail_sql(app.backend)).await;
    let failed = app.post(&untrust, &laptop.token).await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    let failed_all = app.post("/sessions/revoke-others", &laptop.token).await;
    assert_eq!(failed_all.status, 500, "{}", failed_all.body);
    app.execute_sql(revocations_work_sql(app.backend)).await;
    assert_eq!(app.events(&laptop.token).await, before);
    let device = app
        .get(&format!("/devices/{}", phone.device_id), &laptop.token)
        .await;
    assert_eq!(device.body["device"]["isTrusted"], true);

    // The event cannot be written: the change is undone with it.
    app.execute_sql("ALTER TABLE security_events RENAME TO security_events_away")
        .await;
    let failed = app.post(&untrust, &laptop.token).await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert_eq!(failed.body, error_body("Failed to untrust device"));
    let failed_all = app.post("/sessions/revoke-all", &laptop.token).await;
    assert_eq!(failed_all.status, 500, "{}", failed_all.body);
    app.execute_sql("ALTER TABLE security_events_away RENAME TO security_events")
        .await;
    let device = app
        .get(&format!("/devices/{}", phone.device_id), &laptop.token)
        .await;
    assert_eq!(device.body["device"]["isTrusted"], true);
    assert_eq!(
        device.body["device"]["sessions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(app.get("/sessions", &phone.token).await.status, 200);
    assert_eq!(app.events(&laptop.token).await, before);

    // And once all is well, both land.
    assert_eq!(app.post(&untrust, &laptop.token).await.status, 200);
    let after = app.events(&laptop.token).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[0]["type"], "DEVICE_UNTRUSTED");
});

backend_test!(pages_walk_every_event_once_while_new_ones_arrive, |app| {
    let alice = app.login("alice", "Laptop", Some("fp")).await;
    for _ in 0..8 {
        app.login("alice", "Laptop", Some("fp")).await;
    }
    let all = app.events(&alice.token).await;
    assert_eq!(all.len(), 9);

    // Two at a time, with a new event recorded between every two pages.
    let mut walked = Vec::new();
    let mut path = "/security-events?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path, &alice.token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let events = page.body["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        walked.extend(events.iter().cloned());
        pages += 1;
        app.login("alice", "Laptop", Some("fp")).await;
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/security-events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(
        walked, all,
        "every event once, in order, none of the new ones"
    );
    assert_eq!(app.events(&alice.token).await.len(), 9 + 5);
});

backend_test!(page_sizes_default_to_20_and_stop_at_100, |app| {
    // More sessions than MAX_SESSIONS_PER_USER's default, which would end
    // alice's first one: this is about pages, not that limit.
    let app = TestApp::spawn_with(
        app.backend,
        Setup {
            policy: flashback_devices::state::Policy {
                max_sessions_per_user: None,
                ..Default::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let alice = app.login("alice", "Laptop", Some("fp")).await;
    for _ in 0..104 {
        app.login("alice", "Laptop", Some("fp")).await;
    }
    let first = app.get("/security-events", &alice.token).await;
    assert_eq!(first.body["events"].as_array().unwrap().len(), 20);
    assert!(first.body["nextCursor"].is_string());
    let most = app.get("/security-events?limit=100", &alice.token).await;
    assert_eq!(most.body["events"].as_array().unwrap().len(), 100);
    let cursor = most.body["nextCursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/security-events?limit=100&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(rest.body["events"].as_array().unwrap().len(), 5);
    assert_eq!(rest.body["nextCursor"], Value::Null);
    // A page that ends exactly at the last event has no next cursor either.
    let exact = app
        .get(
            &format!("/security-events?limit=5&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(exact.body["events"].as_array().unwrap().len(), 5);
    assert_eq!(exact.body["nextCursor"], Value::Null);
    let one = app.get("/security-events?limit=1", &alice.token).await;
    assert_eq!(one.body["events"].as_array().unwrap().len(), 1);
});

const BAD_LIMIT: &str = "Invalid query parameter: limit must be an integer from 1 to 100";
const BAD_CURSOR: &str = "Invalid cursor: pass the nextCursor of a previous page unchanged";

backend_test!(bad_limits_and_cursors_are_400, |app| {
    let alice = app.login("alice", "Laptop", Some("fp")).await;
    let bob = app.login("bob", "Laptop", None).await;
    for _ in 0..3 {
        app.login("alice", "Laptop", Some("fp")).await;
        app.login("bob", "Laptop", None).await;
    }
    for limit in [
        "0",
        "101",
        "-1",
        "abc",
        "1.5",
        "",
        "+5",
        "1e1",
        "%201",
        "1000000000000",
    ] {
        let response = app
            .get(&format!("/security-events?limit={limit}"), &alice.token)
            .await;
        assert_eq!(response.status, 400, "limit={limit}");
        assert_eq!(response.body, error_body(BAD_LIMIT), "limit={limit}");
    }
    let twice = app
        .get("/security-events?limit=1&limit=2", &alice.token)
        .await;
    assert_eq!(twice.status, 400);
    assert!(twice.body["error"]
        .as_str()
        .unwrap()
        .starts_with("Invalid query parameter: "));

    let page = app.get("/security-events?limit=1", &alice.token).await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let bobs = app.get("/security-events?limit=1", &bob.token).await.body["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = base64_decode(&cursor);
    let mut forged = Vec::new();
    for index in [0, 3, 9, bytes.len() / 2, bytes.len() - 1] {
        let mut edited = bytes.clone();
        edited[index] ^= 0x20;
        forged.push(base64_encode(&edited));
    }
    // The same position, signed with another key.
    let position = flashback_devices::db::events::EventPosition {
        occurred_at: chrono::Utc::now().naive_utc(),
        id: "019a8a1f-0b3c-7d4e-9f5a-6b7c8d9e0f1a".into(),
    };
    let other_key = CursorKey::new(b"not this deployment's key").seal("alice", &position);
    let long = "A".repeat(300);
    let mut cursors = vec![
        "".to_owned(),
        "!!!".to_owned(),
        "A".to_owned(),
        "AAAA".to_owned(),
        format!("{cursor}AA"),
        cursor[1..].to_owned(),
        long,
        other_key,
        bobs, // another user's cursor
    ];
    cursors.extend(forged);
    for bad in &cursors {
        let encoded: String = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let response = app
            .get(&format!("/security-events?cursor={encoded}"), &alice.token)
            .await;
        assert_eq!(response.status, 400, "cursor={bad}: {}", response.body);
        assert_eq!(response.body, error_body(BAD_CURSOR), "cursor={bad}");
    }
    // The genuine one still works, and for its user only.
    let next = app
        .get(&format!("/security-events?cursor={cursor}"), &alice.token)
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body["events"].as_array().unwrap().len(), 3);
    let stolen = app
        .get(&format!("/security-events?cursor={cursor}"), &bob.token)
        .await;
    assert_eq!(stolen.body, error_body(BAD_CURSOR));
    // Also by a user whose id is as long as the owner's.
    let carol = app.login("carol", "Laptop", None).await;
    let stolen = app
        .get(&format!("/security-events?cursor={cursor}"), &carol.token)
        .await;
    assert_eq!(stolen.status, 400);
    assert_eq!(stolen.body, error_body(BAD_CURSOR));
    // Unknown parameters are ignored, as elsewhere.
    assert_eq!(
        app.get("/security-events?limit=2&other=1", &alice.token)
            .await
            .status,
        200
    );
});

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

backend_test!(a_cursor_holds_across_servers_and_restarts, |app| {
    let alice = app.login("alice", "Laptop", Some("fp")).await;
    for _ in 0..4 {
        app.login("alice", "Laptop", Some("fp")).await;
    }
    let first = app.get("/security-events?limit=2", &alice.token).await;
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let path = format!("/security-events?limit=2&cursor={cursor}");
    let here = app.get(&path, &alice.token).await;
    assert_eq!(here.status, 200);
    // A second server of the deployment (or this one restarted) reads the
    // key from the database: the same cursor means the same page there.
    let other = app.another_server().await;
    let there = app
        .client
        .get(format!("{other}{path}"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(there.status(), 200);
    let there: Value = there.json().await.unwrap();
    assert_eq!(there["events"], here.body["events"]);
    assert_eq!(there["nextCursor"], here.body["nextCursor"]);
});

/// `count` events of `user` that happened `age` ago, written as the server would.
async fn old_events(app: &TestApp, user: &str, count: usize, age: chrono::TimeDelta) {
    let (db, user) = (app.db.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| {
            for _ in 0..count {
                let at = db::now() - age;
                let event = SecurityEventRow::new(&user, "SESSION_STARTED", &Actor::default(), at);
                db::events::record(conn, &event)?;
            }
            Ok(())
        })
    })
    .await
    .unwrap()
    .unwrap();
}

backend_test!(retention_deletes_old_events_in_small_batches, |app| {
    old_events(&app, "alice", 7, chrono::TimeDelta::days(91)).await;
    old_events(&app, "bob", 2, chrono::TimeDelta::days(120)).await;
    old_events(&app, "alice", 2, chrono::TimeDelta::days(89)).await;
    let db = app.db.clone();
    let cutoff = db::now() - chrono::TimeDelta::days(90);
    let batches = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| {
                db.run_blocking(|conn| db::events::prune_before(conn, cutoff, 4))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(batches, [4, 4, 1, 0, 0]);
    let alice = app.login("alice", "Laptop", None).await;
    assert_eq!(
        app.events(&alice.token).await.len(),
        3,
        "89 days old, and the sign-in"
    );
});

backend_test!(the_server_prunes_in_the_background, |app| {
    let _ = &app;
    let options = ServerOptions {
        event_retention: Some(RetentionSettings {
            max_age: Duration::from_secs(90 * 24 * 3600),
            batch: 3,
            pause: Duration::from_millis(5),
            interval: Duration::from_millis(50),
        }),
        ..ServerOptions::local()
    };
    let app = TestApp::spawn_with(app.backend, Setup::with_options(options)).await;
    let alice = app.login("alice", "Laptop", None).await;
    old_events(&app, "alice", 10, chrono::TimeDelta::days(100)).await;
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = app.events(&alice.token).await.len();
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 1, "the old events are gone, the sign-in stays");
});

backend_test!(a_revoked_or_expired_token_lists_no_events, |app| {
    // The session check is part of the page's own query: it must refuse a
    // session the user has others beside, and a page that holds no event.
    let laptop = app.login("alice", "Laptop", None).await;
    let phone = app.login("alice", "Phone", None).await;
    let revoked = app
        .post(
            &format!("/sessions/{}/revoke", phone.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(app.get("/security-events", &phone.token).await.status, 401);
    assert_eq!(app.get("/security-events", &laptop.token).await.status, 200);
    // Bob has no event once his are pruned: his page is empty.
    let bob = app.login("bob", "Laptop", None).await;
    app.execute_sql("DELETE FROM security_events WHERE user_id = 'bob'")
        .await;
    let empty = app.get("/security-events", &bob.token).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["events"], serde_json::json!([]));
    let revoke_all = app.post("/sessions/revoke-all", &bob.token).await;
    assert_eq!(revoke_all.status, 200);
    app.execute_sql("DELETE FROM security_events WHERE user_id = 'bob'")
        .await;
    assert_eq!(app.get("/security-events", &bob.token).await.status, 401);
});
