//! Bearer authentication: what is refused, always as 401 with the JSON body.

use flashback_devices::api::types::OPERATIONS;
use reqwest::Method;

use crate::{backend_test, helpers::*};

fn forge(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

backend_test!(every_secured_operation_refuses_a_missing_token, |app| {
    let secured = OPERATIONS.iter().filter(|operation| operation.secured);
    for operation in secured {
        let method = Method::from_bytes(operation.method.as_bytes()).unwrap();
        let path = operation.path.replace("{id}", "x");
        let response = app.call(method.clone(), &path, None, None).await;
        assert_eq!(response.status, 401, "{method} {path}");
        assert_eq!(response.body, error_body("Missing bearer token"));
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    assert!(OPERATIONS.iter().filter(|o| o.secured).count() >= 9);
});

backend_test!(bad_tokens_are_refused, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let now = chrono::Utc::now().timestamp();
    let bob = app.login("bob", "Laptop", None).await;
    let mut tampered: Vec<String> = alice.token.split('.').map(str::to_owned).collect();
    tampered[1] = forge(
        serde_json::json!({"sub": "bob", "sid": bob.session_id, "iat": now, "exp": now + 60}),
        b"x",
    )
    .split('.')
    .nth(1)
    .unwrap()
    .to_owned();
    let candidates = [
        (
            "another secret",
            forge(
                serde_json::json!({"sub": "alice", "sid": alice.session_id, "iat": now, "exp": now + 60}),
                b"another-secret-another-secret-another",
            ),
        ),
        (
            "expired",
            forge(
                serde_json::json!({"sub": "alice", "sid": alice.session_id, "iat": now - 120, "exp": now - 60}),
                TEST_SECRET.as_bytes(),
            ),
        ),
        (
            "missing sid",
            forge(
                serde_json::json!({"sub": "alice", "iat": now, "exp": now + 60}),
                TEST_SECRET.as_bytes(),
            ),
        ),
        (
            "sid of another user",
            forge(
                serde_json::json!({"sub": "alice", "sid": bob.session_id, "iat": now, "exp": now + 60}),
                TEST_SECRET.as_bytes(),
            ),
        ),
        (
            "exp as string",
            forge(
                serde_json::json!({"sub": "alice", "sid": alice.session_id, "iat": now, "exp": (now + 60).to_string()}),
                TEST_SECRET.as_bytes(),
            ),
        ),
        ("tampered payload", tampered.join(".")),
        (
            "alg none",
            format!(
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                alice.token.split('.').nth(1).unwrap()
            ),
        ),
        ("garbage", "not-a-jwt".to_owned()),
        ("over-long", "a".repeat(5000)),
    ];
    for (name, token) in candidates {
        let response = app.call(Method::GET, "/devices", Some(&token), None).await;
        assert_eq!(response.status, 401, "{name}");
        assert_eq!(response.body["success"], false, "{name}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer"),
            "{name}"
        );
    }
    // The real token still works: nothing above changed anything.
    assert_eq!(app.get("/devices", &alice.token).await.status, 200);
});

backend_test!(malformed_authorization_headers_are_refused, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let headers = [
        alice.token.clone(),
        format!("Basic {}", alice.token),
        format!("Bearer Bearer {}", alice.token),
        "Bearer ".to_owned(),
        "Bearer".to_owned(),
    ];
    for value in headers {
        let request = app
            .client
            .get(app.url("/devices"))
            .header("authorization", &value);
        let response = app.send("GET", "/devices", request).await;
        assert_eq!(response.status, 401, "{value}");
        assert_eq!(response.body["success"], false);
    }
    let doubled = app
        .client
        .get(app.url("/devices"))
        .bearer_auth(&alice.token)
        .header("authorization", format!("Bearer {}", alice.token));
    assert_eq!(app.send("GET", "/devices", doubled).await.status, 401);
    let lower = app
        .client
        .get(app.url("/devices"))
        .header("authorization", format!("bearer {}", alice.token));
    assert_eq!(
        app.send("GET", "/devices", lower).await.status,
        200,
        "the scheme is case-insensitive"
    );
});

backend_test!(a_revoked_token_changes_nothing, |app| {
    // On PostgreSQL each write is one statement whose session check guards
    // every change it makes: none of them may slip past a revoked session.
    let laptop = app.login("alice", "Laptop", Some("fp-laptop")).await;
    let phone = app.login("alice", "Phone", Some("fp-phone")).await;
    let stolen = app.login("alice", "Old phone", Some("fp-old")).await;
    let revoked = app
        .post(
            &format!("/sessions/{}/revoke", stolen.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(revoked.status, 200);
    let events_before = app.events(&laptop.token).await;

    let device = format!("/devices/{}", phone.device_id);
    let attempts = [
        (
            Method::POST,
            format!("/sessions/{}/revoke", phone.session_id),
            None,
        ),
        (Method::POST, "/sessions/revoke-all".to_owned(), None),
        (Method::POST, "/sessions/revoke-others".to_owned(), None),
        (
            Method::POST,
            format!("/sessions/{}/heartbeat", phone.session_id),
            None,
        ),
        (
            Method::POST,
            "/devices/trust".to_owned(),
            Some(serde_json::json!({"fingerprint": "fp-phone"})),
        ),
        (Method::POST, format!("{device}/untrust"), None),
        (
            Method::PATCH,
            device.clone(),
            Some(serde_json::json!({"deviceName": "Stolen"})),
        ),
        (Method::DELETE, device.clone(), None),
    ];
    for (method, path, body) in attempts {
        let response = app
            .call(method.clone(), &path, Some(&stolen.token), body)
            .await;
        assert_eq!(response.status, 401, "{method} {path}");
    }

    let sessions = app.get("/sessions", &laptop.token).await;
    assert_eq!(sessions.status, 200);
    assert_eq!(sessions.body["sessions"].as_array().unwrap().len(), 2);
    let details = app.get(&device, &phone.token).await;
    assert_eq!(details.status, 200);
    assert_eq!(details.body["device"]["deviceName"], "Phone");
    assert_eq!(details.body["device"]["isTrusted"], false);
    assert_eq!(
        details.body["device"]["sessions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(app.events(&laptop.token).await, events_before);
});
