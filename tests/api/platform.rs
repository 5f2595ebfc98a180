//! The platform operations (`/platform/...`) with service keys, the session
//! policies and `renameDevice`, through the real server.

use std::time::Duration;

use flashback_devices::{
    api::types::OPERATIONS, middleware::RateLimitSettings, startup::ServerOptions, state::Policy,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{backend_test, helpers::*};

fn sign_in_body(user: &str, fingerprint: &str) -> Value {
    json!({
        "userId": user,
        "device": {
            "fingerprint": fingerprint,
            "deviceName": "Work laptop",
            "deviceType": "MOBILE",
            "os": "Android 15",
            "browser": "Chrome 131"
        },
        "ipAddress": "203.0.113.7",
        "userAgent": "test-agent",
        "location": "Lisbon, Portugal",
        "loginMethod": "passkey",
        "ttlSeconds": 600
    })
}

async fn create_session(app: &TestApp, key: &str, body: Value) -> TestResponse {
    app.post_json("/platform/sessions", key, body).await
}

/// The user's events as the platform lists them, newest first.
async fn user_events(app: &TestApp, key: &str, user: &str) -> Vec<Value> {
    let page = app
        .get(
            &format!("/platform/users/{user}/security-events?limit=100"),
            key,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["events"].as_array().unwrap().clone()
}

backend_test!(a_sign_in_through_the_api_gives_a_token_that_works, |app| {
    let key = app.service_key("sign-in").await;
    let first = create_session(&app, &key, sign_in_body("alice", "fp-1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["success"], json!(true));
    assert_eq!(first.body["newDevice"], json!(true));
    assert_eq!(first.body["device"]["deviceType"], json!("MOBILE"));
    assert_eq!(first.body["device"]["isTrusted"], json!(false));
    assert_eq!(first.body["device"]["isCurrent"], json!(false));
    assert_eq!(first.body["session"]["loginMethod"], json!("passkey"));
    assert_eq!(first.body["session"]["isCurrent"], json!(false));
    assert_eq!(first.body["device"]["city"], json!("Lisbon"));
    let token = first.body["token"].as_str().unwrap();
    // The user's token, signed by this server, works for the user's operations.
    let devices = app.get("/devices", token).await;
    assert_eq!(devices.status, 200);
    assert_eq!(devices.body["devices"][0]["id"], first.body["device"]["id"]);
    assert_eq!(devices.body["devices"][0]["isCurrent"], json!(true));
    let expires = timestamp(&first.body["session"]["expiresAt"]);
    let started = timestamp(&first.body["session"]["startedAt"]);
    assert_eq!((expires - started).num_seconds(), 600);

    // The same fingerprint again: the same device, not new; trusted on request.
    let mut again = sign_in_body("alice", "fp-1");
    again["trustDevice"] = json!(true);
    again["device"]["deviceName"] = json!("Another name");
    let second = create_session(&app, &key, again).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.body["newDevice"], json!(false));
    assert_eq!(second.body["device"]["id"], first.body["device"]["id"]);
    assert_eq!(second.body["device"]["deviceName"], json!("Work laptop"));
    assert_eq!(second.body["device"]["isTrusted"], json!(true));
    assert!(second.body["device"]["trustExpiresAt"].is_string());

    let events = user_events(&app, &key, "alice").await;
    assert_eq!(
        event_types(&events),
        [
            "DEVICE_TRUSTED",
            "SESSION_STARTED",
            "NEW_DEVICE_SIGN_IN",
            "SESSION_STARTED"
        ]
    );
    for event in &events {
        assert_eq!(event["actorService"], json!("sign-in"), "{event}");
        assert_eq!(event["actorSessionId"], Value::Null);
        assert_eq!(event["ipAddress"], json!("203.0.113.7"));
    }
    // The user lists the same events, and sees who did them.
    let own = app.events(token).await;
    assert_eq!(own.len(), 4);
    assert_eq!(own[0]["actorService"], json!("sign-in"));
    // Counted in the metrics by operationId, as every operation.
    let metrics = fetch_text(app.client.get(app.url("/metrics"))).await;
    assert!(
        metrics.contains(
            "flashback_http_requests_total{operation_id=\"createSession\",status_class=\"2xx\"} 2"
        ),
        "{metrics}"
    );
});

backend_test!(keys_and_tokens_are_accepted_only_where_they_belong, |app| {
    let key = app.service_key("support").await;
    let alice = app.login("alice", "Laptop", None).await;
    // A user's token on a platform operation.
    let refused = app.get("/platform/users/alice/devices", &alice.token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, error_body("Invalid service key"));
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    // A service key on a user operation.
    let refused = app.get("/devices", &key).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, error_body("Invalid or expired token"));
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    // A key that looks right but was never created.
    let unknown = flashback_devices::service_auth::generate();
    let refused = app.get("/platform/users/alice/devices", &unknown).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, error_body("Invalid service key"));
    // No key at all, on every platform operation.
    let platform = OPERATIONS
        .iter()
        .filter(|o| o.path.starts_with("/platform/"));
    let mut count = 0;
    for operation in platform {
        let method = Method::from_bytes(operation.method.as_bytes()).unwrap();
        let path = operation.path.replace("{userId}", "alice");
        let response = app.call(method.clone(), &path, None, None).await;
        assert_eq!(response.status, 401, "{method} {path}");
        assert_eq!(response.body, error_body("Missing bearer token"));
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        count += 1;
    }
    assert_eq!(count, 6);
    // The key itself works.
    let ok = app.get("/platform/users/alice/devices", &key).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["devices"].as_array().unwrap().len(), 1);
});

backend_test!(bad_sign_ins_are_400_and_change_nothing, |app| {
    let key = app.service_key("sign-in").await;
    let long_user = "u".repeat(129);
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut with = |label: &'static str, edit: &dyn Fn(&mut Value)| {
        let mut body = sign_in_body("mallory", "fp-m");
        edit(&mut body);
        cases.push((label, body));
    };
    with("no userId", &|b| {
        b.as_object_mut().unwrap().remove("userId");
    });
    with("empty userId", &|b| b["userId"] = json!(""));
    with("userId too long", &|b| b["userId"] = json!(long_user));
    with("userId a number", &|b| b["userId"] = json!(7));
    with("no device", &|b| {
        b.as_object_mut().unwrap().remove("device");
    });
    with("no fingerprint", &|b| {
        b["device"].as_object_mut().unwrap().remove("fingerprint");
    });
    with("fingerprint too long", &|b| {
        b["device"]["fingerprint"] = json!("f".repeat(257))
    });
    with("empty deviceName", &|b| {
        b["device"]["deviceName"] = json!("")
    });
    with("deviceName too long", &|b| {
        b["device"]["deviceName"] = json!("n".repeat(101))
    });
    with("bad deviceType", &|b| {
        b["device"]["deviceType"] = json!("TOASTER")
    });
    with("ttl too short", &|b| b["ttlSeconds"] = json!(59));
    with("ttl too long", &|b| b["ttlSeconds"] = json!(31_536_001));
    with("ttl a string", &|b| b["ttlSeconds"] = json!("600"));
    with("trustDevice a string", &|b| b["trustDevice"] = json!("yes"));
    with("trustDevice null", &|b| b["trustDevice"] = Value::Null);
    with("os null", &|b| b["device"]["os"] = Value::Null);
    with("ttl a fraction", &|b| b["ttlSeconds"] = json!(600.5));
    with("unknown field", &|b| b["admin"] = json!(true));
    with("unknown device field", &|b| {
        b["device"]["colour"] = json!("red")
    });
    with("an array", &|b| *b = json!([b.clone()]));
    for (label, body) in cases {
        let response = create_session(&app, &key, body).await;
        assert_eq!(response.status, 400, "{label}: {}", response.body);
        assert_eq!(response.body["success"], json!(false), "{label}");
        assert!(
            response.body["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid request body"),
            "{label}: {}",
            response.body
        );
    }
    let not_json = app
        .send(
            "POST",
            "/platform/sessions",
            app.client
                .post(app.url("/platform/sessions"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    let devices = app.get("/platform/users/mallory/devices", &key).await;
    assert_eq!(devices.body["devices"], json!([]));
    assert_eq!(
        user_events(&app, &key, "mallory").await,
        Vec::<Value>::new()
    );
    // 128 characters of three bytes each are a valid userId.
    let wide = "é".repeat(64) + &"語".repeat(64);
    let signed_in = create_session(&app, &key, sign_in_body(&wide, "fp-wide")).await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    // JSON Schema's integers include a zero fraction.
    let mut whole = sign_in_body("mallory", "fp-m");
    whole["ttlSeconds"] = json!(600.0);
    assert_eq!(create_session(&app, &key, whole).await.status, 201);
    // A bad userId in the path.
    let long = app
        .get(&format!("/platform/users/{long_user}/sessions"), &key)
        .await;
    assert_eq!(long.status, 400);
    assert_eq!(
        long.body,
        error_body("Invalid path parameter: userId must be 1 to 128 characters")
    );
});

backend_test!(support_lists_and_revokes_a_users_sessions, |app| {
    let key = app.service_key("support").await;
    let alice = Scenario::new(&app, "alice").laptop().phone().build().await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let bob = app.login("bob", "Laptop", None).await;

    let devices = app.get("/platform/users/alice/devices", &key).await;
    assert_eq!(devices.status, 200);
    let listed = devices.body["devices"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d["isCurrent"] == json!(false)));
    let sessions = app.get("/platform/users/alice/sessions", &key).await;
    assert_eq!(sessions.body["sessions"].as_array().unwrap().len(), 2);
    let unknown = app.get("/platform/users/nobody/sessions", &key).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.body["sessions"], json!([]));

    let revoked = app
        .post("/platform/users/alice/sessions/revoke-all", &key)
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(
        revoked.body,
        json!({"success": true, "message": "All sessions revoked successfully", "revokedCount": 2})
    );
    for token in [&laptop.token, &phone.token] {
        let refused = app.get("/devices", token).await;
        assert_eq!(refused.status, 401);
    }
    assert_eq!(app.get("/devices", &bob.token).await.status, 200);
    let events = user_events(&app, &key, "alice").await;
    assert_eq!(events[0]["type"], json!("ALL_SESSIONS_REVOKED"));
    assert_eq!(events[0]["revokedSessionCount"], json!(2));
    assert_eq!(events[0]["actorService"], json!("support"));
    assert_eq!(events[0]["actorSessionId"], Value::Null);
    let none_left = app
        .post("/platform/users/alice/sessions/revoke-all", &key)
        .await;
    assert_eq!(none_left.body["revokedCount"], json!(0));
});

backend_test!(erasing_a_user_leaves_nothing_but_tells_webhooks, |app| {
    let key = app.service_key("support").await;
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    let deleted = app.delete("/platform/users/alice", &key).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body, message_body("User data deleted successfully"));
    assert_eq!(app.get("/devices", &alice.token).await.status, 401);
    let devices = app.get("/platform/users/alice/devices", &key).await;
    assert_eq!(devices.body["devices"], json!([]));
    let sessions = app.get("/platform/users/alice/sessions", &key).await;
    assert_eq!(sessions.body["sessions"], json!([]));
    assert_eq!(user_events(&app, &key, "alice").await, Vec::<Value>::new());
    // Kept for the webhooks only: the deletion itself, nothing else.
    let kept = stored_event_types(&app, "alice").await;
    assert_eq!(kept, ["USER_DATA_DELETED"]);
    // Bob is untouched.
    assert_eq!(app.get("/devices", &bob.token).await.status, 200);
    // Nothing to delete is a success too.
    let again = app.delete("/platform/users/nobody", &key).await;
    assert_eq!(again.status, 200);
});

/// The types of the events stored for `user`, behind the API's back.
async fn stored_event_types(app: &TestApp, user: &str) -> Vec<String> {
    use diesel::prelude::*;
    use flashback_devices::db::schema::security_events;
    let (db, user) = (app.db.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| {
            security_events::table
                .filter(security_events::user_id.eq(&user))
                .select(security_events::event_type)
                .load::<String>(conn)
        })
    })
    .await
    .unwrap()
    .unwrap()
}

backend_test!(a_revoked_key_is_refused_at_once_on_every_server, |app| {
    let key = app.service_key("sign-in").await;
    let other = app.another_server().await;
    let on_other = |path: &str| app.client.get(format!("{other}{path}")).bearer_auth(&key);
    let ok = app
        .send(
            "GET",
            "/platform/users/x/devices",
            on_other("/platform/users/x/devices"),
        )
        .await;
    assert_eq!(ok.status, 200);
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| flashback_devices::db::service_keys::revoke(conn, "sign-in"))
    })
    .await
    .unwrap()
    .unwrap();
    let refused = app
        .send(
            "GET",
            "/platform/users/x/devices",
            on_other("/platform/users/x/devices"),
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(app.get("/platform/users/x/devices", &key).await.status, 401);
});

backend_test!(renaming_a_device, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    let path = format!("/devices/{}", alice.device_id);
    let renamed = app
        .call(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"deviceName": "  Work laptop "})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["device"]["deviceName"], json!("Work laptop"));
    assert_eq!(renamed.body["device"]["isCurrent"], json!(true));
    let listed = app.get("/devices", &alice.token).await;
    assert_eq!(
        listed.body["devices"][0]["deviceName"],
        json!("Work laptop")
    );
    let events = app.events(&alice.token).await;
    assert_eq!(events[0]["type"], json!("DEVICE_RENAMED"));
    assert_eq!(events[0]["deviceName"], json!("Work laptop"));
    assert_eq!(events[0]["actorSessionId"], json!(alice.session_id));
    assert_eq!(events[0]["actorService"], Value::Null);

    for (body, label) in [
        (json!({"deviceName": "   "}), "blank"),
        (json!({"deviceName": ""}), "empty"),
        (json!({"deviceName": "n".repeat(101)}), "too long"),
        (json!({"deviceName": 5}), "a number"),
        (json!({}), "missing"),
        (json!({"deviceName": "x", "extra": 1}), "unknown field"),
    ] {
        let refused = app
            .call(Method::PATCH, &path, Some(&alice.token), Some(body))
            .await;
        assert_eq!(refused.status, 400, "{label}: {}", refused.body);
    }
    let listed = app.get("/devices", &alice.token).await;
    assert_eq!(
        listed.body["devices"][0]["deviceName"],
        json!("Work laptop")
    );
    // Another user's device is not found.
    let foreign = app
        .call(
            Method::PATCH,
            &format!("/devices/{}", bob.device_id),
            Some(&alice.token),
            Some(json!({"deviceName": "Mine now"})),
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.body, error_body("Device not found"));
    let key = app.service_key("support").await;
    let with_key = app
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"deviceName": "x"})),
        )
        .await;
    assert_eq!(with_key.status, 401);
});

async fn spawn_with_policy(backend: Backend, policy: Policy) -> TestApp {
    TestApp::spawn_with(
        backend,
        Setup {
            policy,
            ..Setup::default()
        },
    )
    .await
}

backend_test!(
    a_heartbeat_never_extends_a_session_past_its_lifetime,
    |app| {
        let backend = app.backend;
        drop(app);
        let app = spawn_with_policy(
            backend,
            Policy {
                session_extension: Duration::from_secs(24 * 3600),
                session_max_lifetime: Some(Duration::from_secs(7200)),
                ..Policy::default()
            },
        )
        .await;
        let alice = app.login("alice", "Laptop", None).await;
        let beat = app
            .post(
                &format!("/sessions/{}/heartbeat", alice.session_id),
                &alice.token,
            )
            .await;
        assert_eq!(beat.status, 200);
        let sessions = app.get("/sessions", &alice.token).await;
        let started = timestamp(&sessions.body["sessions"][0]["startedAt"]);
        let new_expiry = timestamp(&beat.body["newExpiry"]);
        assert_eq!((new_expiry - started).num_seconds(), 7200);
        assert_eq!(
            sessions.body["sessions"][0]["expiresAt"],
            beat.body["newExpiry"]
        );
        // A sign-in asking for more gets the lifetime too.
        let key = app.service_key("sign-in").await;
        let mut body = sign_in_body("bob", "fp-b");
        body["ttlSeconds"] = json!(86_400);
        let signed_in = create_session(&app, &key, body).await;
        let started = timestamp(&signed_in.body["session"]["startedAt"]);
        let expires = timestamp(&signed_in.body["session"]["expiresAt"]);
        assert_eq!((expires - started).num_seconds(), 7200);
    }
);

backend_test!(
    a_sign_in_beyond_the_limit_ends_the_least_recent_sessions,
    |app| {
        let backend = app.backend;
        drop(app);
        let app = spawn_with_policy(
            backend,
            Policy {
                max_sessions_per_user: Some(2),
                ..Policy::default()
            },
        )
        .await;
        let key = app.service_key("sign-in").await;
        let mut tokens = Vec::new();
        for fingerprint in ["fp-1", "fp-2", "fp-3"] {
            let signed_in = create_session(&app, &key, sign_in_body("alice", fingerprint)).await;
            assert_eq!(signed_in.status, 201);
            tokens.push(signed_in.body["token"].as_str().unwrap().to_owned());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(app.get("/devices", &tokens[0]).await.status, 401);
        assert_eq!(app.get("/devices", &tokens[1]).await.status, 200);
        assert_eq!(app.get("/devices", &tokens[2]).await.status, 200);
        let sessions = app.get("/platform/users/alice/sessions", &key).await;
        assert_eq!(sessions.body["sessions"].as_array().unwrap().len(), 2);
        let events = user_events(&app, &key, "alice").await;
        let revoked: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == json!("SESSION_REVOKED"))
            .collect();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0]["actorService"], json!("sign-in"));
    }
);

backend_test!(platform_operations_can_live_on_their_own_listener, |app| {
    let backend = app.backend;
    drop(app);
    let app = TestApp::spawn_with(
        backend,
        Setup::with_options(ServerOptions {
            platform_bind_addr: Some("127.0.0.1:0".into()),
            ..ServerOptions::local()
        }),
    )
    .await;
    let key = app.service_key("sign-in").await;
    let public = app
        .call_unchecked(
            Method::POST,
            "/platform/sessions",
            Some(&key),
            Some(sign_in_body("alice", "fp")),
        )
        .await;
    assert_eq!(public.status, 404);
    assert_eq!(public.body, error_body("Not found"));
    let platform = app.platform_address.clone().expect("platform listener");
    let signed_in = app
        .send(
            "POST",
            "/platform/sessions",
            app.client
                .post(format!("{platform}/platform/sessions"))
                .bearer_auth(&key)
                .json(&sign_in_body("alice", "fp")),
        )
        .await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    let token = signed_in.body["token"].as_str().unwrap();
    assert_eq!(app.get("/devices", token).await.status, 200);
    let elsewhere = app
        .client
        .get(format!("{platform}/devices"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
});

backend_test!(the_rate_limiter_counts_each_service_key_apart, |app| {
    let backend = app.backend;
    drop(app);
    let app = TestApp::spawn_with(
        backend,
        Setup::with_options(ServerOptions {
            rate_limit: RateLimitSettings::new(1, 2),
            ..ServerOptions::local()
        }),
    )
    .await;
    let (first, second) = (app.service_key("one").await, app.service_key("two").await);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/platform/users/x/devices", &first).await.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Same address, another key: its own allowance.
    assert_eq!(
        app.get("/platform/users/x/devices", &second).await.status,
        200
    );
});
