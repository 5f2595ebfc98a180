//! The router and the spec agree: every operation is mounted, nothing else
//! is (besides the docs), and stray requests get the JSON error shape.

use flashback_devices::api::types::OPERATIONS;
use reqwest::Method;

use crate::helpers::*;

#[tokio::test]
async fn every_spec_operation_reaches_its_handler() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.service_key("routing").await;
    for operation in OPERATIONS {
        // A fresh session each time: revokeAllSessions ends the previous one.
        let alice = app.login("alice", "Laptop", Some("fp")).await;
        let path = operation
            .path
            .replace("{id}", "no-such-id")
            .replace("{userId}", "alice");
        let method = Method::from_bytes(operation.method.as_bytes()).unwrap();
        let body = match operation.operation_id {
            "trustDevice" => Some(serde_json::json!({"fingerprint": "nope"})),
            "renameDevice" => Some(serde_json::json!({"deviceName": "nope"})),
            "createSession" => Some(serde_json::json!({
                "userId": "alice",
                "device": {"fingerprint": "fp", "deviceName": "Laptop"}
            })),
            _ => None,
        };
        let platform = operation.path.starts_with("/platform/");
        let token = if platform { &key } else { &alice.token };
        // Checked against the spec: the status must be one the operation documents.
        let response = app.call(method, &path, Some(token), body).await;
        if operation.operation_id == "createSession" {
            assert_eq!(response.status, 201, "createSession: {}", response.body);
        } else if operation.path.contains("{id}") || operation.operation_id == "trustDevice" {
            assert_eq!(
                response.status, 404,
                "{}: {}",
                operation.operation_id, response.body
            );
            assert_ne!(
                response.body["error"], "Not found",
                "{} fell through to the router",
                operation.operation_id
            );
        } else {
            assert_eq!(
                response.status, 200,
                "{}: {}",
                operation.operation_id, response.body
            );
        }
    }
}

#[tokio::test]
async fn nothing_outside_the_spec_is_mounted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", None).await;
    let all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    for operation in OPERATIONS {
        let path = operation.path.replace("{id}", "x");
        // The methods the spec serves on this concrete path (a literal path
        // like /devices/trust is also an {id} of /devices/{id}).
        let documented: Vec<&str> = all_methods
            .into_iter()
            .filter(|m| crate::conformance::find_operation(m, &path).is_some())
            .collect();
        for method in all_methods {
            if documented.contains(&method) {
                continue;
            }
            let response = app
                .call_unchecked(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                    Some(&alice.token),
                    None,
                )
                .await;
            assert_eq!(
                response.status, 405,
                "{method} {path} is mounted but not in the spec"
            );
            assert_eq!(response.body, error_body("Method not allowed"));
            let mut allow: Vec<&str> = response.header("allow").unwrap().split(", ").collect();
            allow.sort();
            let mut expected = documented.clone();
            expected.sort();
            assert_eq!(allow, expected, "Allow of {path}");
        }
    }
    for path in [
        "/",
        "/admin",
        "/devices/x/y",
        "/sessions/x",
        "/api/devices",
        "/healthz/x",
    ] {
        let response = app
            .call_unchecked(Method::GET, path, Some(&alice.token), None)
            .await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.body, error_body("Not found"));
    }
}

#[tokio::test]
async fn docs_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let redirect = app.client.get(app.url("/swagger-ui")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/swagger-ui/");
    let page = app
        .client
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let config = fetch_text(
        app.client
            .get(app.url("/swagger-ui/swagger-initializer.js")),
    )
    .await;
    assert!(config.contains("/api-docs/openapi.json"), "{config}");
    let json = fetch_json(app.client.get(app.url("/api-docs/openapi.json"))).await;
    assert_eq!(&json, crate::conformance::spec());
    let yaml = fetch_text(app.client.get(app.url("/api-docs/openapi.yaml"))).await;
    assert_eq!(
        yaml,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
            .unwrap()
    );

    // The 3.0 edition: offered in the selector, served as JSON and as YAML.
    assert!(config.contains("/api-docs/openapi-3.0.json"), "{config}");
    let edition = fetch_json(app.client.get(app.url("/api-docs/openapi-3.0.json"))).await;
    assert_eq!(edition["openapi"], "3.0.3");
    assert_eq!(&edition, flashback_devices::docs::spec_3_0_json());
    let response = app
        .client
        .get(app.url("/api-docs/openapi-3.0.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let edition_yaml: serde_json::Value =
        yaml_serde::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(&edition_yaml, flashback_devices::docs::spec_3_0_json());
}

#[tokio::test]
async fn health_probes_need_no_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(
        health.body,
        serde_json::json!({"success": true, "status": "ok"})
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.body,
        serde_json::json!({"success": true, "status": "ready"})
    );
}

/// `/sessions/current` and `/sessions/revoke-others` are paths of their own,
/// never `/sessions/{id}/…` with that id, whatever the method.
#[tokio::test]
async fn concrete_session_paths_are_not_session_ids() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", None).await;
    let token = Some(alice.token.as_str());
    for (method, path, allow) in [
        (Method::POST, "/sessions/current", "GET"),
        (Method::DELETE, "/sessions/current", "GET"),
        (Method::GET, "/sessions/revoke-others", "POST"),
        (Method::POST, "/security-events", "GET"),
    ] {
        let response = app.call_unchecked(method.clone(), path, token, None).await;
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
    // One segment further they are ids of the templates, and unknown ones.
    for path in [
        "/sessions/current/revoke",
        "/sessions/revoke-others/heartbeat",
    ] {
        let response = app.call(Method::POST, path, token, None).await;
        assert_eq!(response.status, 404, "{path}");
        assert_ne!(response.body["error"], "Not found", "{path}");
    }
    // And the concrete ones reach their own handlers.
    let current = app.get("/sessions/current", &alice.token).await;
    assert_eq!(current.body["session"]["id"], alice.session_id.as_str());
    let others = app.post("/sessions/revoke-others", &alice.token).await;
    assert_eq!(others.body["revokedCount"], 0);
}

#[tokio::test]
async fn the_public_document_is_served_without_the_platform_operations() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .client
        .get(app.url("/api-docs/public.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(&served, flashback_devices::docs::public_spec_json());
    let paths = served["paths"].as_object().unwrap();
    assert!(paths.contains_key("/devices"));
    assert!(!paths.keys().any(|p| p.starts_with("/platform")));
}
