//! Group commit: writes that wait together share one transaction, each in
//! its own savepoint; and SQLite reads that find the database busy on the
//! worker's own connection are read again on the blocking pool.
//!
//! To make a group form for sure, the test holds the database's write lock
//! from a connection of its own (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an
//! exclusive lock on `devices`), so that the writer stalls on the first
//! write it takes while the next ones queue behind it; once the lock is
//! released, everything queued runs as one group. Grouping is on for both
//! backends here (`GROUP_COMMIT=on`; PostgreSQL's default is off).

use std::{sync::Arc, time::Duration};

use diesel::{
    connection::SimpleConnection, pg::PgConnection, sqlite::SqliteConnection, Connection,
};
use flashback_devices::db::WriteMode;
use reqwest::Method;
use serde_json::json;

use crate::{backend_test, helpers::*};

/// A connection of the test's own that holds the write lock until dropped.
enum WriteLock {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl WriteLock {
    fn take(app: &TestApp) -> Self {
        match app.backend {
            Backend::Sqlite => {
                let path = app.database_url.trim_start_matches("sqlite://");
                let mut conn = SqliteConnection::establish(path).unwrap();
                conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")
                    .unwrap();
                Self::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = PgConnection::establish(&app.database_url).unwrap();
                // Plain reads (the session check) still pass; every write of
                // `devices` (heartbeat, trust, untrust) waits.
                conn.batch_execute("BEGIN; LOCK TABLE devices IN EXCLUSIVE MODE")
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    fn release(self) {
        match self {
            Self::Sqlite(mut conn) => conn.batch_execute("ROLLBACK").unwrap(),
            Self::Postgres(mut conn) => conn.batch_execute("ROLLBACK").unwrap(),
        }
    }
}

/// How many commits held more than one write so far.
async fn grouped_commits(app: &TestApp) -> u64 {
    let text = fetch_text(app.client.get(app.url("/metrics"))).await;
    let value = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{prefix} missing from /metrics")) as u64
    };
    value("flashback_db_commit_writes_count ")
        - value("flashback_db_commit_writes_bucket{le=\"1\"} ")
}

/// A server whose writes go through the writer, whatever the backend.
async fn grouped(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Setup {
            write_mode: Some(WriteMode::Grouped),
            ..Setup::default()
        },
    )
    .await
}

/// Lets requests sent before it reach the writer's queue.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

backend_test!(
    a_failing_write_is_rolled_back_alone_and_its_group_commits,
    |app| {
        let app = Arc::new(grouped(app.backend).await);
        let mut users = Vec::new();
        for i in 0..12 {
            let caller = app.login(&format!("user-{i}"), "Laptop", Some("fp")).await;
            let target = app
                .login(&format!("user-{i}"), "Phone", Some("fp-phone"))
                .await;
            users.push((caller, target));
        }
        // Untrust changes the device and its sessions, then records its event:
        // with the events table gone, it fails after its changes were made.
        app.execute_sql("ALTER TABLE security_events RENAME TO security_events_away")
            .await;
        let lock = WriteLock::take(&app);
        // The writer takes this one and stalls on the lock.
        let first = {
            let (app, (caller, _)) = (app.clone(), users[0].clone());
            tokio::spawn(async move {
                app.post(
                    &format!("/sessions/{}/heartbeat", caller.session_id),
                    &caller.token,
                )
                .await
            })
        };
        settle().await;
        let mut requests = Vec::new();
        for (i, (caller, target)) in users.iter().cloned().enumerate() {
            let app = app.clone();
            requests.push(tokio::spawn(async move {
                let response = match i % 3 {
                    // Fails (500) after changing the device and its sessions.
                    0 => {
                        app.post(
                            &format!("/devices/{}/untrust", target.device_id),
                            &caller.token,
                        )
                        .await
                    }
                    // No such device of the caller: 404, nothing changed.
                    1 => {
                        app.post_json(
                            "/devices/trust",
                            &caller.token,
                            json!({"fingerprint": "fp-unknown"}),
                        )
                        .await
                    }
                    // Succeeds.
                    _ => {
                        app.post(
                            &format!("/sessions/{}/heartbeat", target.session_id),
                            &target.token,
                        )
                        .await
                    }
                };
                (i, response.status)
            }));
        }
        settle().await;
        lock.release();
        assert_eq!(first.await.unwrap().status, 200);
        for request in requests {
            let (i, status) = request.await.unwrap();
            assert_eq!(status, [500, 404, 200][i % 3], "request {i}");
        }
        assert!(
            grouped_commits(&app).await >= 1,
            "the writes shared a commit"
        );
        app.execute_sql("ALTER TABLE security_events_away RENAME TO security_events")
            .await;

        for (i, (caller, target)) in users.iter().enumerate() {
            let device = app
                .get(&format!("/devices/{}", target.device_id), &caller.token)
                .await;
            assert_eq!(device.status, 200);
            let sessions = device.body["device"]["sessions"].as_array().unwrap();
            // The failed untrusts left nothing behind: the device is still
            // trusted as before and its session still live.
            assert_eq!(sessions.len(), 1, "user {i}: {}", device.body);
            if i % 3 == 2 {
                // The heartbeats of the same group were committed.
                let expiry = chrono::DateTime::parse_from_rfc3339(
                    sessions[0]["expiresAt"].as_str().unwrap(),
                )
                .unwrap();
                let extended = chrono::Utc::now() + chrono::TimeDelta::hours(23);
                assert!(
                    expiry > extended,
                    "user {i}: heartbeat lost: {}",
                    device.body
                );
            }
            assert_eq!(
                app.get("/devices", &target.token).await.status,
                200,
                "user {i}: the target's session still authenticates"
            );
        }
    }
);

backend_test!(
    a_session_revoked_earlier_in_a_group_cannot_write_later_in_it,
    |app| {
        let app = Arc::new(grouped(app.backend).await);
        let other = app.login("bob", "Laptop", Some("fp-bob")).await;
        let phone = app.login("alice", "Phone", Some("fp-phone")).await;
        let laptop = app.login("alice", "Laptop", Some("fp-laptop")).await;
        let lock = WriteLock::take(&app);
        let first = {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    &format!("/sessions/{}/heartbeat", other.session_id),
                    &other.token,
                )
                .await
                .status
            })
        };
        settle().await;
        // Queued in this order behind the stalled write: both in the next group.
        let revoke = {
            let (app, phone, laptop) = (app.clone(), phone.clone(), laptop.clone());
            tokio::spawn(async move {
                app.post(
                    &format!("/sessions/{}/revoke", laptop.session_id),
                    &phone.token,
                )
                .await
                .status
            })
        };
        settle().await;
        let heartbeat = {
            let (app, laptop) = (app.clone(), laptop.clone());
            tokio::spawn(async move {
                app.post(
                    &format!("/sessions/{}/heartbeat", laptop.session_id),
                    &laptop.token,
                )
                .await
                .status
            })
        };
        settle().await;
        lock.release();
        assert_eq!(first.await.unwrap(), 200);
        assert_eq!(revoke.await.unwrap(), 200);
        assert_eq!(
            heartbeat.await.unwrap(),
            401,
            "a write after its session's revocation in the same group got in"
        );
        assert!(
            grouped_commits(&app).await >= 1,
            "revoke and heartbeat shared a commit"
        );
        assert_eq!(app.get("/sessions", &laptop.token).await.status, 401);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_finds_sqlite_busy_is_read_again_on_the_blocking_pool() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice", "Laptop", Some("fp")).await;
    assert_eq!(app.get("/devices", &alice.token).await.status, 200);
    let path = app.sqlite_path().unwrap();

    let recovery = RecoveryElsewhere::start(&path);
    // A reader that does not wait, as the worker's own connection, is refused.
    let mut probe = SqliteConnection::establish(&path).unwrap();
    let busy = probe
        .batch_execute("PRAGMA busy_timeout = 0; SELECT count(*) FROM devices")
        .unwrap_err();
    assert!(busy.to_string().contains("locked"), "{busy}");

    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(recovery);
    });
    // Read again on the pool, whose connections wait (busy timeout) until
    // the "recovery" is over.
    let listed = app
        .call(Method::GET, "/devices", Some(&alice.token), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["devices"].as_array().unwrap().len(), 1);
    release.await.unwrap();
    assert_eq!(app.get("/sessions/current", &alice.token).await.status, 200);
}
