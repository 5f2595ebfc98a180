//! The `sessions` operations.

use std::time::Duration;

use crate::{backend_test, helpers::*};

fn ids(body: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

backend_test!(
    list_sessions_shows_only_the_callers_active_sessions,
    |app| {
        let alice = Scenario::new(&app, "alice")
            .laptop()
            .phone()
            .phone()
            .expired_tablet()
            .build()
            .await;
        let (laptop, phone, expired) = (alice.laptop(), alice.phone(), alice.tablet());
        let revoked = alice.session(Device::Phone, 1);
        app.login("bob", "Laptop", None).await;
        assert_eq!(
            app.post(
                &format!("/sessions/{}/revoke", revoked.session_id),
                &laptop.token
            )
            .await
            .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(20)).await;

        let response = app.get("/sessions", &laptop.token).await;
        assert_eq!(response.status, 200);
        let mut expected = vec![laptop.session_id.clone(), phone.session_id.clone()];
        expected.sort();
        assert_eq!(ids(&response.body), expected);
        assert!(!ids(&response.body).contains(&expired.session_id));
        let phone_entry = response.body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == phone.session_id.as_str())
            .unwrap();
        assert_eq!(phone_entry["deviceName"], "Phone");
        assert_eq!(phone_entry["ipAddress"], "192.0.2.1");
    }
);

backend_test!(revoke_session_ends_it_at_once, |app| {
    let alice = Scenario::new(&app, "alice").laptop().phone().build().await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let response = app
        .post(
            &format!("/sessions/{}/revoke", phone.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, message_body("Session revoked successfully"));
    assert_eq!(app.get("/sessions", &phone.token).await.status, 401);
    assert_eq!(app.get("/sessions", &laptop.token).await.status, 200);
    // A revoked session is not found any more.
    let again = app
        .post(
            &format!("/sessions/{}/revoke", phone.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body, error_body("Session not found"));
});

backend_test!(revoke_session_of_another_user_is_404, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    for id in [bob.session_id.as_str(), "missing"] {
        let response = app
            .post(&format!("/sessions/{id}/revoke"), &alice.token)
            .await;
        assert_eq!(response.status, 404);
        assert_eq!(response.body, error_body("Session not found"));
    }
    assert_eq!(app.get("/sessions", &bob.token).await.status, 200);
    let bad = app
        .post("/sessions/not%20an%20id/revoke", &alice.token)
        .await;
    assert_eq!(bad.status, 400);
});

backend_test!(revoke_all_ends_every_session_of_the_caller_only, |app| {
    let alice = Scenario::new(&app, "alice").laptop().phone().build().await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let bob = app.login("bob", "Laptop", None).await;
    let response = app.post("/sessions/revoke-all", &laptop.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        message_body("All sessions revoked successfully")
    );
    assert_eq!(app.get("/sessions", &laptop.token).await.status, 401);
    assert_eq!(app.get("/sessions", &phone.token).await.status, 401);
    assert_eq!(app.get("/sessions", &bob.token).await.status, 200);
});

backend_test!(heartbeat_extends_an_active_session, |app| {
    let laptop = app
        .login_with("alice", "Laptop", None, Duration::from_secs(60), false)
        .await;
    let response = app
        .post(
            &format!("/sessions/{}/heartbeat", laptop.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["success"], true);
    assert_eq!(response.body["message"], "Session updated successfully");
    let new_expiry = timestamp(&response.body["newExpiry"]);
    let hours = (new_expiry - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.1).contains(&hours), "extension is {hours} h");
    let listed = app.get("/sessions", &laptop.token).await;
    assert_eq!(
        listed.body["sessions"][0]["expiresAt"],
        response.body["newExpiry"]
    );
});

backend_test!(
    heartbeat_of_revoked_expired_or_foreign_session_is_404,
    |app| {
        let alice = Scenario::new(&app, "alice")
            .laptop()
            .phone()
            .expired_tablet()
            .build()
            .await;
        let (laptop, revoked, expired) = (alice.laptop(), alice.phone(), alice.tablet());
        let bob = app.login("bob", "Laptop", None).await;
        app.post(
            &format!("/sessions/{}/revoke", revoked.session_id),
            &laptop.token,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        for id in [&revoked.session_id, &expired.session_id, &bob.session_id] {
            let response = app
                .post(&format!("/sessions/{id}/heartbeat"), &laptop.token)
                .await;
            assert_eq!(response.status, 404, "{id}");
            assert_eq!(response.body, error_body("Session not found or expired"));
        }
        // The expired session stays expired: the heartbeat did not revive it.
        assert_eq!(app.get("/sessions", &expired.token).await.status, 401);
    }
);

backend_test!(an_expired_session_token_is_refused, |app| {
    let short = app
        .login_with("alice", "Laptop", None, Duration::from_secs(1), false)
        .await;
    assert_eq!(app.get("/sessions", &short.token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app.get("/sessions", &short.token).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
});

backend_test!(
    listed_sessions_mark_the_callers_own_and_name_their_device,
    |app| {
        let alice = Scenario::new(&app, "alice")
            .laptop()
            .laptop()
            .phone()
            .build()
            .await;
        let (laptop, phone) = (alice.laptop(), alice.phone());
        let second = alice.session(Device::Laptop, 1);
        for (caller, own) in [(laptop, laptop), (second, second), (phone, phone)] {
            let listed = app.get("/sessions", &caller.token).await;
            let sessions = listed.body["sessions"].as_array().unwrap();
            assert_eq!(sessions.len(), 3);
            for session in sessions {
                let is_own = session["id"] == own.session_id.as_str();
                assert_eq!(session["isCurrent"], is_own, "{session}");
            }
            let device_of = |session: &Login| {
                sessions
                    .iter()
                    .find(|s| s["id"] == session.session_id.as_str())
                    .unwrap()["deviceId"]
                    .clone()
            };
            assert_eq!(device_of(laptop), laptop.device_id.as_str());
            assert_eq!(device_of(second), laptop.device_id.as_str());
            assert_eq!(device_of(phone), phone.device_id.as_str());
        }
    }
);

backend_test!(get_current_session_is_this_session_on_this_device, |app| {
    let alice = Scenario::new(&app, "alice")
        .trusted_laptop()
        .phone()
        .build()
        .await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let response = app.get("/sessions/current", &phone.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["success"], true);
    let session = &response.body["session"];
    let device = &response.body["device"];
    // Exactly what the listings say about them.
    let listed = app.get("/sessions", &phone.token).await;
    let listed_session = listed.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == phone.session_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(session, &listed_session);
    assert_eq!(session["isCurrent"], true);
    assert_eq!(session["deviceId"], phone.device_id.as_str());
    assert_eq!(session["deviceName"], "Phone");
    let devices = app.get("/devices", &phone.token).await;
    let listed_device = devices.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == phone.device_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(device, &listed_device);
    assert_eq!(device["isCurrent"], true);
    assert_eq!(device["isTrusted"], false);
    // The laptop's token sees the laptop, trusted.
    let other = app.get("/sessions/current", &laptop.token).await;
    assert_eq!(other.body["session"]["id"], laptop.session_id.as_str());
    assert_eq!(other.body["device"]["id"], laptop.device_id.as_str());
    assert_eq!(other.body["device"]["isTrusted"], true);
    assert_eq!(other.body["device"]["trustLevel"], "HIGH");

    // Revoked: refused like every operation.
    app.post(
        &format!("/sessions/{}/revoke", phone.session_id),
        &laptop.token,
    )
    .await;
    let refused = app.get("/sessions/current", &phone.token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, error_body("Session is no longer active"));
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
});

backend_test!(get_current_session_refuses_an_expired_session, |app| {
    let short = app
        .login_with("alice", "Laptop", None, Duration::from_secs(1), false)
        .await;
    assert_eq!(app.get("/sessions/current", &short.token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = app.get("/sessions/current", &short.token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, error_body("Session is no longer active"));
});
