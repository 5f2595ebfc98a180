//! Attacks on the edges: rate limits, CORS, headers, pool exhaustion, token
//! policies (issuer/audience, public keys, algorithm confusion, nbf) and the
//! secrecy of tokens in logs.

use std::time::Duration;

use flashback_devices::{
    auth::TokenKeys, db::PoolSettings, middleware::RateLimitSettings, startup::ServerOptions,
};
use reqwest::Method;
use serde_json::json;

use crate::{backend_test, helpers::*};

const PUBLIC_PEM: &str = include_str!("../fixtures/ed25519-public.pem");
const PRIVATE_PEM: &str = include_str!("../fixtures/ed25519-private.pem");

fn hs256(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn spawn_rate_limited(per_second: u32, burst: u32) -> TestApp {
    let options = ServerOptions {
        rate_limit: RateLimitSettings::new(per_second, burst),
        ..ServerOptions::local()
    };
    TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await
}

#[tokio::test]
async fn rate_limit_is_per_user_with_retry_after_and_json() {
    let app = spawn_rate_limited(1, 3).await;
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    for _ in 0..3 {
        assert_eq!(app.get("/devices", &alice.token).await.status, 200);
    }
    let limited = app.get("/devices", &alice.token).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["success"], false);
    assert!(limited.body["error"]
        .as_str()
        .unwrap()
        .starts_with("Too many requests"));
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    // A limited request changes nothing: untrust is refused, the device stays.
    let refused = app
        .post(
            &format!("/devices/{}/untrust", alice.device_id),
            &alice.token,
        )
        .await;
    assert_eq!(refused.status, 429);
    // Another user has an allowance of their own.
    assert_eq!(app.get("/devices", &bob.token).await.status, 200);
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(
            app.call(Method::GET, "/healthz", None, None).await.status,
            200
        );
    }
    // After the wait, Alice may go on, and her device was never untrusted.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let after = app
        .get(&format!("/devices/{}", alice.device_id), &alice.token)
        .await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.body["device"]["sessions"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn rate_limit_keys_unauthenticated_clients_by_address_and_ignores_forged_subjects() {
    let app = spawn_rate_limited(1, 2).await;
    let alice = app.login("alice", "Laptop", None).await;
    // Tokens with forged signatures do not get a per-user allowance of their own.
    for i in 0..2 {
        let forged = hs256(
            json!({"sub": format!("user-{i}"), "sid": "x", "iat": 0, "exp": 4_000_000_000u64}),
            b"wrong-secret-wrong-secret-wrong-secret",
        );
        assert_eq!(
            app.call(Method::GET, "/devices", Some(&forged), None)
                .await
                .status,
            401
        );
    }
    let forged = hs256(
        json!({"sub": "user-9", "sid": "x", "iat": 0, "exp": 4_000_000_000u64}),
        b"wrong-secret-wrong-secret-wrong-secret",
    );
    assert_eq!(
        app.call(Method::GET, "/devices", Some(&forged), None)
            .await
            .status,
        429
    );
    assert_eq!(
        app.call(Method::GET, "/devices", None, None).await.status,
        429
    );
    // A validly signed token counts against its user, not the address.
    assert_eq!(app.get("/devices", &alice.token).await.status, 200);
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", None).await;
    let request = app
        .client
        .get(app.url("/devices"))
        .bearer_auth(&alice.token)
        .header("origin", "https://app.example");
    let response = app.send("GET", "/devices", request).await;
    assert_eq!(response.status, 200);
    assert!(response.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let options = ServerOptions {
        cors_allowed_origins: vec!["https://app.example".into()],
        ..ServerOptions::local()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await;
    let alice = app.login("alice", "Laptop", None).await;
    let preflight = |origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/devices/x/untrust"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
    };
    let allowed = into_test_response(preflight("https://app.example").send().await.unwrap()).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(allowed
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let allowed_headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );

    let refused = into_test_response(preflight("https://evil.example").send().await.unwrap()).await;
    assert!((400..500).contains(&refused.status), "{}", refused.status);
    assert!(refused.header("access-control-allow-origin").is_none());
    assert!(
        refused.header("x-request-id").is_some(),
        "refusals carry an id"
    );
    assert_eq!(
        refused.body["success"], false,
        "refusals keep the JSON shape: {}",
        refused.body
    );

    let simple = app
        .client
        .get(app.url("/devices"))
        .bearer_auth(&alice.token)
        .header("origin", "https://app.example");
    let simple = app.send("GET", "/devices", simple).await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // A page may read the id of the answer it got, to report it.
    let exposed = simple
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    let foreign = app
        .client
        .get(app.url("/devices"))
        .bearer_auth(&alice.token)
        .header("origin", "https://evil.example");
    // A simple request is answered, but without the header the browser
    // needs to let a page on that origin read the answer.
    let foreign = app.send("GET", "/devices", foreign).await;
    assert!(foreign.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn security_headers_are_set() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let api = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(api.header("x-frame-options"), Some("DENY"));
    assert_eq!(api.header("cache-control"), Some("no-store"));
    assert!(api
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
    let docs = app
        .client
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .unwrap();
    let policy = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
}

backend_test!(an_exhausted_pool_answers_503_instead_of_hanging, |app| {
    let _ = &app;
    let setup = Setup {
        pool: PoolSettings {
            max_size: 1,
            acquire_timeout: Duration::from_millis(200),
        },
        ..Setup::default()
    };
    let app = TestApp::spawn_with(app.backend, setup).await;
    let alice = app.login("alice", "Laptop", None).await;
    // Hold the only connection for longer than the request may wait.
    let db = app.db.clone();
    let holder = tokio::task::spawn_blocking(move || {
        db.run_blocking(|_conn| {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        })
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (method, path) in [
        (Method::GET, "/devices".to_owned()),
        (
            Method::POST,
            format!("/devices/{}/untrust", alice.device_id),
        ),
    ] {
        let response = app
            .call(method.clone(), &path, Some(&alice.token), None)
            .await;
        if method == Method::GET && app.backend == Backend::Sqlite {
            // A SQLite read runs on the worker's own connection, not a pooled one.
            assert_eq!(response.status, 200, "{path}: {}", response.body);
            continue;
        }
        assert_eq!(response.status, 503, "{path}: {}", response.body);
        assert_eq!(response.body, error_body("Service temporarily unavailable"));
    }
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body, error_body("Database unavailable"));
    holder.await.unwrap().unwrap();
    // Once the connection is free again, all is well and nothing was untrusted.
    let device = app
        .get(&format!("/devices/{}", alice.device_id), &alice.token)
        .await;
    assert_eq!(device.status, 200);
    assert_eq!(
        device.body["device"]["sessions"].as_array().unwrap().len(),
        1
    );
});

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let tokens = TokenKeys::hs256(TEST_SECRET.as_bytes())
        .unwrap()
        .with_issuer_and_audience(Some("https://id.example".into()), Some("flashback".into()));
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_tokens(tokens)).await;
    let alice = app.login("alice", "Laptop", None).await;
    assert_eq!(
        app.get("/devices", &alice.token).await.status,
        200,
        "iss and aud set by the signer"
    );
    let now = chrono::Utc::now().timestamp();
    let base = json!({"sub": "alice", "sid": alice.session_id, "iat": now, "exp": now + 60});
    let mut cases = Vec::new();
    cases.push(("no iss, no aud", base.clone()));
    let mut wrong_iss = base.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    wrong_iss["aud"] = json!("flashback");
    cases.push(("wrong iss", wrong_iss));
    let mut wrong_aud = base.clone();
    wrong_aud["iss"] = json!("https://id.example");
    wrong_aud["aud"] = json!("other");
    cases.push(("wrong aud", wrong_aud));
    for (name, claims) in cases {
        let token = hs256(claims, TEST_SECRET.as_bytes());
        let response = app.call(Method::GET, "/devices", Some(&token), None).await;
        assert_eq!(response.status, 401, "{name}");
    }
}

#[tokio::test]
async fn public_key_mode_refuses_hs256_and_algorithm_confusion() {
    let tokens =
        TokenKeys::public_key(PUBLIC_PEM.as_bytes(), Some(PRIVATE_PEM.as_bytes())).unwrap();
    assert_eq!(tokens.algorithm(), jsonwebtoken::Algorithm::EdDSA);
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_tokens(tokens)).await;
    let alice = app.login("alice", "Laptop", None).await;
    assert_eq!(
        app.get("/devices", &alice.token).await.status,
        200,
        "EdDSA token from the private key"
    );
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": "alice", "sid": alice.session_id, "iat": now, "exp": now + 60});
    for (name, secret) in [
        (
            "HS256 signed with the public key text",
            PUBLIC_PEM.as_bytes(),
        ),
        ("HS256 with a shared secret", TEST_SECRET.as_bytes()),
    ] {
        let token = hs256(claims.clone(), secret);
        let response = app.call(Method::GET, "/devices", Some(&token), None).await;
        assert_eq!(response.status, 401, "{name}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let verify_only = TokenKeys::public_key(PUBLIC_PEM.as_bytes(), None).unwrap();
    assert!(
        verify_only.sign("alice", "s", chrono::Utc::now()).is_err(),
        "no private key, no signing"
    );
}

backend_test!(a_token_not_yet_valid_is_refused, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let now = chrono::Utc::now().timestamp();
    let early = hs256(
        json!({"sub": "alice", "sid": alice.session_id, "iat": now, "nbf": now + 120, "exp": now + 600}),
        TEST_SECRET.as_bytes(),
    );
    assert_eq!(
        app.call(Method::GET, "/devices", Some(&early), None)
            .await
            .status,
        401
    );
    let within_leeway = hs256(
        json!({"sub": "alice", "sid": alice.session_id, "iat": now, "nbf": now + 2, "exp": now + 600}),
        TEST_SECRET.as_bytes(),
    );
    assert_eq!(
        app.call(Method::GET, "/devices", Some(&within_leeway), None)
            .await
            .status,
        200
    );
    let expired_beyond_leeway = hs256(
        json!({"sub": "alice", "sid": alice.session_id, "iat": now - 60, "exp": now - 10}),
        TEST_SECRET.as_bytes(),
    );
    assert_eq!(
        app.call(Method::GET, "/devices", Some(&expired_beyond_leeway), None)
            .await
            .status,
        401
    );
});

/// Requests whose head actix-http's parser refuses never reach the app; they
/// still get a 4xx (with an empty body), and the server goes on serving.
#[tokio::test]
async fn oversized_or_malformed_request_heads_get_a_4xx() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: 1\r\n")).collect();
    let heads = [
        format!(
            "GET /devices?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "q".repeat(100_000)
        ),
        format!("GET /devices HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
        "GARBAGE\r\n\r\n".to_owned(),
        "GET /devices HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_owned(),
    ];
    for head in heads {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let status_line = String::from_utf8_lossy(&answer[..read])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{}: {status_line}",
            &head[..head.len().min(40)]
        );
    }
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        200
    );
}

backend_test!(a_revoked_token_cannot_spend_its_users_allowance, |app| {
    // The rate limit of `spawn_rate_limited`, on this backend.
    let options = ServerOptions {
        rate_limit: RateLimitSettings::new(1, 5),
        ..ServerOptions::local()
    };
    let base = app.another_server_with(options).await;
    let stolen = app.login("alice", "Old phone", None).await;
    let live = app.login("alice", "Laptop", None).await;
    let client = reqwest::Client::new();
    let get = |token: &str| {
        client
            .get(format!("{base}/devices"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(get(&live.token).await.unwrap().status(), 200);
    let revoked = client
        .post(format!("{base}/sessions/{}/revoke", stolen.session_id))
        .bearer_auth(&live.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // Whoever holds the revoked token hammers the API: refused (401, then
    // 429 once its address is over the allowance) ...
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(get(&stolen.token).await.unwrap().status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the address is limited: {statuses:?}"
    );
    // ... and the real user is not locked out, here nor on revoke-all.
    assert_eq!(get(&live.token).await.unwrap().status(), 200);
    let revoke_all = client
        .post(format!("{base}/sessions/revoke-all"))
        .bearer_auth(&live.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke_all.status(), 200);
});

#[tokio::test]
async fn a_user_over_the_limit_gets_429_with_retry_after_and_nothing_changes() {
    let app = spawn_rate_limited(1, 2).await;
    let signed = Scenario::new(&app, "alice").laptop().phone().build().await;
    let (alice, phone) = (signed.laptop(), signed.phone());
    for _ in 0..2 {
        assert_eq!(app.get("/devices", &alice.token).await.status, 200);
    }
    let limited = app
        .post(
            &format!("/devices/{}/untrust", phone.device_id),
            &alice.token,
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    // The phone's session was not revoked by the refused untrust.
    assert_eq!(app.get("/devices", &phone.token).await.status, 200);
}

#[tokio::test]
async fn ipv6_clients_share_an_allowance_per_64() {
    let options = ServerOptions {
        rate_limit: RateLimitSettings::new(1, 2),
        trusted_proxies: flashback_devices::client_addr::TrustedProxies::parse("127.0.0.1")
            .unwrap(),
        ..ServerOptions::local()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await;
    let from = |address: &'static str| {
        app.client
            .get(app.url("/devices"))
            .header("X-Forwarded-For", address)
            .send()
    };
    for address in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
        assert_eq!(from(address).await.unwrap().status(), 401);
    }
    // A third address of the same /64 is the same client ...
    assert_eq!(from("2001:db8:1:2:ffff::3").await.unwrap().status(), 429);
    // ... another /64 is another client.
    assert_eq!(from("2001:db8:1:3::1").await.unwrap().status(), 401);
}

backend_test!(critical_headers_and_future_iat_are_refused, |app| {
    let login = app.login("alice", "Laptop", None).await;
    let claims = app.tokens.verify(&login.token).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |header: jsonwebtoken::Header, iat: i64| {
        jsonwebtoken::encode(
            &header,
            &json!({"sub": claims.sub, "sid": claims.sid, "iat": iat, "exp": now + 600}),
            &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .unwrap()
    };
    // The control: the same claims, signed the same way, are accepted.
    let plain = sign(jsonwebtoken::Header::default(), now);
    assert_eq!(app.get("/devices", &plain).await.status, 200);
    let critical = jsonwebtoken::Header {
        crit: Some(vec!["exp".into()]),
        ..Default::default()
    };
    assert_eq!(app.get("/devices", &sign(critical, now)).await.status, 401);
    let far = sign(jsonwebtoken::Header::default(), 4_102_444_800); // 2100-01-01
    assert_eq!(app.get("/devices", &far).await.status, 401);
    // Within the leeway, a clock a little ahead is tolerated.
    let ahead = sign(jsonwebtoken::Header::default(), now + 2);
    assert_eq!(app.get("/devices", &ahead).await.status, 200);
});

backend_test!(
    a_signed_token_over_the_length_cap_is_refused_and_one_at_it_accepted,
    |app| {
        let login = app.login("alice", "Laptop", None).await;
        let claims = app.tokens.verify(&login.token).unwrap();
        let sign = |kid: usize, padding: usize| {
            let header = jsonwebtoken::Header {
                kid: (kid > 0).then(|| "k".repeat(kid)),
                ..Default::default()
            };
            jsonwebtoken::encode(
                &header,
                &json!({"sub": claims.sub, "sid": claims.sid, "iat": claims.iat,
                    "exp": claims.exp, "pad": "x".repeat(padding)}),
                &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            )
            .unwrap()
        };
        let cap = flashback_devices::auth::MAX_TOKEN_LEN;
        // base64 grows in steps of one or two characters: vary two fields
        // until the token is exactly as long as wanted.
        let of_length = |length: usize| {
            (1..4)
                .flat_map(|kid| (2000..3100).map(move |padding| (kid, padding)))
                .map(|(kid, padding)| sign(kid, padding))
                .find(|token| token.len() == length)
                .unwrap_or_else(|| panic!("no token of {length} bytes"))
        };
        let at_cap = of_length(cap);
        assert_eq!(app.get("/devices", &at_cap).await.status, 200);
        let over = of_length(cap + 1);
        assert_eq!(app.get("/devices", &over).await.status, 401);
    }
);

#[tokio::test]
async fn requests_refused_before_the_session_check_are_charged_to_the_address() {
    // A valid token and a bad body: the handler never runs, so no session
    // check charges the request; the address pays, and past its allowance
    // the answer is 429.
    let app = spawn_rate_limited(1, 2).await;
    let alice = app.login("alice", "Laptop", None).await;
    for _ in 0..2 {
        let refused = app
            .post_json("/devices/trust", &alice.token, json!({}))
            .await;
        assert_eq!(refused.status, 400);
    }
    let limited = app
        .post_json("/devices/trust", &alice.token, json!({}))
        .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
}

backend_test!(
    over_the_allowance_a_write_changes_nothing_and_a_revoked_token_spends_none_of_it,
    |app| {
        // On PostgreSQL a charged write checks the session on its own first,
        // then runs as one statement: both halves are guarded here.
        let options = ServerOptions {
            rate_limit: RateLimitSettings::new(1, 3),
            ..ServerOptions::local()
        };
        let base = app.another_server_with(options).await;
        let stolen = app.login("alice", "Old phone", None).await;
        let live = app.login("alice", "Laptop", None).await;
        let revoked = app
            .post(
                &format!("/sessions/{}/revoke", stolen.session_id),
                &live.token,
            )
            .await;
        assert_eq!(revoked.status, 200);
        let client = reqwest::Client::new();
        let post = |path: String, token: &str| {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(token.to_owned())
                .send()
        };
        let untrust_laptop = format!("/devices/{}/untrust", live.device_id);
        let beat_laptop = format!("/sessions/{}/heartbeat", live.session_id);
        for _ in 0..6 {
            for path in [&untrust_laptop, &beat_laptop] {
                let status = post(path.clone(), &stolen.token).await.unwrap().status();
                assert!(status == 401 || status == 429, "{path}: {status}");
            }
        }
        // The revoked token spent none of Alice's allowance: her burst of 3
        // is whole.
        for _ in 0..3 {
            let beat = post(beat_laptop.clone(), &live.token).await.unwrap();
            assert_eq!(beat.status(), 200);
        }
        // Over it, the untrust is refused before it changes anything.
        let limited = post(untrust_laptop.clone(), &live.token).await.unwrap();
        assert_eq!(limited.status(), 429);
        let laptop = app
            .get(&format!("/devices/{}", live.device_id), &live.token)
            .await;
        assert_eq!(laptop.status, 200);
        assert_eq!(
            laptop.body["device"]["sessions"].as_array().unwrap().len(),
            1,
            "the laptop's session is still active"
        );
    }
);

backend_test!(
    a_revoked_tokens_untrust_and_heartbeat_change_nothing,
    |app| {
        // On PostgreSQL each is one statement whose session check must guard
        // every change in it, not only the answer.
        let stolen = app.login("alice", "Old phone", None).await;
        let live = app.login("alice", "Laptop", None).await;
        let revoked = app
            .post(
                &format!("/sessions/{}/revoke", stolen.session_id),
                &live.token,
            )
            .await;
        assert_eq!(revoked.status, 200);
        let before = app.get("/sessions", &live.token).await;
        let untrust = app
            .post(
                &format!("/devices/{}/untrust", live.device_id),
                &stolen.token,
            )
            .await;
        assert_eq!(untrust.status, 401);
        let beat = app
            .post(
                &format!("/sessions/{}/heartbeat", live.session_id),
                &stolen.token,
            )
            .await;
        assert_eq!(beat.status, 401);
        let after = app.get("/sessions", &live.token).await;
        assert_eq!(after.status, 200, "the laptop's session is still active");
        assert_eq!(
            before.body["sessions"], after.body["sessions"],
            "no activity was recorded"
        );
        let events = app.get("/security-events", &live.token).await;
        assert!(
            events.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|event| event["type"] != "DEVICE_UNTRUSTED"),
            "{}",
            events.body
        );
    }
);
