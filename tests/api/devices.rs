//! The `devices` operations, and untrust above all.

use reqwest::Method;
use serde_json::json;

use crate::{backend_test, helpers::*};

backend_test!(list_devices_returns_only_the_callers_devices, |app| {
    let alice = app.login("alice", "Alice laptop", Some("fp-a1")).await;
    app.login("alice", "Alice phone", Some("fp-a2")).await;
    app.login("bob", "Bob laptop", Some("fp-b1")).await;

    let response = app.get("/devices", &alice.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["success"], true);
    let mut names: Vec<&str> = response.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice laptop", "Alice phone"]);
    let laptop = &response.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == alice.device_id.as_str())
        .unwrap();
    assert_eq!(laptop["deviceType"], "DESKTOP");
    assert_eq!(laptop["isTrusted"], false);
    assert_eq!(laptop["trustLevel"], "UNKNOWN");
    assert_eq!(laptop["city"], "Lisbon");
    assert_eq!(laptop["country"], "Portugal");
    assert_eq!(laptop["trustExpiresAt"], serde_json::Value::Null);
});

backend_test!(get_device_returns_details_and_active_sessions_only, |app| {
    let first = app.login("alice", "Laptop", Some("fp-1")).await;
    let second = app.login("alice", "Laptop", Some("fp-1")).await;
    let third = app.login("alice", "Laptop", Some("fp-1")).await;
    assert_eq!(
        first.device_id, second.device_id,
        "same fingerprint, same device"
    );
    assert_eq!(
        app.post(
            &format!("/sessions/{}/revoke", third.session_id),
            &first.token
        )
        .await
        .status,
        200
    );

    let response = app
        .get(&format!("/devices/{}", first.device_id), &first.token)
        .await;
    assert_eq!(response.status, 200);
    let device = &response.body["device"];
    assert_eq!(device["id"], first.device_id.as_str());
    assert_eq!(device["deviceFingerprint"], "fp-1");
    assert_eq!(device["userAgent"], "test-agent");
    let mut session_ids: Vec<&str> = device["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    session_ids.sort();
    let mut expected = vec![first.session_id.as_str(), second.session_id.as_str()];
    expected.sort();
    assert_eq!(session_ids, expected);
    assert_eq!(device["sessions"][0]["location"], "Lisbon, Portugal");
    assert_eq!(device["sessions"][0]["loginMethod"], "password");
});

backend_test!(get_device_of_another_user_or_missing_is_404, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    for id in [bob.device_id.as_str(), "no-such-device"] {
        let response = app.get(&format!("/devices/{id}"), &alice.token).await;
        assert_eq!(response.status, 404);
        assert_eq!(response.body, error_body("Device not found"));
    }
});

backend_test!(
    malformed_device_ids_are_400_without_touching_anything,
    |app| {
        let alice = app.login("alice", "Laptop", None).await;
        let too_long = "a".repeat(65);
        for id in [
            "a%20b",
            "%27%20OR%201%3D1",
            too_long.as_str(),
            "%C3%A9t%C3%A9",
            "a.b",
        ] {
            for (method, path) in [
                (Method::GET, format!("/devices/{id}")),
                (Method::DELETE, format!("/devices/{id}")),
                (Method::POST, format!("/devices/{id}/untrust")),
            ] {
                let response = app
                    .call(method.clone(), &path, Some(&alice.token), None)
                    .await;
                assert_eq!(response.status, 400, "{method} {path}");
                assert_eq!(response.body["success"], false);
                assert!(
                    response.body["error"]
                        .as_str()
                        .unwrap()
                        .starts_with("Invalid path parameter"),
                    "{}",
                    response.body
                );
            }
        }
        assert_eq!(
            app.get("/devices", &alice.token).await.body["devices"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
);

backend_test!(untrust_revokes_every_session_of_the_device_at_once, |app| {
    // Two sessions on the laptop, one on the phone, all Alice's.
    let alice = Scenario::new(&app, "alice")
        .trusted_laptop()
        .laptop()
        .phone()
        .build()
        .await;
    let (laptop_a, phone) = (alice.laptop(), alice.phone());
    let laptop_b = alice.session(Device::Laptop, 1);
    let before = app
        .get(&format!("/devices/{}", laptop_a.device_id), &phone.token)
        .await;
    assert_eq!(before.body["device"]["isTrusted"], true);
    assert_eq!(
        before.body["device"]["sessions"].as_array().unwrap().len(),
        2
    );

    let response = app
        .post(
            &format!("/devices/{}/untrust", laptop_a.device_id),
            &phone.token,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, message_body("Device untrusted successfully"));

    // The laptop's tokens are refused on the very next request...
    for token in [&laptop_a.token, &laptop_b.token] {
        let refused = app.get("/devices", token).await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(refused.body["success"], false);
    }
    // ...while the phone still works and sees the laptop untrusted with no session.
    let after = app
        .get(&format!("/devices/{}", laptop_a.device_id), &phone.token)
        .await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["device"]["isTrusted"], false);
    assert_eq!(after.body["device"]["trustLevel"], "LOW");
    assert_eq!(
        after.body["device"]["trustExpiresAt"],
        serde_json::Value::Null
    );
    assert_eq!(after.body["device"]["sessions"], json!([]));
    let sessions = app.get("/sessions", &phone.token).await;
    let ids: Vec<&str> = sessions.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [phone.session_id.as_str()]);

    // Untrusting again is still a success.
    let again = app
        .post(
            &format!("/devices/{}/untrust", laptop_a.device_id),
            &phone.token,
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, message_body("Device untrusted successfully"));
});

backend_test!(
    untrusting_the_callers_own_device_ends_the_callers_session,
    |app| {
        let alice = app.login("alice", "Laptop", None).await;
        let response = app
            .post(
                &format!("/devices/{}/untrust", alice.device_id),
                &alice.token,
            )
            .await;
        assert_eq!(response.status, 200);
        assert_eq!(app.get("/devices", &alice.token).await.status, 401);
    }
);

backend_test!(
    untrust_of_another_users_device_is_404_and_changes_nothing,
    |app| {
        let alice = app.login("alice", "Laptop", None).await;
        let bob = Scenario::new(&app, "bob").trusted_laptop().build().await;
        let bob = bob.laptop();
        for id in [bob.device_id.as_str(), "missing"] {
            let response = app
                .post(&format!("/devices/{id}/untrust"), &alice.token)
                .await;
            assert_eq!(response.status, 404);
            assert_eq!(response.body, error_body("Device not found"));
        }
        let bobs = app
            .get(&format!("/devices/{}", bob.device_id), &bob.token)
            .await;
        assert_eq!(bobs.status, 200);
        assert_eq!(bobs.body["device"]["isTrusted"], true);
    }
);

backend_test!(trust_device_by_fingerprint, |app| {
    let alice = app.login("alice", "Laptop", Some("fp-laptop")).await;
    let response = app
        .post_json(
            "/devices/trust",
            &alice.token,
            json!({"fingerprint": "fp-laptop"}),
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["success"], true);
    assert_eq!(response.body["message"], "Device trusted successfully");
    let until = timestamp(&response.body["trustExpiresAt"]);
    let days = (until - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "trust period is {days} days");

    let device = app
        .get(&format!("/devices/{}", alice.device_id), &alice.token)
        .await;
    assert_eq!(device.body["device"]["isTrusted"], true);
    assert_eq!(device.body["device"]["trustLevel"], "HIGH");
    assert_eq!(
        device.body["device"]["trustExpiresAt"],
        response.body["trustExpiresAt"]
    );
});

backend_test!(
    trust_device_of_another_user_or_unknown_fingerprint_is_404,
    |app| {
        let alice = app.login("alice", "Laptop", Some("fp-alice")).await;
        let bob = app.login("bob", "Laptop", Some("fp-bob")).await;
        for fingerprint in ["fp-bob", "fp-unknown"] {
            let response = app
                .post_json(
                    "/devices/trust",
                    &alice.token,
                    json!({"fingerprint": fingerprint}),
                )
                .await;
            assert_eq!(response.status, 404);
            assert_eq!(response.body, error_body("Device not found"));
        }
        let bobs = app
            .get(&format!("/devices/{}", bob.device_id), &bob.token)
            .await;
        assert_eq!(bobs.body["device"]["isTrusted"], false);
    }
);

backend_test!(trust_device_rejects_malformed_bodies, |app| {
    let alice = app.login("alice", "Laptop", Some("fp-alice")).await;
    let long = "f".repeat(257);
    let bodies = [
        json!({}),
        json!({"fingerprint": 42}),
        json!({"fingerprint": ""}),
        json!({"fingerprint": long}),
        json!({"fingerprint": "fp-alice", "extra": true}),
        json!(["fp-alice"]),
    ];
    for body in bodies {
        let response = app
            .post_json("/devices/trust", &alice.token, body.clone())
            .await;
        assert_eq!(response.status, 400, "{body}");
        assert!(
            response.body["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid request body"),
            "{}",
            response.body
        );
    }
    let request = app
        .client
        .post(app.url("/devices/trust"))
        .bearer_auth(&alice.token);
    let not_json = app
        .send(
            "POST",
            "/devices/trust",
            request
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    let request = app
        .client
        .post(app.url("/devices/trust"))
        .bearer_auth(&alice.token);
    let wrong_type = app
        .send(
            "POST",
            "/devices/trust",
            request
                .header("content-type", "text/plain")
                .body(r#"{"fingerprint":"fp-alice"}"#),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(
        wrong_type.body,
        error_body("Content-Type must be application/json")
    );
    let request = app
        .client
        .post(app.url("/devices/trust"))
        .bearer_auth(&alice.token);
    let huge = format!(r#"{{"fingerprint":"{}"}}"#, "f".repeat(10_000));
    let too_big = app
        .send(
            "POST",
            "/devices/trust",
            request
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    assert_eq!(too_big.status, 400);
    // Nothing was trusted by any of it.
    let device = app
        .get(&format!("/devices/{}", alice.device_id), &alice.token)
        .await;
    assert_eq!(device.body["device"]["isTrusted"], false);
});

backend_test!(delete_device_removes_it_and_its_sessions, |app| {
    let alice = Scenario::new(&app, "alice").laptop().phone().build().await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let response = app
        .delete(&format!("/devices/{}", laptop.device_id), &phone.token)
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, message_body("Device removed successfully"));
    assert_eq!(app.get("/devices", &laptop.token).await.status, 401);
    let listed = app.get("/devices", &phone.token).await;
    assert_eq!(listed.body["devices"].as_array().unwrap().len(), 1);
    let gone = app
        .delete(&format!("/devices/{}", laptop.device_id), &phone.token)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body, error_body("Device not found"));
});

backend_test!(delete_device_of_another_user_is_404, |app| {
    let alice = app.login("alice", "Laptop", None).await;
    let bob = app.login("bob", "Laptop", None).await;
    let response = app
        .delete(&format!("/devices/{}", bob.device_id), &alice.token)
        .await;
    assert_eq!(response.status, 404);
    assert_eq!(response.body, error_body("Device not found"));
    assert_eq!(app.get("/devices", &bob.token).await.status, 200);
});

backend_test!(expired_trust_reads_as_untrusted, |app| {
    let alice = Scenario::new(&app, "alice").trusted_laptop().build().await;
    let alice = alice.laptop();
    let (device_id, db) = (alice.device_id.clone(), app.db.clone());
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use flashback_devices::db::schema::devices;
        db.run_blocking(|conn| {
            diesel::update(devices::table.filter(devices::id.eq(&device_id)))
                .set(devices::trust_expires_at.eq(Some(
                    flashback_devices::db::now() - chrono::TimeDelta::seconds(1),
                )))
                .execute(conn)
        })
    })
    .await
    .unwrap()
    .unwrap();
    let response = app.get("/devices", &alice.token).await;
    assert_eq!(response.body["devices"][0]["isTrusted"], false);
});

backend_test!(this_device_and_this_session_are_marked, |app| {
    let alice = Scenario::new(&app, "alice")
        .laptop()
        .laptop()
        .phone()
        .build()
        .await;
    let (laptop, phone) = (alice.laptop(), alice.phone());
    let laptop_too = alice.session(Device::Laptop, 1);
    for (caller, own_device) in [
        (laptop, &laptop.device_id),
        (laptop_too, &laptop.device_id),
        (phone, &phone.device_id),
    ] {
        let listed = app.get("/devices", &caller.token).await;
        for device in listed.body["devices"].as_array().unwrap() {
            assert_eq!(
                device["isCurrent"],
                device["id"] == own_device.as_str(),
                "{device}"
            );
        }
        for device_id in [&laptop.device_id, &phone.device_id] {
            let details = app
                .get(&format!("/devices/{device_id}"), &caller.token)
                .await;
            let device = &details.body["device"];
            assert_eq!(device["isCurrent"], device_id == own_device);
            for session in device["sessions"].as_array().unwrap() {
                assert_eq!(
                    session["isCurrent"],
                    session["id"] == caller.session_id.as_str(),
                    "{session}"
                );
            }
        }
    }
    let details = app
        .get(&format!("/devices/{}", laptop.device_id), &laptop.token)
        .await;
    let current: Vec<_> = details.body["device"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["isCurrent"] == true)
        .collect();
    assert_eq!(current.len(), 1);
});
