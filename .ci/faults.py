#!/usr/bin/env python3
"""Fault drills against the release binary (issue: hardening, faults and durability).

1. outage:   PostgreSQL stops under load -> 503 JSON (never another 5xx), /readyz 503,
             no crash; PostgreSQL starts again -> the server recovers by itself.
2. crash:    kill -9 while untrusts are being acknowledged (SQLite and PostgreSQL), from 64
             concurrent clients so that the writer commits them in groups; after a restart
             every acknowledged untrust is still in effect.
3. shutdown: SIGTERM while requests are in flight -> they complete, exit code 0.
4. webhooks: kill -9 with webhook deliveries pending and in flight (SQLite and
             PostgreSQL), restart -> every recorded event reaches the receiver
             (duplicates allowed, losses not); and two servers on one PostgreSQL
             with one receiver -> every event delivered exactly once, not once per server.

Loopback only; every loop is bounded in count and time. Prints figures; exits 1 on any failure.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BINARY = os.path.abspath(os.environ.get("FAULTS_BINARY", "target/release/flashback-devices"))
SECRET = "faults-secret-0123456789abcdef0123456789abcdef"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/test"
PG_VERSION = sorted(os.listdir("/etc/postgresql"))[0] if os.path.isdir("/etc/postgresql") else None
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message, flush=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(database_url, port):
    env = dict(os.environ)
    # MAX_SESSIONS_PER_USER=0: a drill signs one user in hundreds of times,
    # and the limit would end the session whose token drives it.
    env.update(DATABASE_URL=database_url, JWT_SECRET=SECRET, BIND_ADDR=f"127.0.0.1:{port}",
               RATE_LIMIT_RPS="0", RUST_LOG="warn", DB_POOL_TIMEOUT_MS="500",
               METRICS_PUBLIC="true",
               MAX_SESSIONS_PER_USER="0")
    return env


def request(port, method, path, token=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body
        return response.status, parsed
    finally:
        conn.close()


def start_server(database_url, port, extra_env=None):
    env = env_for(database_url, port)
    env.update(extra_env or {})
    process = subprocess.Popen([BINARY, "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if request(port, "GET", "/readyz", timeout=1)[0] == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stderr.read().decode()}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not become ready")


def session_create(database_url, user, fingerprint):
    out = subprocess.run([BINARY, "session", "create", "--user", user, "--device-name", fingerprint,
                          "--fingerprint", fingerprint], env=env_for(database_url, 0),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def create_pg_database():
    name = "fd_faults_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return name, f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name):
    subprocess.run(["psql", PG_ADMIN, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)


def pg_ctl(action):
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", action]
                   + (["-m", "fast"] if action == "stop" else []), check=True)


def pg_ready():
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0


def drill_outage():
    print("\n== outage: PostgreSQL stops under load, then comes back", flush=True)
    name, url = create_pg_database()
    port = free_port()
    server = None
    try:
        subprocess.run([BINARY, "migrate"], env=env_for(url, port), check=True, capture_output=True)
        caller = session_create(url, "alice", "fp-caller")
        server = start_server(url, port)
        stop = threading.Event()
        statuses = {}
        bad = []
        lock = threading.Lock()

        def load():
            while not stop.is_set():
                for method, path in (("GET", "/devices"), ("GET", "/sessions"), ("GET", "/readyz")):
                    try:
                        status, body = request(port, method, path, caller["token"], timeout=10)
                    except OSError as error:
                        with lock:
                            bad.append(f"{method} {path}: {error}")
                        continue
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                        if status >= 500 and status != 503:
                            bad.append(f"{method} {path}: {status} {body}")
                        if status >= 400 and not (isinstance(body, dict) and body.get("success") is False):
                            bad.append(f"{method} {path}: {status} body not the JSON shape: {body!r}")

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        pg_ctl("stop")
        outage_start = time.time()
        saw_503 = saw_ready_503 = False
        while time.time() - outage_start < 8:
            status, body = request(port, "GET", "/devices", caller["token"], timeout=10)
            saw_503 |= status == 503 and body == {"success": False, "error": "Service temporarily unavailable"}
            saw_ready_503 |= request(port, "GET", "/readyz", timeout=10)[0] == 503
            if saw_503 and saw_ready_503 and time.time() - outage_start > 3:
                break
            time.sleep(0.2)
        check(saw_503, "no 503 JSON while PostgreSQL was down")
        check(saw_ready_503, "/readyz did not report 503 while PostgreSQL was down")
        check(server.poll() is None, "the server died during the outage")
        pg_ctl("start")
        restarted = time.time()
        recovered_after = None
        while time.time() - restarted < 30:
            if request(port, "GET", "/readyz", timeout=10)[0] == 200 and \
                    request(port, "GET", "/devices", caller["token"], timeout=10)[0] == 200:
                recovered_after = time.time() - restarted
                break
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        check(recovered_after is not None, "the server did not recover within 30 s of PostgreSQL's restart")
        check(not bad, f"{len(bad)} bad answers during the outage, e.g. {bad[:3]}")
        print(f"outage: statuses under load {dict(sorted(statuses.items()))}; "
              f"recovered {recovered_after:.2f} s after PostgreSQL was back" if recovered_after is not None
              else f"outage: statuses {statuses}", flush=True)
    finally:
        if not pg_ready():
            pg_ctl("start")
            for _ in range(50):
                if pg_ready():
                    break
                time.sleep(0.2)
        if server:
            server.kill()
            server.wait()
        drop_pg_database(name)


def commit_groups(port):
    """How the writer grouped the writes so far, from /metrics."""
    try:
        _, text = request(port, "GET", "/metrics", timeout=2)
    except OSError as error:
        return f"/metrics unreadable: {error}"
    text = text.decode() if isinstance(text, bytes) else str(text)
    values = {}
    for line in text.splitlines():
        for name in ("flashback_db_commit_writes_sum", "flashback_db_commit_writes_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    writes, commits = values.get("flashback_db_commit_writes_sum"), values.get("flashback_db_commit_writes_count")
    if not commits:
        return "no commit recorded"
    return f"{int(writes)} writes in {int(commits)} commits ({writes / commits:.1f} per commit)"


def drill_crash(backend, group_commit=None):
    """group_commit: GROUP_COMMIT for the server (None: its default, auto)."""
    extra_env = {"GROUP_COMMIT": group_commit} if group_commit else {}
    label = backend + (f", GROUP_COMMIT={group_commit}" if group_commit else "")
    print(f"\n== crash ({label}): kill -9 while untrusts are acknowledged", flush=True)
    scratch = tempfile.mkdtemp()
    if backend == "sqlite":
        name, url = None, f"sqlite://{scratch}/crash.db"
    else:
        name, url = create_pg_database()
    port = free_port()
    server = None
    try:
        subprocess.run([BINARY, "migrate"], env=env_for(url, port), check=True, capture_output=True)
        caller = session_create(url, "alice", "fp-caller")
        targets = [session_create(url, "alice", f"fp-target-{i}") for i in range(400)]
        server = start_server(url, port, extra_env)
        acknowledged = []
        lock = threading.Lock()
        queue = list(targets)

        def untrust_loop():
            while True:
                with lock:
                    if not queue:
                        return
                    target = queue.pop()
                try:
                    status, _ = request(port, "POST", f"/devices/{target['deviceId']}/untrust", caller["token"])
                except OSError:
                    continue  # the server was killed mid-request: not acknowledged
                if status == 200:
                    with lock:
                        acknowledged.append(target)

        # 64 at once: writes queue behind each commit and are committed in groups.
        threads = [threading.Thread(target=untrust_loop) for _ in range(64)]
        for t in threads:
            t.start()
        while len(acknowledged) < 40 and any(t.is_alive() for t in threads):
            time.sleep(0.005)
        groups = commit_groups(port)
        server.send_signal(signal.SIGKILL)
        server.wait()
        for t in threads:
            t.join()
        server = start_server(url, port, extra_env)
        lost = 0
        for target in acknowledged:
            status, body = request(port, "GET", f"/devices/{target['deviceId']}", caller["token"])
            device = body.get("device", {}) if isinstance(body, dict) else {}
            if status != 200 or device.get("isTrusted") is not False or device.get("sessions") != []:
                lost += 1
            if request(port, "GET", "/devices", target["token"])[0] != 401:
                lost += 1
        check(lost == 0, f"{lost} acknowledged untrusts were lost after kill -9 ({label})")
        check(len(acknowledged) > 0, "no untrust was acknowledged before the kill")
        print(f"crash ({label}): {len(acknowledged)} untrusts acknowledged before kill -9, "
              f"{len(targets) - len(acknowledged) - len(queue)} in flight or after; restarted; lost {lost}; "
              f"just before the kill: {groups}", flush=True)
    finally:
        if server:
            server.kill()
            server.wait()
        if name:
            drop_pg_database(name)


def drill_shutdown():
    print("\n== shutdown: SIGTERM with requests in flight", flush=True)
    import sqlite3
    scratch = tempfile.mkdtemp()
    path = f"{scratch}/shutdown.db"
    url = f"sqlite://{path}"
    port = free_port()
    subprocess.run([BINARY, "migrate"], env=env_for(url, port), check=True, capture_output=True)
    caller = session_create(url, "alice", "fp-caller")
    targets = [session_create(url, "alice", f"fp-t-{i}") for i in range(64)]
    env = env_for(url, port)
    env["DB_POOL_TIMEOUT_MS"] = "5000"
    server = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            if request(port, "GET", "/readyz", timeout=1)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    results = []
    lock = threading.Lock()

    def untrust(target):
        try:
            status, _ = request(port, "POST", f"/devices/{target['deviceId']}/untrust", caller["token"], timeout=20)
            outcome = status
        except OSError as error:
            outcome = f"error: {error}"
        with lock:
            results.append((target, outcome))

    # Another process holds SQLite's write lock, so every untrust is read by
    # the server and waits inside it: truly in flight when SIGTERM arrives.
    blocker = sqlite3.connect(path, timeout=10, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    threads = [threading.Thread(target=untrust, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    time.sleep(0.5)
    server.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    blocker.execute("COMMIT")
    blocker.close()
    for t in threads:
        t.join()
    code = server.wait(timeout=40)
    completed = sum(1 for _, outcome in results if outcome == 200)
    broken = [outcome for _, outcome in results if outcome != 200]
    check(code == 0, f"exit code {code} after SIGTERM")
    check(not broken, f"{len(broken)} in-flight requests did not complete: {broken[:3]}")
    server = start_server(url, port)
    try:
        lost = sum(1 for target, outcome in results if outcome == 200 and
                   request(port, "GET", f"/devices/{target['deviceId']}", caller["token"])[1]["device"]["isTrusted"])
        check(lost == 0, f"{lost} untrusts acknowledged during shutdown were lost")
    finally:
        server.terminate()
        server.wait()
    print(f"shutdown: {completed}/{len(targets)} untrusts in flight at SIGTERM completed with 200, exit code {code}",
          flush=True)


WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class WebhookReceiver:
    """A loopback receiver that checks each signature and counts 2xx answers per webhook-id.
    `delay` keeps each request open a while, so that a kill finds deliveries in flight."""

    def __init__(self, delay=0.0):
        import base64
        import hashlib
        import hmac
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        key = base64.b64decode(WEBHOOK_SECRET.split("_", 1)[1])
        self.counts = {}
        self.bad_signatures = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                wid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
                expected = "v1," + base64.b64encode(
                    hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
                if delay:
                    time.sleep(delay)
                with lock:
                    if self.headers["webhook-signature"] != expected:
                        receiver.bad_signatures += 1
                    receiver.counts[wid] = receiver.counts.get(wid, 0) + 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def event_ids(database_url):
    if database_url.startswith("sqlite://"):
        import sqlite3
        with sqlite3.connect(database_url[len("sqlite://"):]) as db:
            return {row[0] for row in db.execute("SELECT id FROM security_events")}
    out = subprocess.run(["psql", database_url, "-Atc", "SELECT id FROM security_events"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def start_webhook_server(database_url, port, receiver):
    os.environ.update(WEBHOOK_URLS=receiver.url, WEBHOOK_SECRET=WEBHOOK_SECRET,
                      WEBHOOK_TIMEOUT_MS="1000", WEBHOOK_RETRY_BASE_MS="100",
                      WEBHOOK_RETRY_MAX_MS="1000", WEBHOOK_POLL_MS="100")
    try:
        return start_server(database_url, port)
    finally:
        for name in ("WEBHOOK_URLS", "WEBHOOK_SECRET", "WEBHOOK_TIMEOUT_MS", "WEBHOOK_RETRY_BASE_MS",
                     "WEBHOOK_RETRY_MAX_MS", "WEBHOOK_POLL_MS"):
            os.environ.pop(name, None)


def webhook_users(url):
    """Ten users, each with a caller session and 12 devices to untrust: events of several users
    interleave, as the dispatcher's order per user must cope with."""
    callers = {f"user-{u}": session_create(url, f"user-{u}", "fp-caller") for u in range(10)}
    targets = [session_create(url, f"user-{i % 10}", f"fp-target-{i}") for i in range(120)]
    return callers, targets


def untrust_all(ports, caller, targets, stop_after=None, threads=8):
    """Untrusts `targets` (each with its user's `caller` session) through `ports` (round robin) from
    8 threads; returns once done, or once `stop_after` were acknowledged (the rest keep going until
    the caller kills the server)."""
    acknowledged = []
    lock = threading.Lock()
    queue = list(targets)

    def loop(i):
        port = ports[i % len(ports)]
        while True:
            with lock:
                if not queue:
                    return
                target = queue.pop()
            try:
                status, _ = request(port, "POST", f"/devices/{target['deviceId']}/untrust",
                                    caller[target["userId"]]["token"])
            except OSError:
                continue
            if status == 200:
                with lock:
                    acknowledged.append(target)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    if stop_after is None:
        for t in workers:
            t.join()
    else:
        while len(acknowledged) < stop_after and any(t.is_alive() for t in workers):
            time.sleep(0.005)
    return acknowledged, workers


def wait_delivered(database_url, receiver, seconds=60):
    deadline = time.time() + seconds
    while True:
        missing = event_ids(database_url) - set(receiver.counts)
        if not missing or time.time() > deadline:
            return missing
        time.sleep(0.2)


def drill_webhooks_crash(backend):
    print(f"\n== webhooks crash ({backend}): kill -9 with deliveries pending and in flight", flush=True)
    scratch = tempfile.mkdtemp()
    if backend == "sqlite":
        name, url = None, f"sqlite://{scratch}/webhooks.db"
    else:
        name, url = create_pg_database()
    receiver = WebhookReceiver(delay=0.05)
    port = free_port()
    server = None
    try:
        subprocess.run([BINARY, "migrate"], env=env_for(url, port), check=True, capture_output=True)
        server = start_webhook_server(url, port, receiver)
        caller, targets = webhook_users(url)
        acknowledged, workers = untrust_all([port], caller, targets, stop_after=40)
        pending_at_kill = len(event_ids(url)) - len(receiver.counts)
        server.send_signal(signal.SIGKILL)
        server.wait()
        for t in workers:
            t.join()
        received_before = sum(receiver.counts.values())
        server = start_webhook_server(url, port, receiver)
        missing = wait_delivered(url, receiver)
        events = len(event_ids(url))
        duplicates = sum(n - 1 for n in receiver.counts.values())
        check(not missing, f"{len(missing)} of {events} events never delivered after kill -9 ({backend})")
        check(receiver.bad_signatures == 0, f"{receiver.bad_signatures} deliveries with a bad signature")
        check(pending_at_kill > 0, "no delivery was pending at the kill: the drill proved nothing")
        print(f"webhooks crash ({backend}): {len(acknowledged)} untrusts acknowledged before kill -9, "
              f"~{pending_at_kill} deliveries pending or in flight at the kill, {received_before} received "
              f"before; after restart {events - len(missing)}/{events} events delivered, "
              f"{duplicates} duplicate(s)", flush=True)
    finally:
        if server:
            server.kill()
            server.wait()
        receiver.stop()
        if name:
            drop_pg_database(name)


def drill_webhooks_two_servers():
    print("\n== webhooks: two servers on one PostgreSQL, one receiver", flush=True)
    name, url = create_pg_database()
    receiver = WebhookReceiver(delay=0.01)
    ports = [free_port(), free_port()]
    servers = []
    try:
        subprocess.run([BINARY, "migrate"], env=env_for(url, ports[0]), check=True, capture_output=True)
        servers = [start_webhook_server(url, p, receiver) for p in ports]
        caller, targets = webhook_users(url)
        untrust_all(ports, caller, targets)
        missing = wait_delivered(url, receiver)
        events = len(event_ids(url))
        sent_twice = sum(1 for n in receiver.counts.values() if n > 1)
        check(not missing, f"{len(missing)} of {events} events never delivered (two servers)")
        check(sent_twice == 0, f"{sent_twice} of {events} events delivered more than once by two servers")
        check(receiver.bad_signatures == 0, f"{receiver.bad_signatures} deliveries with a bad signature")
        print(f"webhooks two servers: {events} events, {sum(receiver.counts.values())} deliveries received, "
              f"{sent_twice} sent twice", flush=True)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        receiver.stop()
        drop_pg_database(name)


def main():
    if not os.path.exists(BINARY):
        raise SystemExit(f"{BINARY} is missing: cargo build --release first")
    drills = {
        "crash-sqlite": lambda: drill_crash("sqlite"),
        "crash-postgres": lambda: drill_crash("postgres"),
        "crash-postgres-grouped": lambda: drill_crash("postgres", "on"),
        "shutdown": drill_shutdown,
        "outage": drill_outage,
        "webhooks-sqlite": lambda: drill_webhooks_crash("sqlite"),
        "webhooks-postgres": lambda: drill_webhooks_crash("postgres"),
        "webhooks-two-servers": drill_webhooks_two_servers,
    }
    chosen = sys.argv[1:] or list(drills)
    for name in chosen:
        drills[name]()
    print(f"\nfaults: {len(chosen)} drills, {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
