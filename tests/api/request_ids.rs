//! `X-Request-Id`: every answer carries one, from whichever layer it comes;
//! the caller's own when it is well formed, else a new one.

use reqwest::Method;

use crate::helpers::*;

const PATTERN_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

fn is_well_formed(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| PATTERN_CHARS.contains(c))
}

async fn answer_id(
    app: &TestApp,
    method: Method,
    path: &str,
    sent: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(sent) = sent {
        request = request.header("X-Request-Id", sent);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{path}: no X-Request-Id in a {status}"))
        .to_str()
        .unwrap()
        .to_owned();
    (status, id)
}

#[tokio::test]
async fn a_well_formed_client_id_comes_back_from_every_layer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", None).await;
    let client_id = "req-1.A_b";
    let max_len = "x".repeat(64);
    let token = Some(alice.token.as_str());
    for (method, path, sent, token, expected_status) in [
        (Method::GET, "/healthz", client_id, None, 200),
        (Method::GET, "/devices", client_id, token, 200),
        (Method::GET, "/devices", client_id, None, 401),
        (Method::GET, "/devices/bad%20id", client_id, token, 400),
        (
            Method::GET,
            "/devices/no-such-device",
            client_id,
            token,
            404,
        ),
        (Method::GET, "/nowhere", client_id, None, 404),
        (Method::PUT, "/devices", client_id, None, 405),
        (Method::GET, "/api-docs/openapi.json", client_id, None, 200),
        (Method::GET, "/healthz", max_len.as_str(), None, 200),
    ] {
        let (status, id) = answer_id(&app, method.clone(), path, Some(sent), token).await;
        assert_eq!(status, expected_status, "{method} {path}");
        assert_eq!(id, sent, "{method} {path}");
    }
}

#[tokio::test]
async fn a_malformed_or_missing_client_id_is_replaced_by_a_new_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let too_long = "x".repeat(65);
    for sent in [
        Some(""),
        Some("has space"),
        Some("a/b"),
        Some("é"),
        Some(too_long.as_str()),
        None,
    ] {
        let (status, id) = answer_id(&app, Method::GET, "/healthz", sent, None).await;
        assert_eq!(status, 200);
        assert!(is_well_formed(&id), "{sent:?} gave {id:?}");
        assert_ne!(Some(id.as_str()), sent);
    }
    let (_, first) = answer_id(&app, Method::GET, "/healthz", None, None).await;
    let (_, second) = answer_id(&app, Method::GET, "/healthz", None, None).await;
    assert_ne!(first, second, "each request gets its own id");
}
