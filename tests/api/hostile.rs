//! The real binary against hostile clients and careless configuration: a
//! compressed body bomb, a body that never ends, a token crafted to forge
//! log lines, the metrics' default exposure, secrets in `--help` and the
//! start-up log, an empty `JWT_SECRET`, and the modes of the files it makes.

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use crate::{
    helpers::{assert_succeeded, TEST_SECRET},
    logs::{binary, parse, session_token, Served},
};

/// Peak resident memory of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// `size` bytes of spaces, gzipped by the system's gzip (a few hundred
/// bytes per MiB: the shape of a decompression bomb).
fn gzip_of_spaces(size: usize) -> Vec<u8> {
    let mut gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = gzip.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b' '; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len());
            stdin.write_all(&block[..n]).unwrap();
            left -= n;
        }
    });
    let output = gzip.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(output.status.success());
    output.stdout
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_is_refused_unread_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "bomb.db");
    let revoked = session_token(&url, "alice");
    let server = Served::start_with(&url, "warn", "text", &[("RATE_LIMIT_RPS", "0")]).await;
    let client = reqwest::Client::new();
    // That session ends, so that the bomb also comes with a revoked token.
    let revoke_all = client
        .post(format!("{}/sessions/revoke-all", server.base))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke_all.status(), 200);
    let alice = session_token(&url, "alice");
    assert_eq!(
        client
            .get(format!("{}/devices", server.base))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let baseline = peak_rss_kib(server.child.id());

    let bomb = gzip_of_spaces(120 << 20);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    // With Content-Length, and chunked (no length known up front).
    let send = |token: String, chunked: bool| {
        let (base, bomb) = (server.base.clone(), bomb.clone());
        tokio::task::spawn_blocking(move || {
            let address = base.strip_prefix("http://").unwrap().to_owned();
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {}", bomb.len())
            };
            let head = format!(
                "POST /devices/trust HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Encoding: gzip\r\n{framing}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).unwrap();
            // The server may answer and close before the whole body is sent.
            let _ = if chunked {
                bomb.chunks(16 << 10)
                    .try_for_each(|chunk| {
                        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                        stream.write_all(chunk)?;
                        stream.write_all(b"\r\n")
                    })
                    .and_then(|()| stream.write_all(b"0\r\n\r\n"))
            } else {
                stream.write_all(&bomb)
            };
            let mut answer = Vec::new();
            let mut buffer = [0u8; 4096];
            // Up to the end of the first response's body (a JSON object).
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buffer[..n]);
                if answer.ends_with(b"}") {
                    break;
                }
            }
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status: u16 = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            let body: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
            (status, body)
        })
    };
    let answers: Vec<(u16, serde_json::Value)> = futures_util::future::join_all([
        send(alice.clone(), false),
        send(alice.clone(), true),
        send(revoked.clone(), true),
    ])
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for (status, body) in &answers {
        assert!((400..500).contains(status), "{status} {body}");
        assert_eq!(body["success"], false, "{body}");
    }
    let peak = peak_rss_kib(server.child.id());
    eprintln!("peak RSS: {baseline} KiB before the bombs, {peak} KiB after");
    assert!(
        peak <= baseline + 8 * 1024,
        "peak RSS grew from {baseline} KiB to {peak} KiB"
    );
    assert_eq!(answers[0].0, 415, "{:?}", answers[0]);
    assert_eq!(answers[1].0, 415, "{:?}", answers[1]);
    // Still serving, and the body was never applied.
    assert_eq!(
        client
            .get(format!("{}/devices", server.base))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop();
}

/// Sends `head` on a raw connection and reads until the server closes it
/// (or `limit` passes): what a slow or stalled client sees.
fn raw_exchange(base: &str, head: &str, limit: Duration) -> (String, Duration) {
    let address = base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408_and_its_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "slow.db");
    let token = session_token(&url, "alice");
    let server = Served::start_with(&url, "warn", "text", &[("BODY_TIMEOUT_MS", "500")]).await;
    let base = server.base.clone();
    let head = format!(
        "POST /devices/trust HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"fin"
    );
    let (answer, waited) =
        tokio::task::spawn_blocking(move || raw_exchange(&base, &head, Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("\"success\":false"), "{answer}");
    assert!(answer.contains("x-request-id"), "{answer}");
    // Closed by the server soon after the deadline, not by our read timeout.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    server.stop();
}

/// A JWT whose header is `header` (raw JSON), signed with the test secret.
fn token_with_header(header: &str, claims: &serde_json::Value) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(TEST_SECRET.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_cannot_forge_log_lines() {
    let forged = "[2026-01-01T00:00:00.000Z INFO  flashback_devices::access] 10.0.0.1 \
                  \"POST /devices/x/untrust HTTP/1.1\" status=200 FORGED";
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"sub": "alice", "sid": "s", "iat": now, "exp": now + 600});
    let header = serde_json::json!({"alg": format!("HS256\n{forged}"), "typ": "JWT"}).to_string();
    let token = token_with_header(&header, &claims);
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir, "forge.db");
        let server = Served::start(&url, "info", format).await;
        let response = reqwest::Client::new()
            .get(format!("{}/devices", server.base))
            .header("X-Request-Id", "req-forge")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let (_, logs) = server.stop();
        // Every line parses as a line of the format (a forged line would not
        // carry the request id, and a raw newline would split one).
        let lines = parse(format, &logs);
        assert!(
            !logs.contains("FORGED"),
            "{format}: attacker text logged:\n{logs}"
        );
        let about: Vec<_> = lines
            .iter()
            .filter(|l| l.raw.contains("req-forge"))
            .collect();
        assert!(!about.is_empty(), "{format}: {logs}");
        let access = about
            .iter()
            .filter(|l| l.target == "flashback_devices::access")
            .count();
        assert_eq!(access, 1, "{format}: {logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_on_the_api_listener_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "metrics.db");
    let client = reqwest::Client::new();
    let server = Served::start(&url, "warn", "text").await;
    let response = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    server.stop();

    let server = Served::start_with(&url, "warn", "text", &[("METRICS_PUBLIC", "true")]).await;
    let response = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("flashback_http_requests_total"));
    server.stop();
}

#[test]
fn help_and_the_start_up_log_show_no_secret() {
    let secrets = [
        ("DATABASE_URL", "postgres://postgres:pw-in-userinfo@127.0.0.1:1/x?password=pw-in-query&sslpassword=pw-ssl"),
        ("WEBHOOK_URLS", "https://hooks.example/in?token=tok-in-query"),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ];
    let help = binary().envs(secrets).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("DATABASE_URL"), "{help}");
    for leaked in [
        "pw-in-userinfo",
        "pw-in-query",
        "pw-ssl",
        "tok-in-query",
        "MfKQ9r8",
    ] {
        assert!(!help.contains(leaked), "--help shows {leaked}:\n{help}");
    }
    // The start-up log names the database (PostgreSQL on a closed port: it
    // stops there) without its passwords.
    let started = output_within(
        binary()
            .env("DATABASE_URL", secrets[0].1)
            .env("RUST_LOG", "info")
            .env("DB_POOL_TIMEOUT_MS", "200")
            .arg("serve"),
        Duration::from_secs(60),
    );
    assert_eq!(started.status.code(), Some(2));
    let log = String::from_utf8_lossy(&started.stderr);
    assert!(log.contains("127.0.0.1:1"), "{log}");
    for leaked in ["pw-in-userinfo", "pw-in-query", "pw-ssl"] {
        assert!(!log.contains(leaked), "the log shows {leaked}:\n{log}");
    }
}

/// Runs `command` to its end, killing it (and failing) after `limit`.
fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_empty_jwt_secret_stops_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "empty.db");
    for command in [
        &["serve"][..],
        &["session", "create", "--user", "a", "--device-name", "L"],
    ] {
        let output = output_within(
            binary()
                .env("DATABASE_URL", &url)
                .env("JWT_SECRET", "")
                .args(command),
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(output.stdout.is_empty(), "{command:?}: no demo token");
    }
    assert!(
        !dir.path().join("empty.db.jwt-secret").exists(),
        "no development secret was made"
    );
}

#[test]
fn sqlite_files_are_private_and_a_readable_secret_file_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "private.db");
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    // Development mode: no JWT_SECRET, so the secret file is made too.
    let output = binary()
        .env_remove("JWT_SECRET")
        .env("DATABASE_URL", &url)
        .args(["session", "create", "--user", "a", "--device-name", "L"])
        .output()
        .unwrap();
    assert_succeeded(&output);
    for name in ["private.db", "private.db.jwt-secret"] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    for name in ["private.db-wal", "private.db-shm"] {
        if dir.path().join(name).exists() {
            assert_eq!(mode(name), 0o600, "{name}");
        }
    }
    // A secret file others can read is used, with a warning.
    let secret = dir.path().join("private.db.jwt-secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = binary()
        .env_remove("JWT_SECRET")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .args(["session", "create", "--user", "a", "--device-name", "L"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("readable by others") && stderr.contains("jwt-secret"),
        "{stderr}"
    );
}
