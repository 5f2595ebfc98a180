#!/usr/bin/env python3
"""Helper of bench/run (standard library only): seeds a database, mints
tokens, writes wrk request files, verifies untrust, drives the growth
measurement and prints the tables.

Subcommands (bench/run calls them; they are not meant to be stable):
  seed           data set of the scenarios + request files for wrk
  verify-untrust checks the untrust pool after the untrust scenario
  growth-seed    data set of one growth size (10 or 10,000 devices)
  growth-drive   sequential latency of GET /devices and untrust
  volume-seed    data set of one volume size (issue 20's growth row)
  volume-drive   sequential latency of the reads at both volume sizes
  expired-seed   expired security events for the retention row
  expired-count  expired and all events, after the prune
  report         the table of one database / the growth table
"""

import argparse
import base64
import csv
import hashlib
import hmac
import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

# ---------------------------------------------------------------------------
# Column formats, as the server writes them (src/db/models.rs, src/db/mod.rs):
# Diesel stores `Timestamp` on SQLite as TEXT "YYYY-MM-DD HH:MM:SS.ffffff"
# (chrono "%F %T%.f"; db::now() truncates to microseconds) and `bool` as
# INTEGER 0/1; on PostgreSQL they are TIMESTAMP and BOOLEAN.
# ---------------------------------------------------------------------------

DEVICE_COLUMNS = [
    "id", "user_id", "fingerprint", "device_name", "device_type", "os", "browser",
    "user_agent", "ip_address", "country", "city", "is_trusted", "trust_level",
    "trust_expires_at", "last_seen", "created_at",
]
SESSION_COLUMNS = [
    "id", "user_id", "device_id", "ip_address", "location", "login_method",
    "started_at", "last_activity", "expires_at", "revoked_at",
]

DEVICE_KINDS = [
    ("DESKTOP", "macOS 15", "Firefox 133"),
    ("MOBILE", "Android 15", "Chrome 131"),
    ("TABLET", "iPadOS 18", "Safari 18"),
    ("DESKTOP", "Windows 11", "Edge 131"),
]
PLACES = [("Lisbon", "Portugal"), ("Porto", "Portugal"), ("Berlin", "Germany"), ("Paris", "France")]


def ts(at):
    """A timestamp in the server's stored text format (SQLite) / COPY input (PostgreSQL)."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id():
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------
# Tokens: HS256 JWT with the claims of src/auth.rs (sub, sid, iat, exp).
# ---------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(secret, user_id, session_id, iat, exp):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = b64url(json.dumps(
        {"sub": user_id, "sid": session_id, "iat": int(iat), "exp": int(exp)},
        separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(signature)}"


# ---------------------------------------------------------------------------
# Row builders
# ---------------------------------------------------------------------------

class Rows:
    def __init__(self, now, rng):
        self.now = now
        self.rng = rng
        self.devices = []
        self.sessions = []

    def device(self, user_id, index, trusted):
        kind, os_name, browser = DEVICE_KINDS[index % len(DEVICE_KINDS)]
        city, country = PLACES[index % len(PLACES)]
        device_id = new_id()
        last_seen = self.now - timedelta(seconds=self.rng.randint(60, 30 * 24 * 3600))
        self.devices.append({
            "id": device_id,
            "user_id": user_id,
            "fingerprint": f"fp-{device_id}",
            "device_name": f"{kind.title()} {index}",
            "device_type": kind,
            "os": os_name,
            "browser": browser,
            "user_agent": f"Mozilla/5.0 ({os_name}) {browser}",
            "ip_address": f"198.51.100.{index % 250 + 1}",
            "country": country,
            "city": city,
            "is_trusted": trusted,
            "trust_level": "HIGH" if trusted else "UNKNOWN",
            "trust_expires_at": self.now + timedelta(days=30) if trusted else None,
            "last_seen": last_seen,
            "created_at": last_seen - timedelta(days=self.rng.randint(1, 365)),
        })
        return device_id

    def session(self, user_id, device_id, expires_at):
        session_id = new_id()
        started = self.now - timedelta(seconds=self.rng.randint(60, 12 * 3600))
        self.sessions.append({
            "id": session_id,
            "user_id": user_id,
            "device_id": device_id,
            "ip_address": "198.51.100.7",
            "location": "Lisbon, Portugal",
            "login_method": "password",
            "started_at": started,
            "last_activity": started + timedelta(seconds=30),
            "expires_at": expires_at,
            "revoked_at": None,
        })
        return session_id


def sqlite_value(value):
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, datetime):
        return ts(value)
    return value


def csv_value(value):
    if value is None:
        return None  # csv writes an unquoted empty field: NULL for COPY ... CSV
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return ts(value)
    return value


def psql(url, *args, stdin=None):
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, *args],
        input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench.py: psql failed: {result.stderr.strip()}")
    return result.stdout


def sqlite_bulk_connection(db):
    """A connection for loading rows: a page cache large enough to hold the
    indexes being filled (random UUID keys touch every page), and no fsync,
    as nothing is served from the file until the load is over."""
    conn = sqlite3.connect(db, timeout=30)
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("PRAGMA synchronous = OFF")
    return conn


def load(backend, db, rows, workdir):
    """Inserts the rows with SQL, the fastest way each backend offers."""
    if backend == "sqlite":
        conn = sqlite_bulk_connection(db)
        with conn:
            conn.executemany(
                f"INSERT INTO devices ({', '.join(DEVICE_COLUMNS)}) VALUES ({', '.join('?' * len(DEVICE_COLUMNS))})",
                ([sqlite_value(d[c]) for c in DEVICE_COLUMNS] for d in rows.devices))
            conn.executemany(
                f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
                ([sqlite_value(s[c]) for c in SESSION_COLUMNS] for s in rows.sessions))
        conn.close()
        return
    for table, columns, items in (("devices", DEVICE_COLUMNS, rows.devices),
                                  ("sessions", SESSION_COLUMNS, rows.sessions)):
        path = os.path.join(workdir, f"{table}.csv")
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            for item in items:
                writer.writerow([csv_value(item[c]) for c in columns])
        psql(db, "-c", f"\\copy {table} ({', '.join(columns)}) FROM '{path}' WITH (FORMAT csv)")
        os.unlink(path)
    # A bulk load leaves the planner without statistics; autovacuum would
    # gather them within a minute on a live server, so gather them now.
    psql(db, "-c", "ANALYZE devices; ANALYZE sessions;")


def query_one(backend, db, sql):
    """One row of a read-only query, as a list of strings/ints."""
    if backend == "sqlite":
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        row = conn.execute(sql).fetchone()
        conn.close()
        return list(row)
    return psql(db, "-c", sql).strip().split("|")


# ---------------------------------------------------------------------------
# seed: the scenarios' data set
# ---------------------------------------------------------------------------

def cmd_seed(a):
    rng = random.Random(42)
    now = utcnow()
    # Sessions outlive the run by a day; tokens expire with them.
    expires = now + timedelta(days=1)
    iat, exp = time.time() - 60, (expires.replace(tzinfo=timezone.utc)).timestamp()
    rows = Rows(now, rng)
    secret = a.secret

    list_lines, get_lines, heartbeat_lines, current_lines = [], [], [], []
    for u in range(a.users):
        user = f"bench-user-{u:05d}"
        device_ids = [rows.device(user, d, trusted=(d == 0 or d % 3 == 1)) for d in range(a.devices)]
        caller_tokens = []
        for d, device_id in enumerate(device_ids):
            for _ in range(a.sessions):
                sid = rows.session(user, device_id, expires)
                if d == 0:
                    token = mint(secret, user, sid, iat, exp)
                    caller_tokens.append(token)
                    heartbeat_lines.append(f"POST /sessions/{sid}/heartbeat {token}")
        for token in caller_tokens:
            list_lines.append(f"GET /devices {token}")
            current_lines.append(f"GET /sessions/current {token}")
        for d, device_id in enumerate(device_ids):
            get_lines.append(f"GET /devices/{device_id} {caller_tokens[d % len(caller_tokens)]}")

    # The untrust pool: separate users, so that the scenarios above list and
    # read exactly M devices per user. Each pool user has a caller device
    # (one session, whose token signs the requests) and pool/users fresh,
    # trusted devices with 2 sessions each; lines interleave the users.
    pool_users = a.users
    per_user = -(-a.pool // pool_users)
    pool_ids = []
    pool_by_user = []
    tokens = []
    for u in range(pool_users):
        user = f"bench-pool-{u:05d}"
        caller = rows.device(user, 0, trusted=True)
        sid = rows.session(user, caller, expires)
        tokens.append(mint(secret, user, sid, iat, exp))
        targets = []
        for d in range(per_user):
            device_id = rows.device(user, d + 1, trusted=True)
            rows.session(user, device_id, expires)
            rows.session(user, device_id, expires)
            targets.append(device_id)
        pool_by_user.append(targets)
    untrust_lines = []
    for d in range(per_user):
        for u in range(pool_users):
            device_id = pool_by_user[u][d]
            pool_ids.append(device_id)
            untrust_lines.append(f"POST /devices/{device_id}/untrust {tokens[u]}")

    load(a.backend, a.db, rows, a.out)

    def write(name, lines):
        with open(os.path.join(a.out, name), "w") as f:
            f.write("\n".join(lines) + "\n")

    write("healthz.req", ["GET /healthz -"])
    write("list.req", list_lines)
    write("current.req", current_lines)
    write("get.req", get_lines)
    # The tail of the pool is for the run in the other GROUP_COMMIT mode,
    # so that no device is untrusted twice in one invocation.
    split = len(untrust_lines) - min(a.pool_off, len(untrust_lines) // 2)
    write("untrust.req", untrust_lines[:split])
    write("untrust-alt.req", untrust_lines[split:])
    write("heartbeat.req", heartbeat_lines)
    write("heartbeat-alt.req", heartbeat_lines)
    write("pool-ids.txt", pool_ids)
    print(json.dumps({"devices": len(rows.devices), "sessions": len(rows.sessions),
                      "pool": len(pool_ids), "tokens": len(list_lines) + len(tokens)}))


# ---------------------------------------------------------------------------
# verify-untrust
# ---------------------------------------------------------------------------

def cmd_verify_untrust(a):
    with open(a.result) as f:
        result = json.load(f)
    a.ok = result["requests"] - result["err_status"]
    with open(a.pool_ids) as f:
        ids = [line.strip() for line in f if line.strip()]
    if a.backend == "sqlite":
        conn = sqlite3.connect(a.db, timeout=30)
        conn.execute("CREATE TEMP TABLE pool (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO pool VALUES (?)", ((i,) for i in ids))
        pool = "pool"
        false, run = "0", lambda sql: list(conn.execute(sql).fetchone())
    else:
        path = a.pool_ids
        false = "FALSE"
        setup = (f"CREATE TEMP TABLE pool (id TEXT PRIMARY KEY);\n"
                 f"\\copy pool FROM '{path}'\n")
        pool = "pool"
        run = lambda sql: [int(x) for x in psql(a.db, stdin=setup + sql + ";\n").strip().split("|")]
    untrusted, bad_level, live_sessions, trusted, trusted_sessions = run(f"""
        SELECT
          (SELECT COUNT(*) FROM devices d JOIN {pool} p ON p.id = d.id WHERE d.is_trusted = {false}),
          (SELECT COUNT(*) FROM devices d JOIN {pool} p ON p.id = d.id
             WHERE d.is_trusted = {false} AND (d.trust_level <> 'LOW' OR d.trust_expires_at IS NOT NULL)),
          (SELECT COUNT(*) FROM sessions s JOIN devices d ON d.id = s.device_id JOIN {pool} p ON p.id = d.id
             WHERE d.is_trusted = {false} AND s.revoked_at IS NULL),
          (SELECT COUNT(*) FROM devices d JOIN {pool} p ON p.id = d.id WHERE d.is_trusted <> {false}),
          (SELECT COUNT(*) FROM sessions s JOIN devices d ON d.id = s.device_id JOIN {pool} p ON p.id = d.id
             WHERE d.is_trusted <> {false} AND s.revoked_at IS NULL)""")
    untrusted, bad_level, live_sessions = int(untrusted), int(bad_level), int(live_sessions)
    trusted, trusted_sessions = int(trusted), int(trusted_sessions)
    problems = []
    if bad_level:
        problems.append(f"{bad_level} untrusted devices kept trust_level/trust_expires_at")
    if live_sessions:
        problems.append(f"{live_sessions} sessions of untrusted devices are not revoked")
    # Requests still in flight when wrk stopped are done by the server but not
    # counted by wrk: at most one per connection.
    if not (a.ok <= untrusted <= a.ok + a.connections):
        problems.append(f"{untrusted} devices untrusted for {a.ok} successful responses "
                        f"(expected {a.ok}..{a.ok + a.connections})")
    if trusted_sessions != 2 * trusted:
        problems.append(f"{trusted} untouched pool devices have {trusted_sessions} live sessions (expected {2 * trusted})")
    print(json.dumps({"untrusted": untrusted, "live_sessions_of_untrusted": live_sessions,
                      "untouched": trusted, "ok_responses": a.ok, "problems": problems}))
    sys.exit(1 if problems else 0)


# ---------------------------------------------------------------------------
# growth: 10 vs 10,000 devices in the table, same request stream
# ---------------------------------------------------------------------------

GROWTH_USER = "growth-user-00000"
GROWTH_DEVICES_PER_USER = 10


def cmd_growth_seed(a):
    """`size` devices in the table: size/10 users x 10 devices x 2 sessions.
    The measured user is always growth-user-00000 (10 devices: device 0 the
    caller, 1..9 the untrust targets); the others only fill the table."""
    rng = random.Random(7)
    now = utcnow()
    expires = now + timedelta(days=1)
    iat, exp = time.time() - 60, expires.replace(tzinfo=timezone.utc).timestamp()
    rows = Rows(now, rng)
    users = max(1, a.size // GROWTH_DEVICES_PER_USER)
    meta = {}
    for u in range(users):
        user = f"growth-user-{u:05d}"
        ids = [rows.device(user, d, trusted=True) for d in range(GROWTH_DEVICES_PER_USER)]
        sids = [[rows.session(user, i, expires) for _ in range(2)] for i in ids]
        if u == 0:
            meta = {"user": user, "token": mint(a.secret, user, sids[0][0], iat, exp),
                    "targets": ids[1:], "trust_until": ts(now + timedelta(days=30))}
    load(a.backend, a.db, rows, a.out)
    count = query_one(a.backend, a.db, "SELECT COUNT(*) FROM devices")[0]
    meta["devices_in_table"] = int(count)
    with open(os.path.join(a.out, "growth.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps({"devices_in_table": int(count), "sessions": len(rows.sessions)}))


class Rearm:
    """Puts the untrust targets back (trusted, sessions live) between batches,
    outside the timed requests. PostgreSQL: one long-lived psql."""

    def __init__(self, backend, db, targets, trust_until):
        self.backend, self.db = backend, db
        id_list = ", ".join(f"'{t}'" for t in targets)
        if backend == "sqlite":
            true = "1"
        else:
            true = "TRUE"
        self.sql = (f"UPDATE devices SET is_trusted = {true}, trust_level = 'HIGH', "
                    f"trust_expires_at = '{trust_until}' WHERE id IN ({id_list}); "
                    f"UPDATE sessions SET revoked_at = NULL WHERE device_id IN ({id_list});")
        if backend == "sqlite":
            self.conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        else:
            self.proc = subprocess.Popen(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", db],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self):
        if self.backend == "sqlite":
            self.conn.executescript("BEGIN IMMEDIATE; " + self.sql + " COMMIT;")
            return
        # VACUUM as well: thousands of updates of the same few rows would
        # otherwise pile up dead tuples faster than autovacuum clears them,
        # and the 10-row table (scanned sequentially by the planner) would
        # slow down with them; both sizes get the same treatment.
        self.proc.stdin.write(self.sql + "\nVACUUM devices; VACUUM sessions;\nSELECT 'rearmed';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != "rearmed":
            sys.exit(f"bench.py: re-arming the untrust targets failed ({line!r})")

    def close(self):
        if self.backend == "sqlite":
            self.conn.close()
        else:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class Target:
    """One server of the growth pair (small or large table) and its data."""

    def __init__(self, backend, db, port, out):
        with open(os.path.join(out, "growth.json")) as f:
            self.meta = json.load(f)
        self.backend, self.db = backend, db
        self.headers = {"Authorization": f"Bearer {self.meta['token']}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.rearm = Rearm(backend, db, self.meta["targets"], self.meta["trust_until"])
        self.lat = {"list": [], "untrust": []}
        self.errors = {"list": 0, "untrust": 0}

    def call(self, key, method, path):
        start = time.perf_counter()
        self.conn.request(method, path, body=b"" if method == "POST" else None, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
        if key:
            self.lat[key].append(elapsed)
            self.errors[key] += response.status != 200
        return response.status

    def list_block(self, n):
        for _ in range(n):
            self.call("list", "GET", "/devices")

    def untrust_block(self):
        self.rearm()  # untimed: the 9 targets trusted again, 2 live sessions each
        for target in self.meta["targets"]:
            self.call("untrust", "POST", f"/devices/{target}/untrust")

    def check(self):
        false = "0" if self.backend == "sqlite" else "FALSE"
        id_list = ", ".join(f"'{t}'" for t in self.meta["targets"])
        untrusted, live = query_one(self.backend, self.db, f"""
            SELECT (SELECT COUNT(*) FROM devices WHERE id IN ({id_list}) AND is_trusted = {false}),
                   (SELECT COUNT(*) FROM sessions WHERE device_id IN ({id_list}) AND revoked_at IS NULL)""")
        return {"untrusted": int(untrusted), "live_sessions": int(live),
                "ok": int(untrusted) == len(self.meta["targets"]) and int(live) == 0}

    def summary(self):
        out = {"devices_in_table": self.meta["devices_in_table"]}
        for key, lat in self.lat.items():
            lat.sort()
            out[key] = {"p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
                        "requests": len(lat), "errors": self.errors[key]}
        out["untrust_check"] = self.check()
        self.rearm.close()
        self.conn.close()
        return out


def cmd_growth_drive(a):
    """Both servers run at once; blocks of requests alternate between them in
    ABBA order, so that whatever else the machine does at the time weighs on
    both sizes alike and the ratio stays meaningful on a busy machine."""
    small = Target(a.backend, a.small_db, a.small_port, a.small_out)
    large = Target(a.backend, a.large_db, a.large_port, a.large_out)
    block = len(small.meta["targets"])
    for t in (small, large):  # warm-up, untimed: connections, caches, prepared statements
        for _ in range(100):
            t.call(None, "GET", "/devices")
    blocks = -(-a.requests // block)
    for i in range(blocks):
        order = (small, large) if i % 2 == 0 else (large, small)
        for t in order:
            t.list_block(block)
        for t in order:
            t.untrust_block()
    print(json.dumps({"small": small.summary(), "large": large.summary()}))


# ---------------------------------------------------------------------------
# volume: the growth row of issue 20 (1,000,000 security events and 100,000
# users vs one user), and the expired events of the retention row
# ---------------------------------------------------------------------------

EVENT_COLUMNS = [
    "id", "user_id", "event_type", "occurred_at", "device_id", "device_name", "session_id",
    "revoked_session_count", "actor_session_id", "ip_address", "user_agent", "actor_service",
]
EVENT_TYPES = ["SESSION_STARTED", "DEVICE_TRUSTED", "DEVICE_UNTRUSTED", "SESSION_REVOKED", "DEVICE_RENAMED"]
VOLUME_USER = "volume-user-000000"
VOLUME_DEVICES = 10          # the measured user's devices (2 sessions each)
VOLUME_OTHER_DEVICES = 3     # every other user's devices (1 session each)


def event_rows(rng, users, count, newest, oldest_days):
    """`count` events of `users` (a list, picked at random, or one user
    repeated), at random microseconds between `newest` and `oldest_days`
    before it; as lists in EVENT_COLUMNS order with the stored formats."""
    span_us = int(oldest_days * 24 * 3600 * 1e6)
    getrandbits, randrange = rng.getrandbits, rng.randrange
    n_users = len(users)
    for i in range(count):
        user = users[randrange(n_users)] if n_users > 1 else users[0]
        at = newest - timedelta(microseconds=randrange(span_us))
        event_type = EVENT_TYPES[i % len(EVENT_TYPES)]
        yield [str(uuid.UUID(int=getrandbits(128), version=4)), user, event_type, ts(at),
               None, None, None, 1 if event_type == "DEVICE_UNTRUSTED" else 0,
               None, "198.51.100.7", "Mozilla/5.0 (bench)", None]


def load_events(backend, db, rows):
    """Streams event rows into security_events: one transaction of
    executemany on SQLite, `\\copy ... FROM STDIN` (+ ANALYZE) on PostgreSQL."""
    if backend == "sqlite":
        conn = sqlite_bulk_connection(db)
        with conn:
            conn.executemany(
                f"INSERT INTO security_events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", rows)
        conn.close()
        return
    proc = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", db, "-c",
         f"\\copy security_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = csv.writer(proc.stdin)
    for row in rows:
        writer.writerow(row)
    proc.stdin.close()
    err = proc.stderr.read()
    if proc.wait() != 0:
        sys.exit(f"bench.py: psql \\copy of security_events failed: {err.strip()}")
    psql(db, "-c", "ANALYZE security_events;")


def cmd_volume_seed(a):
    """The measured user (VOLUME_DEVICES devices x 2 sessions, --user-events
    events) and --users - 1 others (VOLUME_OTHER_DEVICES devices x 1 session
    each) sharing the rest of --events. Events are within the last 80 days,
    so that the server's retention (90 days by default) keeps them all."""
    started = time.time()
    rng = random.Random(11)
    now = utcnow()
    expires = now + timedelta(days=1)
    iat, exp = time.time() - 60, expires.replace(tzinfo=timezone.utc).timestamp()
    rows = Rows(now, rng)
    ids = [rows.device(VOLUME_USER, d, trusted=True) for d in range(VOLUME_DEVICES)]
    sids = [[rows.session(VOLUME_USER, i, expires) for _ in range(2)] for i in ids]
    others = [f"volume-user-{u:06d}" for u in range(1, a.users)]
    for user in others:
        for d in range(VOLUME_OTHER_DEVICES):
            rows.session(user, rows.device(user, d, trusted=(d == 0)), expires)
    load(a.backend, a.db, rows, a.out)
    user_events = min(a.user_events, a.events)
    # A generator of its own: the measured user's events (ids and ages) are
    # the same in both data sets, whatever else each holds.
    load_events(a.backend, a.db, event_rows(random.Random(17), [VOLUME_USER], user_events, now, 80))
    if others and a.events > user_events:
        load_events(a.backend, a.db, event_rows(rng, others, a.events - user_events, now, 80))
    events, users = query_one(a.backend, a.db,
                              "SELECT (SELECT COUNT(*) FROM security_events), "
                              "(SELECT COUNT(DISTINCT user_id) FROM devices)")
    meta = {"user": VOLUME_USER, "token": mint(a.secret, VOLUME_USER, sids[0][0], iat, exp),
            "user_events": user_events, "events_in_table": int(events), "users": int(users),
            "devices": len(rows.devices), "sessions": len(rows.sessions),
            "seed_s": round(time.time() - started, 1)}
    with open(os.path.join(a.out, "volume.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps({k: v for k, v in meta.items() if k != "token"}))


def cmd_expired_seed(a):
    """--events events older than --older-than-days (up to a year more), spread
    over the users of `seed` (bench-user-*): the backlog the retention row
    prunes."""
    started = time.time()
    rng = random.Random(13)
    newest = utcnow() - timedelta(days=a.older_than_days)
    users = [f"bench-user-{u:05d}" for u in range(a.users)]
    load_events(a.backend, a.db, event_rows(rng, users, a.events, newest, 365))
    print(json.dumps({"expired_events": a.events, "seed_s": round(time.time() - started, 1)}))


def cmd_expired_count(a):
    """Events older than --older-than-days, and all events: after the prune."""
    cutoff = ts(utcnow() - timedelta(days=a.older_than_days))
    expired, total = query_one(a.backend, a.db,
                               f"SELECT (SELECT COUNT(*) FROM security_events WHERE occurred_at < '{cutoff}'), "
                               f"(SELECT COUNT(*) FROM security_events)")
    print(json.dumps({"expired": int(expired), "events": int(total)}))


class VolumeTarget:
    """One server of the volume pair (one user / the full data set)."""

    KEYS = ("current", "list", "events-first", "events-deep")

    def __init__(self, port, out):
        with open(os.path.join(out, "volume.json")) as f:
            self.meta = json.load(f)
        self.headers = {"Authorization": f"Bearer {self.meta['token']}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.lat = {k: [] for k in self.KEYS}
        self.errors = {k: 0 for k in self.KEYS}
        self.deep_path = None

    def get(self, path):
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def find_deep_page(self, page):
        """Follows nextCursor (untimed) to page `page` (1 = the first)."""
        path = "/security-events"
        for n in range(1, page):
            status, body = self.get(path)
            cursor = json.loads(body).get("nextCursor") if status == 200 else None
            if not cursor:
                sys.exit(f"bench.py: page {n} of /security-events: status {status}, no nextCursor "
                         f"(the user has {self.meta['user_events']} events; raise --volume-user-events)")
            path = f"/security-events?cursor={cursor}"
        status, body = self.get(path)
        events = json.loads(body).get("events", []) if status == 200 else []
        if status != 200 or not events:
            sys.exit(f"bench.py: page {page} of /security-events: status {status}, {len(events)} events")
        self.deep_path = path
        self.deep_first_event = events[0]["id"]

    def block(self, key, n):
        path = {"current": "/sessions/current", "list": "/devices", "events-first": "/security-events",
                "events-deep": self.deep_path}[key]
        for _ in range(n):
            start = time.perf_counter()
            status, _ = self.get(path)
            self.lat[key].append(time.perf_counter() - start)
            self.errors[key] += status != 200

    def summary(self):
        out = {"events_in_table": self.meta["events_in_table"], "users": self.meta["users"],
               "user_events": self.meta["user_events"], "seed_s": self.meta["seed_s"]}
        for key, lat in self.lat.items():
            lat.sort()
            out[key] = {"p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
                        "requests": len(lat), "errors": self.errors[key]}
        self.conn.close()
        return out


def cmd_volume_drive(a):
    """As growth-drive: both servers at once, blocks of 10 requests of one
    operation alternating between them in ABBA order."""
    small, large = VolumeTarget(a.small_port, a.small_out), VolumeTarget(a.large_port, a.large_out)
    for t in (small, large):
        t.find_deep_page(a.deep_page)
    if small.deep_first_event != large.deep_first_event:
        sys.exit("bench.py: the deep pages of the two servers differ (the measured user's events should be alike)")
    for t in (small, large):  # warm-up, untimed
        for key in VolumeTarget.KEYS:
            t.block(key, 20)
        t.lat = {k: [] for k in VolumeTarget.KEYS}
        t.errors = {k: 0 for k in VolumeTarget.KEYS}
    block = 10
    for i in range(-(-a.requests // block)):
        order = (small, large) if i % 2 == 0 else (large, small)
        for key in VolumeTarget.KEYS:
            for t in order:
                t.block(key, block)
    print(json.dumps({"deep_page": a.deep_page, "small": small.summary(), "large": large.summary()}))


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

SCENARIOS = {
    "healthz": "GET /healthz",
    "current": "GET /sessions/current",
    "list": "GET /devices",
    "get": "GET /devices/{id}",
    "untrust": "POST /devices/{id}/untrust",
    "heartbeat": "POST /sessions/{id}/heartbeat",
    "untrust-alt": "POST /devices/{id}/untrust, GROUP_COMMIT=%s",
    "heartbeat-alt": "POST /sessions/{id}/heartbeat, GROUP_COMMIT=%s",
}

# Issue 8's targets: (label, value function, target text, met function).
def targets(kind, by, hwm_kb):
    def rps(name):
        return by[name]["rps"] if name in by else float("nan")
    def p99(name):
        return by[name]["p99_us"] / 1000 if name in by else float("nan")
    ceiling = rps("healthz")
    rows = []
    def row(label, value, shown, target, met):
        rows.append([label, shown, target, "yes" if met else "NO"])
    if kind == "sqlite":
        v = rps("list") / ceiling
        row("GET /devices / healthz", v, f"{v:.3f}", ">= 0.40", v >= 0.40)
        v = rps("get") / ceiling
        row("GET /devices/{id} / healthz", v, f"{v:.3f}", ">= 0.35", v >= 0.35)
        v = p99("list")
        row("GET /devices p99", v, f"{v:.2f} ms", "< 5 ms", v < 5)
        for name in ("untrust", "heartbeat"):
            v = rps(name) / rps(f"{name}-alt")
            row(f"{name} req/s / same run GROUP_COMMIT=off", v,
                f"{v:.2f} ({rps(name):.0f} / {rps(name + '-alt'):.0f})", ">= 5", v >= 5)
        for name in ("untrust", "heartbeat"):
            v = p99(name)
            row(f"{name} p99", v, f"{v:.2f} ms", "< 15 ms", v < 15)
        v = rps("heartbeat") * 60
        row("live clients: heartbeat req/s x 60", v, f"{v:,.0f}", ">= 1,000,000", v >= 1_000_000)
    else:
        v = rps("list") / ceiling
        row("GET /devices / healthz", v, f"{v:.3f}", ">= 0.20", v >= 0.20)
        # The default (auto) is off on PostgreSQL: the current design.
        for name in ("untrust", "heartbeat"):
            v = rps(f"{name}-alt") / rps(name)
            row(f"{name} req/s, GROUP_COMMIT=on / off (default)", v,
                f"{v:.2f} ({rps(name + '-alt'):.0f} / {rps(name):.0f})", ">= 2", v >= 2)
        v = rps("heartbeat") * 60
        row("live clients: heartbeat req/s x 60", v, f"{v:,.0f}", "(info)", True)
    v = hwm_kb / 1024
    row("RSS peak, whole bench (VmHWM, every server)", v, f"{v:.1f} MiB", "< 64 MB", v * 1.048576 < 64)
    return rows


def table(headers, rows, aligns):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    def fmt(cells):
        out = []
        for cell, width, align in zip(cells, widths, aligns):
            out.append(str(cell).ljust(width) if align == "<" else str(cell).rjust(width))
        return "  ".join(out).rstrip()
    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def cmd_report(a):
    with open(a.results) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if a.kind == "growth":
        rows = []
        for r in records:
            s_, l_ = r["small"], r["large"]
            for key in ("list", "untrust"):
                sm, lg = s_[key], l_[key]
                ratio = lg["p50_ms"] / sm["p50_ms"] if sm["p50_ms"] else float("nan")
                rows.append([r["db"], SCENARIOS[key], f"{sm['p50_ms']:.3f}", f"{lg['p50_ms']:.3f}",
                             f"{ratio:.2f}", f"{sm['p99_ms']:.3f}", f"{lg['p99_ms']:.3f}",
                             sm["requests"], sm["errors"] + lg["errors"]])
        small_n = records[0]["small"]["devices_in_table"]
        large_n = records[0]["large"]["devices_in_table"]
        print(table(["database", "scenario", f"p50 ms @{small_n}", f"p50 ms @{large_n}",
                     f"p50 ratio {large_n}/{small_n}", f"p99 ms @{small_n}", f"p99 ms @{large_n}",
                     "requests each", "non-2xx"],
                    rows, "<<>>>>>>>"))
        return
    if a.kind == "volume":
        report_volume(records)
        return
    if a.kind == "retention":
        report_retention(records)
        return
    meta = records[0]
    scenario_records = [r for r in records[1:] if r.get("scenario")]
    for r in scenario_records:
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    ceiling = next((r["rps"] for r in scenario_records if r["scenario"] == "healthz"), None)
    # The floor's run of each scenario (bench/floor); the -alt rows compare
    # with the floor's run of the same operation.
    floor = {}
    if a.floor_results:
        with open(a.floor_results) as f:
            for line in f:
                r = json.loads(line) if line.strip() else {}
                if r.get("scenario"):
                    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
                    floor[r["scenario"]] = r
    pg = a.db_kind == "postgres"
    rows = []
    for r in scenario_records:
        ratio = f"{r['rps'] / ceiling:.3f}" if ceiling else "-"
        errors = r["err_status"] + r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
        label = SCENARIOS[r["scenario"]]
        if "%s" in label:
            label = label % a.alt
        # The server's own CPU time (user + system, /proc/PID/stat) per answered request:
        # what a request costs the server, apart from wrk and the loopback.
        cpu = per_request(r, "cpu_s")
        row = [label, f"{r['rps']:.0f}", f"{r['p50_us'] / 1000:.2f}",
               f"{r['p99_us'] / 1000:.2f}", f"{r['max_us'] / 1000:.0f}", errors, ratio,
               cpu, r["requests"], f"{r['rss_kb'] / 1024:.1f}"]
        if pg:
            # PostgreSQL's processes (backends, WAL writer, ...) per answered request:
            # the database's share of the two cores, which the server's CPU does not show.
            row += [per_request(r, "db_cpu_s")]
        if a.floor_results:
            f = floor.get(r["scenario"].removesuffix("-alt"))
            if f:
                f_errors = f["err_status"] + f["err_connect"] + f["err_read"] + f["err_write"] + f["err_timeout"]
                row += [f"{r['rps'] / f['rps']:.2f}", f"{f['rps']:.0f}", f"{f['p99_us'] / 1000:.2f}", f_errors,
                        per_request(f, "cpu_s")]
                if pg:
                    row += [per_request(f, "db_cpu_s")]
            else:
                row += ["-"] * (6 if pg else 5)
        rows.append(row)
    headers = ["scenario", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx+err", "rps / healthz",
               "server CPU us/req", "requests", "RSS after MiB"]
    if pg:
        headers += ["postgres CPU us/req"]
    if a.floor_results:
        headers += ["÷ floor", "floor req/s", "floor p99 ms", "floor non-2xx+err", "floor CPU us/req"]
        if pg:
            headers += ["floor's postgres CPU us/req"]
    print(table(headers, rows, "<" + ">" * (len(headers) - 1)))
    ends = [r for r in records if "hwm_kb" in r]
    end = ends[0]
    hwm = max(r["hwm_kb"] for r in ends)
    print(f"server RSS: {meta['rss_start_kb'] / 1024:.1f} MiB at start (seeded, before load), "
          f"{end['rss_end_kb'] / 1024:.1f} MiB at end; peak (VmHWM) {end['hwm_kb'] / 1024:.1f} MiB"
          + (f"; GROUP_COMMIT={a.alt} server's peak {ends[1]['hwm_kb'] / 1024:.1f} MiB" if len(ends) > 1 else ""))
    if a.db_kind:
        by = {r["scenario"]: r for r in scenario_records}
        print()
        print(f"issue 8 targets ({a.db_kind}):")
        print(table(["figure", "this run", "target", "met"], targets(a.db_kind, by, hwm), "<>><"))


def per_request(record, key):
    """CPU seconds of `key` in a scenario's record, in µs per answered request."""
    seconds, requests = record.get(key), record.get("requests")
    return f"{seconds * 1e6 / requests:.0f}" if seconds is not None and requests else "-"


VOLUME_SCENARIOS = {
    "current": "GET /sessions/current",
    "list": "GET /devices",
    "events-first": "GET /security-events, first page",
    "events-deep": "GET /security-events, page %d",
}
VOLUME_TARGET = 1.2    # issue 20: large p50 within 1.2x of small p50
RETENTION_TARGET = 2.0  # issue 20: heartbeat p99 during the prune <= 2x without


def met(ok):
    return "met" if ok else "not met"


def report_volume(records):
    rows = []
    for r in records:
        sm_, lg_ = r["small"], r["large"]
        for key, label in VOLUME_SCENARIOS.items():
            sm, lg = sm_[key], lg_[key]
            ratio = lg["p50_ms"] / sm["p50_ms"] if sm["p50_ms"] else float("nan")
            rows.append([r["db"], label % r["deep_page"] if "%d" in label else label,
                         f"{sm['p50_ms']:.3f}", f"{lg['p50_ms']:.3f}", f"{ratio:.2f}",
                         f"<= {VOLUME_TARGET}", met(ratio <= VOLUME_TARGET),
                         f"{sm['p99_ms']:.3f}", f"{lg['p99_ms']:.3f}", sm["requests"], sm["errors"] + lg["errors"]])
    print(table(["database", "scenario", "p50 ms small", "p50 ms large", "ratio", "target", "met",
                 "p99 ms small", "p99 ms large", "requests each", "non-2xx"], rows, "<<>>>><>>>>"))
    for r in records:
        sm_, lg_ = r["small"], r["large"]
        print(f"{r['db']}: small {sm_['users']} user, {sm_['events_in_table']:,} events (seeded in {sm_['seed_s']} s); "
              f"large {lg_['users']:,} users, {lg_['events_in_table']:,} events (seeded in {lg_['seed_s']} s); "
              f"the measured user has {sm_['user_events']:,} events in both")


def report_retention(records):
    rows = []
    for r in records:
        base, prune = r["baseline"], r["prune"]
        ratio = prune["p99_us"] / base["p99_us"] if base["p99_us"] else float("nan")
        failed = sum(x[k] for x in (base, prune)
                     for k in ("err_status", "err_connect", "err_read", "err_write", "err_timeout"))
        failed_prune = sum(prune[k] for k in ("err_status", "err_connect", "err_read", "err_write", "err_timeout"))
        rows.append([r["db"], "heartbeat p99 during prune / without",
                     f"{ratio:.2f} ({prune['p99_us'] / 1000:.2f} / {base['p99_us'] / 1000:.2f} ms)",
                     f"<= {RETENTION_TARGET:g}", met(ratio <= RETENTION_TARGET)])
        rows.append([r["db"], "failed requests during prune (non-2xx + socket errors)",
                     f"{failed_prune} of {prune['requests']:,}"
                     + (f" (+{failed - failed_prune} without prune)" if failed != failed_prune else ""),
                     "0", met(failed == 0)])
    print(table(["database", "figure", "this run", "target", "met"], rows, "<<><<"))
    for r in records:
        base, prune, p = r["baseline"], r["prune"], r["pruned"]
        rps = lambda x: x["requests"] / (x["duration_us"] / 1e6)
        print(f"{r['db']}: pruned {p['deleted']:,} expired events in {p['prune_s']:.1f} s "
              f"(server start to its retention log line; heartbeats measured over the last {prune['duration_us'] / 1e6:.1f} s "
              f"of it); left: {p['expired_left']} expired, {p['events_left']:,} events; "
              f"heartbeat req/s {rps(prune):.0f} during, {rps(base):.0f} without; "
              f"p50 {prune['p50_us'] / 1000:.2f} / {base['p50_us'] / 1000:.2f} ms; "
              f"max {prune['max_us'] / 1000:.0f} / {base['max_us'] / 1000:.0f} ms; "
              f"server log: {p['log_problems']} ERROR/WARN lines")


def cmd_webhook_lag(a):
    """The delivery lags of the webhooks scenario, from the sink's access log (nginx, one
    line per delivery: arrival epoch seconds and webhook-id) and the events' occurredAt in
    the database. Writes {"deliveries", "events", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"}
    to --out."""
    arrivals = []  # (arrival epoch seconds, webhook-id)
    with open(a.log) as log:
        for line in log:
            at, _, wid = line.strip().partition(" ")
            if wid and wid != "-":
                arrivals.append((float(at), wid))
    if a.backend == "sqlite":
        conn = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True, timeout=30)
        occurred = {i: datetime.fromisoformat(t).replace(tzinfo=timezone.utc).timestamp()
                    for i, t in conn.execute("SELECT id, occurred_at FROM security_events")}
        conn.close()
    else:
        # A `timestamp` (UTC by the server's convention): epoch read as UTC.
        rows = psql(a.db, "-F", " ", "-c", "SELECT id, extract(epoch FROM occurred_at) FROM security_events")
        occurred = {i: float(t) for i, t in (r.split(" ") for r in rows.splitlines() if r)}
    lags = sorted(max(0.0, at - occurred[wid]) for at, wid in arrivals if wid in occurred)
    with open(a.out, "w") as out:
        json.dump({"deliveries": len(arrivals), "events": len({w for _, w in arrivals}),
                   "lag_p50_ms": percentile(lags, 50) * 1000, "lag_p99_ms": percentile(lags, 99) * 1000,
                   "lag_max_ms": (lags[-1] if lags else 0.0) * 1000}, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("seed")
    s.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    s.add_argument("--db", required=True, help="SQLite file path or postgres:// URL")
    s.add_argument("--users", type=int, required=True)
    s.add_argument("--devices", type=int, required=True)
    s.add_argument("--sessions", type=int, required=True)
    s.add_argument("--pool", type=int, required=True)
    s.add_argument("--pool-off", type=int, default=0,
                   help="of the pool, the devices kept for the GROUP_COMMIT=off baseline")
    s.add_argument("--secret", required=True)
    s.add_argument("--out", required=True)

    v = sub.add_parser("verify-untrust")
    v.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    v.add_argument("--db", required=True)
    v.add_argument("--pool-ids", required=True)
    v.add_argument("--result", required=True, help="file with wrk's BENCH_RESULT json")
    v.add_argument("--connections", type=int, required=True)

    g = sub.add_parser("growth-seed")
    g.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    g.add_argument("--db", required=True)
    g.add_argument("--size", type=int, required=True)
    g.add_argument("--secret", required=True)
    g.add_argument("--out", required=True)

    d = sub.add_parser("growth-drive")
    d.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    d.add_argument("--requests", type=int, required=True)
    for size in ("small", "large"):
        d.add_argument(f"--{size}-db", required=True)
        d.add_argument(f"--{size}-port", type=int, required=True)
        d.add_argument(f"--{size}-out", required=True)

    vs = sub.add_parser("volume-seed")
    vs.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    vs.add_argument("--db", required=True)
    vs.add_argument("--users", type=int, required=True, help="users in all, the measured one included")
    vs.add_argument("--events", type=int, required=True, help="events in all")
    vs.add_argument("--user-events", type=int, required=True, help="of them, the measured user's")
    vs.add_argument("--secret", required=True)
    vs.add_argument("--out", required=True)

    vd = sub.add_parser("volume-drive")
    vd.add_argument("--requests", type=int, required=True)
    vd.add_argument("--deep-page", type=int, required=True)
    for size in ("small", "large"):
        vd.add_argument(f"--{size}-port", type=int, required=True)
        vd.add_argument(f"--{size}-out", required=True)

    es = sub.add_parser("expired-seed")
    es.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    es.add_argument("--db", required=True)
    es.add_argument("--users", type=int, required=True, help="the users of `seed` (bench-user-*)")
    es.add_argument("--events", type=int, required=True)
    es.add_argument("--older-than-days", type=int, required=True)

    ec = sub.add_parser("expired-count")
    ec.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    ec.add_argument("--db", required=True)
    ec.add_argument("--older-than-days", type=int, required=True)

    w = sub.add_parser("webhook-lag")
    w.add_argument("--log", required=True)
    w.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--out", required=True)

    r = sub.add_parser("report")
    r.add_argument("--kind", choices=["scenarios", "growth", "volume", "retention"], required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--db-kind", choices=["sqlite", "postgres"], help="print issue 8's targets for this database")
    r.add_argument("--alt", default="off", help="the GROUP_COMMIT mode of the -alt scenarios")
    r.add_argument("--floor-results", help="the floor's results of the same scenarios: adds the ÷ floor columns")

    a = p.parse_args()
    {"seed": cmd_seed, "verify-untrust": cmd_verify_untrust, "growth-seed": cmd_growth_seed,
     "growth-drive": cmd_growth_drive, "volume-seed": cmd_volume_seed, "volume-drive": cmd_volume_drive,
     "expired-seed": cmd_expired_seed, "expired-count": cmd_expired_count,
     "webhook-lag": cmd_webhook_lag, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
