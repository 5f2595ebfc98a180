//! The client's address (`TRUSTED_PROXIES`): events, the rate limiter and
//! the access log take `X-Forwarded-For` from a trusted proxy only. Tested
//! in-process with forged headers, and behind a real nginx (Debian's
//! package) in front of the real binary.

use std::{
    net::{IpAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::*;
use flashback_devices::{
    client_addr::TrustedProxies, middleware::RateLimitSettings, startup::ServerOptions,
};

const FORGED: &str = "203.0.113.9";

async fn spawn_with_proxies(proxies: &str, rate_limit: Option<RateLimitSettings>) -> TestApp {
    let options = ServerOptions {
        trusted_proxies: TrustedProxies::parse(proxies).unwrap(),
        rate_limit,
        ..ServerOptions::local()
    };
    TestApp::spawn_with(Backend::Sqlite, Setup::with_options(options)).await
}

/// A client whose connections come from `local` (any 127.0.0.0/8 address
/// works on loopback).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Records an event as `token` through `client`, with `forwarded` as
/// `X-Forwarded-For`, and returns the address that event recorded.
async fn recorded_address(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    forwarded: Option<&str>,
) -> String {
    let mut request = client
        .post(app.url("/sessions/revoke-others"))
        .bearer_auth(token);
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = app.send("POST", "/sessions/revoke-others", request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let events = app.events(token).await;
    assert_eq!(events[0]["type"], "OTHER_SESSIONS_REVOKED");
    events[0]["ipAddress"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    for proxies in ["", "10.0.0.0/8, 127.0.0.2"] {
        let app = spawn_with_proxies(proxies, None).await;
        let alice = app.login("alice", "Laptop", None).await;
        let client = client_from("127.0.0.7");
        for forwarded in [None, Some(FORGED), Some("10.0.0.1"), Some("garbage")] {
            let address = recorded_address(&app, &client, &alice.token, forwarded).await;
            assert_eq!(
                address, "127.0.0.7",
                "TRUSTED_PROXIES={proxies:?}, {forwarded:?}"
            );
        }
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
    let app = spawn_with_proxies("127.0.0.1, 10.0.0.0/8", None).await;
    let alice = app.login("alice", "Laptop", None).await;
    let proxy = client_from("127.0.0.1");
    for (forwarded, client) in [
        // The proxy appended its peer; what the client wrote is to the left.
        (format!("{FORGED}, 198.51.100.7"), "198.51.100.7"),
        // Through two trusted hops.
        (format!("{FORGED}, 198.51.100.7, 10.1.2.3"), "198.51.100.7"),
        ("2001:db8::7".to_owned(), "2001:db8::7"),
    ] {
        let address = recorded_address(&app, &proxy, &alice.token, Some(&forwarded)).await;
        assert_eq!(address, client, "{forwarded}");
    }
    // No header from the proxy: the proxy is all that is known.
    assert_eq!(
        recorded_address(&app, &proxy, &alice.token, None).await,
        "127.0.0.1"
    );
    // A peer that is not the proxy: its own address, whatever it forwards.
    let direct = client_from("127.0.0.9");
    let address = recorded_address(&app, &direct, &alice.token, Some("198.51.100.7")).await;
    assert_eq!(address, "127.0.0.9");
}

/// Sends `GET /devices` without a token `n` times from `client` with
/// `forwarded`, and returns the statuses.
async fn anonymous(app: &TestApp, client: &reqwest::Client, forwarded: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let request = client
            .get(app.url("/devices"))
            .header("x-forwarded-for", forwarded);
        statuses.push(app.send("GET", "/devices", request).await.status);
    }
    statuses
}

#[tokio::test]
async fn the_rate_limiter_counts_anonymous_clients_by_their_resolved_address() {
    let limit = RateLimitSettings::new(1, 2);
    // Behind the proxy: each client has its own allowance.
    let app = spawn_with_proxies("127.0.0.1", limit).await;
    let proxy = client_from("127.0.0.1");
    assert_eq!(
        anonymous(&app, &proxy, "198.51.100.7", 3).await,
        [401, 401, 429]
    );
    assert_eq!(anonymous(&app, &proxy, "198.51.100.8", 1).await, [401]);
    // From an untrusted peer, varying the header buys nothing.
    let direct = client_from("127.0.0.9");
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.extend(anonymous(&app, &direct, &format!("198.51.100.{}", 20 + i), 1).await);
    }
    assert_eq!(statuses, [401, 401, 429]);
}

// ----- behind a real nginx --------------------------------------------------

/// Debian's nginx, when installed. Under CI its absence is a failure, not a
/// skip (`.ci/run` installs it), as for PostgreSQL.
fn nginx() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file());
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but nginx is not installed (apt-get install nginx)")
        }
        None => {
            eprintln!("nginx is not installed: the reverse-proxy test was not run");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Children this test started, stopped when it ends however it ends.
struct Stop(Vec<Child>);

impl Drop for Stop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_for(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client.get(url).send().await {
            if response.status().as_u16() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer 200");
}

/// The access log lines of the server (text format: `[… flashback_devices::access] <line>`).
fn access_log(log: &str) -> Vec<String> {
    let target = format!("{}] ", flashback_devices::telemetry::ACCESS_LOG_TARGET);
    log.lines()
        .filter_map(|line| line.split_once(target.as_str()))
        .map(|(_, entry)| entry.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_the_client_is_who_nginx_saw() {
    let Some(nginx) = nginx() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("proxy.db").display());
    let binary = env!("CARGO_BIN_EXE_flashback-devices");
    let create = Command::new(binary)
        .args([
            "session",
            "create",
            "--user",
            "alice",
            "--device-name",
            "Laptop",
        ])
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", TEST_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_succeeded(&create);
    let issued: serde_json::Value = serde_json::from_slice(&create.stdout).unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();

    // The server trusts nginx's outgoing address (127.0.0.3) and nothing else.
    let (server_port, proxy_port) = (free_port(), free_port());
    let server_log = dir.path().join("server.log");
    let server = Command::new(binary)
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", TEST_SECRET)
        .env("BIND_ADDR", format!("127.0.0.1:{server_port}"))
        .env("TRUSTED_PROXIES", "127.0.0.3")
        .env("RATE_LIMIT_RPS", "1")
        .env("RATE_LIMIT_BURST", "3")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&server_log).unwrap())
        .spawn()
        .unwrap();
    let mut children = Stop(vec![server]);
    let config = dir.path().join("nginx.conf");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://127.0.0.1:{server_port};
            # HTTP/1.0 (nginx's default) sends a POST without a body with no
            # Content-Length, which HTTP/1.0 forbids and actix-http refuses.
            proxy_http_version 1.1;
            proxy_bind 127.0.0.3;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"
        ),
    )
    .unwrap();
    let nginx_process = Command::new(&nginx)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    children.0.push(nginx_process);
    let (direct, proxied) = (
        format!("http://127.0.0.1:{server_port}"),
        format!("http://127.0.0.1:{proxy_port}"),
    );
    wait_for(&format!("{direct}/healthz")).await;
    wait_for(&format!("{proxied}/healthz")).await;

    let revoke_others = |client: reqwest::Client, base: String| {
        let token = token.clone();
        async move {
            let response = client
                .post(format!("{base}/sessions/revoke-others"))
                .bearer_auth(token)
                .header("x-forwarded-for", FORGED)
                .header("user-agent", "through-nginx/1.0")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, 200, "{base}: {body}");
        }
    };
    // Through nginx from 127.0.0.5, and straight to the server from
    // 127.0.0.6, both with a forged X-Forwarded-For.
    revoke_others(client_from("127.0.0.5"), proxied.clone()).await;
    revoke_others(client_from("127.0.0.6"), direct.clone()).await;
    let events = fetch_json(
        reqwest::Client::new()
            .get(format!("{proxied}/security-events"))
            .bearer_auth(&token),
    )
    .await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(
        events[0]["ipAddress"], "127.0.0.6",
        "straight to the server"
    );
    assert_eq!(events[1]["ipAddress"], "127.0.0.5", "through nginx");
    assert_eq!(events[1]["userAgent"], "through-nginx/1.0");

    // The rate limiter: anonymous clients behind nginx each have their own
    // allowance (burst 3); a forged header straight to the server gets none.
    // Each request with another forged X-Forwarded-For.
    let statuses = |client: reqwest::Client, base: String, n: usize| async move {
        let mut statuses = Vec::new();
        for i in 0..n {
            let forged = format!("198.51.100.{i}");
            let response = client
                .get(format!("{base}/devices"))
                .header("x-forwarded-for", forged)
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    assert_eq!(
        statuses(client_from("127.0.0.5"), proxied.clone(), 4).await,
        [401, 401, 401, 429]
    );
    assert_eq!(
        statuses(client_from("127.0.0.7"), proxied.clone(), 1).await,
        [401]
    );
    assert_eq!(
        statuses(client_from("127.0.0.8"), direct.clone(), 4).await,
        [401, 401, 401, 429]
    );

    // The access log names the same clients, never the forged address, and
    // never nginx itself.
    drop(children);
    let log = std::fs::read_to_string(&server_log).unwrap();
    let lines = access_log(&log);
    let client_of = |needle: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|line| line.contains(needle))
            .map(|line| line.split(' ').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        client_of("\"POST /sessions/revoke-others"),
        ["127.0.0.5", "127.0.0.6"],
        "{log}"
    );
    assert_eq!(
        client_of("\"GET /devices"),
        [
            "127.0.0.5",
            "127.0.0.5",
            "127.0.0.5",
            "127.0.0.5",
            "127.0.0.7",
            "127.0.0.8",
            "127.0.0.8",
            "127.0.0.8",
            "127.0.0.8"
        ],
        "{log}"
    );
    for line in &lines {
        assert!(!line.starts_with(FORGED), "{line}");
        assert!(!line.starts_with("127.0.0.3 "), "{line}");
    }
}
