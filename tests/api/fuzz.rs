//! Thousands of random and hostile requests: no 5xx, no panic, every
//! failure in the JSON shape, and the server still answers afterwards.
//! `FUZZ_REQUESTS` (default 2000) and `FUZZ_SEED` tune a run.

use flashback_devices::api::types::OPERATIONS;
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::Method;

use crate::helpers::*;

const HOSTILE_SEGMENTS: &[&str] = &[
    "",
    "..",
    "%2e%2e",
    "%00",
    "%ff",
    "'%20OR%201=1--",
    "%3Cscript%3E",
    "%E2%80%AE",
    "null",
    "-1",
    "0",
    "9999999999999999999999",
    "%25",
    "a%2Fb",
    "%C0%AF",
    "trust",
    "revoke-all",
    "{id}",
    "%7Bid%7D",
    "_",
    "-",
];

fn random_segment(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 => HOSTILE_SEGMENTS[rng.random_range(0..HOSTILE_SEGMENTS.len())].to_owned(),
        1 => "a".repeat(rng.random_range(60..300)),
        2 => (0..rng.random_range(1..20))
            .map(|_| format!("%{:02X}", rng.random::<u8>()))
            .collect(),
        3 => uuid::Uuid::new_v4().to_string(),
        _ => (0..rng.random_range(1..12))
            .map(|_| rng.random_range(b'0'..=b'z') as char)
            .filter(|c| c.is_ascii_alphanumeric())
            .collect(),
    }
}

fn random_path(rng: &mut StdRng) -> String {
    // Every path of the spec, with each parameter a random segment, and a
    // few shapes outside it.
    let templates: Vec<String> = OPERATIONS
        .iter()
        .map(|operation| {
            operation
                .path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "{}"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .chain(["/{}", "/{}/{}", "/devices/{}/{}"].map(String::from))
        .collect();
    let mut path = templates[rng.random_range(0..templates.len())].to_owned();
    while path.contains("{}") {
        path = path.replacen("{}", &random_segment(rng), 1);
    }
    if rng.random_bool(0.2) {
        path.push_str(&format!("?{}={}", random_segment(rng), random_segment(rng)));
    }
    path
}

fn random_body(rng: &mut StdRng) -> Option<(String, Vec<u8>)> {
    let json = "application/json".to_owned();
    match rng.random_range(0..9) {
        0 => None,
        1 => Some((json, br#"{"fingerprint":"fp"}"#.to_vec())),
        2 => Some((
            json,
            format!(r#"{{"fingerprint":{}}}"#, rng.random::<i64>()).into_bytes(),
        )),
        3 => Some((
            json,
            (0..rng.random_range(1..200))
                .map(|_| rng.random::<u8>())
                .collect(),
        )),
        4 => Some((
            json,
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        )),
        5 => Some((
            json,
            format!(
                r#"{{"fingerprint":"{}"}}"#,
                "x".repeat(rng.random_range(200..9000))
            )
            .into_bytes(),
        )),
        6 => Some(("text/plain".into(), b"fingerprint=fp".to_vec())),
        7 => Some((
            json,
            br#"{"fingerprint":"fp","fingerprint":"dup","x":{"y":[1,2,{"z":null}]}}"#.to_vec(),
        )),
        _ => Some((
            "application/json; charset=utf-16".into(),
            br#"{"fingerprint":"fp"}"#.to_vec(),
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_never_get_a_5xx() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let requests: usize = std::env::var("FUZZ_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz: {requests} requests, FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let methods = [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PUT,
        Method::PATCH,
        Method::OPTIONS,
        Method::HEAD,
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..requests {
        // A fresh valid session now and then, since some requests revoke theirs.
        let login = if i % 50 == 0 || rng.random_bool(0.02) {
            Some(app.login("fuzz", "Fuzz device", Some("fp")).await)
        } else {
            None
        };
        let token = match login {
            Some(login) => login.token,
            None => app.login_cached().await,
        };
        let method = methods[rng.random_range(0..methods.len())].clone();
        let path = random_path(&mut rng);
        let mut request = app.client.request(method.clone(), app.url(&path));
        match rng.random_range(0..6) {
            0 => {}
            1 => {
                request = request.header(
                    "authorization",
                    format!("Bearer {}", "A".repeat(rng.random_range(1..6000))),
                )
            }
            2 => request = request.header("authorization", random_segment(&mut rng)),
            _ => request = request.bearer_auth(&token),
        }
        if rng.random_bool(0.1) {
            request = request.header("x-junk", "v".repeat(rng.random_range(1..8000)));
        }
        if let Some((content_type, body)) = random_body(&mut rng) {
            request = request.header("content-type", content_type).body(body);
        }
        let Ok(response) = request.send().await else {
            panic!("request {i} ({method} {path}) got no answer (FUZZ_SEED={seed})");
        };
        let response = into_test_response(response).await;
        *statuses.entry(response.status).or_insert(0) += 1;
        assert!(
            response.status < 500,
            "{method} {path} -> {} {} (FUZZ_SEED={seed})",
            response.status,
            response.body
        );
        if response.status >= 400 && method != Method::HEAD {
            assert_eq!(
                response.body["success"], false,
                "{method} {path} -> {} {} (FUZZ_SEED={seed})",
                response.status, response.body
            );
            assert!(response.body["error"].is_string());
        }
    }
    eprintln!("fuzz: statuses {statuses:?}");
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        200
    );
    let fresh = app.login("fuzz", "After", None).await;
    assert_eq!(app.get("/devices", &fresh.token).await.status, 200);
}
