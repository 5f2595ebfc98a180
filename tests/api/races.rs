//! Untrust racing the device's own traffic, and many concurrent writers.

use std::{sync::Arc, time::Duration};

use reqwest::Method;

use crate::{backend_test, helpers::*};

/// How many sessions the raced device has, each hammered by its own task.
const RACERS: usize = 12;

backend_test!(
    once_untrust_answers_no_session_of_the_device_gets_in,
    |app| {
        let app = Arc::new(app);
        let phone = app.login("alice", "Phone", Some("fp-phone")).await;
        let mut laptop_sessions = Vec::new();
        for _ in 0..RACERS {
            laptop_sessions.push(app.login("alice", "Laptop", Some("fp-laptop")).await);
        }
        let device_id = laptop_sessions[0].device_id.clone();
        let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));

        let mut racers = Vec::new();
        for (i, session) in laptop_sessions.iter().cloned().enumerate() {
            let (app, answered, device_id) = (app.clone(), answered.clone(), device_id.clone());
            racers.push(tokio::spawn(async move {
                let mut after_untrust = 0;
                let mut succeeded_after = 0;
                for round in 0..400 {
                    // Read the flag before sending: only requests sent after the
                    // untrust was acknowledged must fail.
                    let sent_after = answered.load(std::sync::atomic::Ordering::SeqCst);
                    let (method, path) = match (i + round) % 3 {
                        0 => (
                            Method::POST,
                            format!("/sessions/{}/heartbeat", session.session_id),
                        ),
                        1 => (Method::GET, format!("/devices/{device_id}")),
                        _ => (Method::GET, "/sessions".to_owned()),
                    };
                    let response = app.call(method, &path, Some(&session.token), None).await;
                    if sent_after {
                        after_untrust += 1;
                        if response.status != 401 {
                            succeeded_after += 1;
                        }
                        if after_untrust >= 5 {
                            break;
                        }
                    }
                }
                (after_untrust, succeeded_after)
            }));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let response = app
            .post(&format!("/devices/{device_id}/untrust"), &phone.token)
            .await;
        assert_eq!(response.status, 200);
        answered.store(true, std::sync::atomic::Ordering::SeqCst);

        let mut checked = 0;
        for racer in racers {
            let (after, succeeded) = racer.await.unwrap();
            assert_eq!(succeeded, 0, "a request sent after untrust answered got in");
            checked += after;
        }
        assert!(
            checked >= RACERS,
            "every racer sent requests after the untrust ({checked})"
        );
        // And in the database: no active session is left on the device.
        let details = app
            .get(&format!("/devices/{device_id}"), &phone.token)
            .await;
        assert_eq!(details.body["device"]["sessions"], serde_json::json!([]));
        assert_eq!(details.body["device"]["isTrusted"], false);
    }
);

backend_test!(sixty_four_concurrent_writers_all_succeed, |app| {
    let app = Arc::new(app);
    let mut logins = Vec::new();
    for i in 0..64 {
        logins.push(app.login(&format!("user-{i}"), "Laptop", Some("fp")).await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let mut writers = Vec::new();
    for (i, login) in logins.into_iter().enumerate() {
        let (app, start) = (app.clone(), start.clone());
        writers.push(tokio::spawn(async move {
            start.wait().await;
            let mut statuses = Vec::new();
            for round in 0..3 {
                let response = match (i + round) % 3 {
                    0 => {
                        app.post(
                            &format!("/sessions/{}/heartbeat", login.session_id),
                            &login.token,
                        )
                        .await
                    }
                    1 => {
                        app.post_json(
                            "/devices/trust",
                            &login.token,
                            serde_json::json!({"fingerprint": "fp"}),
                        )
                        .await
                    }
                    _ => {
                        app.post(
                            &format!("/devices/{}/untrust", login.device_id),
                            &login.token,
                        )
                        .await
                    }
                };
                statuses.push((response.status, response.body));
                if (i + round) % 3 == 2 {
                    break; // untrust ended this login's session
                }
            }
            statuses
        }));
    }
    let mut writes = 0;
    for writer in writers {
        for (status, body) in writer.await.unwrap() {
            assert_eq!(status, 200, "{body}");
            writes += 1;
        }
    }
    // Writer i stops after its untrust, which comes at round (2 - i % 3).
    let expected: usize = (0..64).map(|i| 3 - i % 3).sum();
    assert_eq!(
        writes, expected,
        "every planned write was made and answered"
    );
});
