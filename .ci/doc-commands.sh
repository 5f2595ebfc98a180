#!/usr/bin/env bash
# The commands of README.md and docs/*.md, run as a newcomer copies them.
#
# The convention (docs/building.md, "Commands in these documents"), by the
# info string of a fenced block:
#   ```sh runnable          run here as written: bash -e -o pipefail, in a fresh
#                           directory that sees the checkout (below), 90 s at most
#   ```sh runnable serves   the same, but its last command serves on
#                           127.0.0.1:8080: it runs until /healthz answers,
#                           then it is stopped (SIGTERM) and must exit cleanly
#   ```sh                   not run here: each of its commands must be listed
#                           in COVERED below with the CI step that runs it
#                           (or says why it cannot run in CI as written)
#   ```python runnable      a webhook receiver (docs/webhooks.md): run as written
#                           with standardwebhooks from clients/webhooks/requirements.txt,
#                           as the receiver of a real server's deliveries
# Other fences (text, yaml, nginx, http, python, ...) are not commands.
#
# A block runs in target/doc-commands/<file>-<line>/, which holds a symlink
# to every top-level entry of the checkout except Cargo.toml and Cargo.lock:
# relative paths (target/release/..., .ci/..., openapi/...) resolve as at the
# root of a clone, cargo walks up to the real manifest (so nothing is
# rebuilt), and the files a command creates (a SQLite database, a secret)
# land in that fresh directory. The server's settings (the variables of the
# README's Configuration table) are removed from the environment first.
#
# Besides the blocks: `cargo run --release` of "Two commands" is served in a
# fresh directory and the README's Swagger UI walkthrough is replayed over
# HTTP with the demo token it prints, step by step; and every relative link
# and #anchor of these files must resolve.
#
# Needs the release binary (`cargo build --release --locked`, CI's step
# before this one), openssl and, for the PostgreSQL block, PostgreSQL
# on 127.0.0.1:5432 with trust authentication (as CI starts it). Fails with
# the file and line of the block that failed and the end of its output.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x target/release/flashback-devices ]] || {
  echo "error: target/release/flashback-devices is missing: run cargo build --release --locked first" >&2
  exit 1
}

exec python3 - "$@" <<'PYTHON'
import json, os, re, shutil, signal, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

REPO = Path.cwd()
FILES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
WORK = REPO / "target" / "doc-commands"
SHELLS = {"sh", "bash", "shell", "console"}
BLOCK_TIMEOUT = 90
PORT = 8080

# Commands of the documents that this step does not run, each with the CI
# step of .ci/run that runs it ("exactly": that very command) or why it cannot
# run in CI as written and what covers it instead. A command in an unmarked
# block that is not listed here fails the step: mark the block runnable, or
# add it here with its reason.
COVERED = {
    # README, "Two commands"
    "cargo run --release": "this step: served in a fresh directory until /healthz answers, and the Swagger UI walkthrough replayed against it (below)",
    "cargo test": 'exactly, with --locked: .ci/run step "tests (SQLite and PostgreSQL): cargo test --locked" (TEST_POSTGRES_URL exported, so PostgreSQL too)',
    "TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test": 'exactly, with --locked: .ci/run step "tests (SQLite and PostgreSQL)", which exports this TEST_POSTGRES_URL',
    # README "What building needs", docs/building.md
    "apt-get install libpq-dev pkg-config": '.ci/run step "system packages" (apt-get install of these and the other packages CI needs, when missing)',
    "cargo run --release --features bundled-postgres": 'not as written (a release build of the bundled C libraries costs 12-20 min of CI): .ci/run step "bundled-postgres" builds the same features in the debug profile, checks with ldd that no system libpq/libssl is linked, and migrates over sslmode=require',
    "cargo test --features bundled-postgres": 'not as written (a second full test build): .ci/run step "bundled-postgres" (see above); the tests run with the system libpq',
    # docs/evolving-the-spec.md
    "bash .ci/spec-compat.sh": 'exactly: .ci/run step "spec compatibility"',
    # docs/clients.md
    "bash .ci/schemathesis.sh": 'exactly: .ci/run step "schemathesis against the running server"',
    "MAX_EXAMPLES=1000 SCHEMATHESIS_SEED=random bash .ci/schemathesis.sh": "not as written (a longer, random exploration: minutes, and not reproducible); the same script runs with its defaults in the schemathesis step",
    "bash .ci/lint-spec.sh": 'exactly: .ci/run step "spec lint"',
    "bash .ci/clients.sh": 'exactly: .ci/run step "generator matrix ..."',
    # docs/building.md
    "bash .ci/doc-commands.sh": 'exactly: .ci/run step "commands of README.md and docs/" (this script)',
}
# The generators, Prism and the by-hand round trip of docs/clients.md: the
# same tools at the same pinned versions, run by .ci/clients.sh from the
# lockfiles of clients/ (npm ci, pip -r) against a live server; as written
# they would install from the registries with no lockfile, and the by-hand
# block needs npm, Python 3.11 and Chromium.
CLIENTS = 'not as written: .ci/run step "generator matrix" (.ci/clients.sh) runs the same tools at the same pinned versions from the lockfiles of clients/, against a live server'
for prefix in ("curl -fsS http://127.0.0.1:8080/api-docs/", "npx ", "pip install openapi-python-client",
               "FLASHBACK_OPENAPI_3_0=", "cargo build --release --locked", "export ", "target/release/flashback-devices ",
               "BIND_ADDR=127.0.0.1:8080 target/release/flashback-devices serve &", "(cd clients/", "python3.11 -m venv",
               "target/clients/venv/bin/pip", "PATH=$PWD/target/clients/venv/bin:$PATH openapi-python-client",
               "PYTHONPATH=target/clients/python-client"):
    COVERED["prefix:" + prefix] = CLIENTS
COVERED_ONLY_IN = {"prefix:" + p: "docs/clients.md" for p in (
    "curl -fsS http://127.0.0.1:8080/api-docs/", "npx ", "pip install openapi-python-client", "FLASHBACK_OPENAPI_3_0=",
    "cargo build --release --locked", "export ", "target/release/flashback-devices ",
    "BIND_ADDR=127.0.0.1:8080 target/release/flashback-devices serve &", "(cd clients/", "python3.11 -m venv",
    "target/clients/venv/bin/pip", "PATH=$PWD/target/clients/venv/bin:$PATH openapi-python-client",
    "PYTHONPATH=target/clients/python-client")}

# Set up and torn down around the runnable command that needs them.
POSTGRES = ["-h", "127.0.0.1", "-U", "postgres"]
NEEDS = {
    "createdb -h 127.0.0.1 -U postgres flashback": (
        lambda: require(not pg_database_exists("flashback"),
                        "PostgreSQL already has a database `flashback`, which the block creates: drop it or run this elsewhere"),
        lambda: subprocess.run(["dropdb", *POSTGRES, "--if-exists", "--force", "flashback"], check=False),
    ),
}

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")
    print(f"FAILED {where}: {message}", file=sys.stderr, flush=True)


def require(condition, message):
    if not condition:
        raise RuntimeError(message)


def pg_database_exists(name):
    out = subprocess.run(["psql", *POSTGRES, "-d", "postgres", "-qAtc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip() == "1"


def blocks(path):
    """(first line of the body, info words, body lines) of each fenced block."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, info = m.group(1), m.group(2).split()
        body, start = [], i + 2
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        yield start, info, body


def commands(body, start):
    """(line, command) per command: continuations joined, comments dropped."""
    out, pending, first = [], "", None
    for n, line in enumerate(body, start):
        text = line.rstrip()
        if not pending and (not text.strip() or text.lstrip().startswith("#")):
            continue
        if first is None:
            first = n
        if text.endswith("\\"):
            pending += text[:-1].strip() + " "
            continue
        full = pending + text.strip()
        full = re.sub(r"\s+#\s.*$", "", full).strip()
        out.append((first, full))
        pending, first = "", None
    return out


def covered(cmd, rel):
    if cmd in COVERED:
        return COVERED[cmd]
    for key, why in COVERED.items():
        if key.startswith("prefix:") and cmd.startswith(key[7:]) and COVERED_ONLY_IN.get(key, rel) == rel:
            return why
    return None


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    out, fence = set(), False
    for line in path.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#{1,6} (.*)$", line)):
            base = slug(m.group(1))
            name, k = base, 1
            while name in out:
                name, k = f"{base}-{k}", k + 1
            out.add(name)
    return out


def check_links(path):
    rel = path.relative_to(REPO)
    fence = False
    for n, line in enumerate(path.read_text().split("\n"), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                fail(f"{rel}:{n}", f"link to {target}: {file} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                fail(f"{rel}:{n}", f"link to {target}: no heading with the anchor #{anchor} in {dest.relative_to(REPO)}")


def config_variables():
    """The variables of the README's Configuration table."""
    names, inside = set(), False
    for line in (REPO / "README.md").read_text().split("\n"):
        if line.startswith("## "):
            inside = line.strip() == "## Configuration"
        elif inside and line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    require(len(names) > 10, "the README's Configuration table was not found")
    return names


def environment():
    env = {k: v for k, v in os.environ.items() if k not in config_variables()}
    env["PATH"] = os.environ["PATH"]
    return env


def fresh_dir(name):
    d = WORK / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name not in ("Cargo.toml", "Cargo.lock", ".git"):
            (d / entry.name).symlink_to(entry)
    return d


def port_free():
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", PORT)) != 0


def http(method, path, token=None, expect=200):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    require(status == expect, f"{method} {path} answered {status}, not {expect}: {body[:300]!r}")
    return json.loads(body) if body[:1] == b"{" else body


def healthy():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError("did not stop within 15 s of SIGTERM")
    # The server is in the block's process group and got the SIGTERM too:
    # wait for it to let go of the port before the next block serves on it.
    deadline = time.monotonic() + 15
    while not port_free():
        require(time.monotonic() < deadline, f"port {PORT} still in use 15 s after SIGTERM")
        time.sleep(0.2)


def tail(log):
    text = log.read_text(errors="replace").rstrip().split("\n")
    return "\n".join("    | " + l for l in text[-40:])


def run_block(where, name, script, serves, on_ready=None):
    """Runs one block; on failure records it with the end of its output."""
    d = fresh_dir(name)
    (d / "block.sh").write_text(script + "\n")
    log = d / "output.log"
    print(f"\n--- {where}{' (serves)' if serves else ''}\n{script}", flush=True)
    if serves and not port_free():
        fail(where, f"port {PORT} is in use: the block serves on it")
        return
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "block.sh"], cwd=d, env=environment(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + BLOCK_TIMEOUT
            if serves:
                while not healthy():
                    if proc.poll() is not None:
                        raise RuntimeError(f"exited with {proc.returncode} before /healthz answered")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"/healthz did not answer within {BLOCK_TIMEOUT} s")
                    time.sleep(0.3)
                if on_ready:
                    on_ready(log)
                stop(proc)
                require(proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 143),
                        f"exited with {proc.returncode} after SIGTERM")
            else:
                try:
                    proc.wait(timeout=BLOCK_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"still running after {BLOCK_TIMEOUT} s")
                require(proc.returncode == 0, f"exit code {proc.returncode}")
            print(log.read_text(errors="replace").rstrip(), flush=True)
            print(f"--- ok: {where}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported with its block
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            fail(where, f"{e}\n{tail(log)}")


def walkthrough_text():
    """The section's text and the JSON answers it quotes, in order."""
    text = (REPO / "README.md").read_text().split("## Try it from Swagger UI", 1)[1].split("\n## ", 1)[0]
    answers = [json.loads(a) for a in re.findall(r"`(\{\"success\".*?\})`", text.replace("\n   ", " "))]
    require(len(answers) == 2, f"expected the two quoted answers (untrust, revoke-others) in the walkthrough, found {answers}")
    for name in ("three devices and four sessions", "Work laptop", "Phone", "OTHER_SESSIONS_REVOKED", "DEVICE_UNTRUSTED", "nextCursor"):
        require(name in text, f"the walkthrough no longer mentions {name}: update .ci/doc-commands.sh with it")
    return answers


def walkthrough(log):
    """The README's "Try it from Swagger UI", step by step, over HTTP."""
    untrust_answer, others_answer = walkthrough_text()
    lines = log.read_text().split("\n")
    deadline = time.monotonic() + 10
    while not any(l.startswith("eyJ") for l in lines) and time.monotonic() < deadline:
        time.sleep(0.2)
        lines = log.read_text().split("\n")
    require(f"Swagger UI: http://127.0.0.1:{PORT}/swagger-ui/" in lines, "step 1: no `Swagger UI: ...` line printed")
    require(any(l.startswith("Demo token for user `demo-user` (valid until ") for l in lines), "step 1: no demo token line printed")
    token = next(l for l in lines if l.startswith("eyJ"))
    page = http("GET", "/swagger-ui/")
    require(b"swagger" in page.lower(), "step 2: /swagger-ui/ is not Swagger UI")
    current = http("GET", "/sessions/current", token)
    require(current["session"]["isCurrent"] and current["device"]["isCurrent"] and current["device"]["deviceName"] == "Work laptop",
            f"step 3: {current}")
    devices = http("GET", "/devices", token)["devices"]
    require([d["deviceName"] for d in devices if d["isCurrent"]] == ["Work laptop"], f"step 4: {devices}")
    require(len(devices) == 3, f"step 1: the demo user has {len(devices)} devices, not three")
    phone = next(d["id"] for d in devices if d["deviceName"] == "Phone")
    before = http("GET", "/sessions", token)["sessions"]
    require(len(before) == 4, f"step 1: the demo user has {len(before)} sessions, not four")
    require([s["isCurrent"] for s in before].count(True) == 1, "step 4: not exactly one current session")
    untrust = http("POST", f"/devices/{phone}/untrust", token)
    require(untrust == untrust_answer, f"step 5: {untrust}, the README says {untrust_answer}")
    sessions = http("GET", "/sessions", token)["sessions"]
    require(all(s["deviceId"] != phone for s in sessions), f"step 6: the phone's session is listed: {sessions}")
    require(http("GET", f"/devices/{phone}", token)["device"]["isTrusted"] is False, "step 6: the phone is still trusted")
    others = http("POST", "/sessions/revoke-others", token)
    require(others == others_answer, f"step 7: {others}, the README says {others_answer}")
    http("GET", "/sessions/current", token)  # step 7: this token still works
    page1 = http("GET", "/security-events?limit=2", token)
    types = [e["type"] for e in page1["events"]]
    require(types == ["OTHER_SESSIONS_REVOKED", "DEVICE_UNTRUSTED"], f"step 8: {types}")
    untrusted = page1["events"][1]
    require(untrusted["deviceName"] == "Phone" and untrusted["actorSessionId"] == current["session"]["id"]
            and untrusted["revokedSessionCount"] >= 1 and untrusted["ipAddress"], f"step 8: {untrusted}")
    require(page1.get("nextCursor"), "step 8: no nextCursor with limit 2")
    page2 = http("GET", f"/security-events?limit=2&cursor={page1['nextCursor']}", token)
    require("SESSION_STARTED" in [e["type"] for e in page2["events"]],
            f"step 8: the next page holds {[e['type'] for e in page2['events']]}, not the demo's sign-ins")
    print("    the Swagger UI walkthrough's steps 1-8 answered as the README says", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, seconds=30):
    deadline = time.monotonic() + seconds
    while not check():
        require(time.monotonic() < deadline, f"{what}: not within {seconds} s")
        time.sleep(0.2)


def receiver(where, body):
    """A receiver block, as the receiver of a real server: a revocation's
    delivery must come through its verification, and a forged one be refused."""
    d = fresh_dir(where.replace("/", "_").replace(":", "-"))
    (d / "receiver.py").write_text("\n".join(body) + "\n")
    print(f"\n--- {where} (a webhook receiver)", flush=True)
    venv = REPO / "target" / "webhooks-venv"  # the one .ci/webhooks.sh uses
    procs = []
    try:
        port = int(re.search(r'HTTPServer\(\("127\.0\.0\.1", (\d+)\)', "\n".join(body)).group(1))
        with socket.socket() as s:
            require(s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is in use: the receiver listens on it")
        requirements = REPO / "clients/webhooks/requirements.txt"
        stamp = venv / ".requirements.txt"  # as .ci/webhooks.sh keeps it
        if not stamp.exists() or stamp.read_bytes() != requirements.read_bytes():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "--no-input", "-r", str(requirements)], check=True)
            shutil.copyfile(requirements, stamp)
        binary = str(REPO / "target/release/flashback-devices")
        secret = subprocess.run([binary, "webhook", "secret"], capture_output=True, text=True, check=True).stdout.strip()
        env = environment() | {"WEBHOOK_SECRET": secret, "PYTHONUNBUFFERED": "1"}
        log = d / "receiver.log"
        procs.append(subprocess.Popen([str(venv / "bin" / "python"), "receiver.py"], cwd=d, env=env, stdin=subprocess.DEVNULL,
                                      stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for("the receiver listening", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0)
        forged = urllib.request.Request(f"http://127.0.0.1:{port}/hook", data=b'{"type":"X"}', method="POST", headers={
            "webhook-id": "forged", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
        try:
            urllib.request.urlopen(forged, timeout=5)
            raise RuntimeError("the receiver acknowledged a forged delivery")
        except urllib.error.HTTPError as e:
            require(e.code == 400, f"a forged delivery got {e.code}, not 400")
        api = free_port()
        env = env | {"DATABASE_URL": f"sqlite://{d}/webhooks.db", "JWT_SECRET": "doc-commands-0123456789abcdef0123456789",
                     "BIND_ADDR": f"127.0.0.1:{api}", "WEBHOOK_URLS": f"http://127.0.0.1:{port}/hook"}
        created = json.loads(subprocess.run([binary, "session", "create", "--user", "alice", "--device-name", "Laptop"],
                                            env=env, capture_output=True, text=True, check=True).stdout)
        procs.append(subprocess.Popen([binary, "serve"], cwd=d, env=env, stdin=subprocess.DEVNULL,
                                      stdout=open(d / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        def answers():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{api}/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_for("the server's /healthz", answers)
        revoke = urllib.request.Request(f"http://127.0.0.1:{api}/sessions/revoke-all", data=b"", method="POST",
                                        headers={"Authorization": f"Bearer {created['token']}"})
        require(urllib.request.urlopen(revoke, timeout=10).status == 200, "revoke-all failed")
        wait_for("the receiver printing the revocation",
                 lambda: "drop cached sessions of alice" in log.read_text(), seconds=30)
        print(log.read_text().rstrip(), flush=True)
        print(f"--- ok: {where}: a forged delivery refused (400), the revocation received and verified", flush=True)
    except Exception as e:  # noqa: BLE001
        logs = "\n".join(tail(f) for f in (d / "receiver.log", d / "server.log") if f.exists())
        fail(where, f"{e}\n{logs}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    runnable, receivers = [], []
    for path in FILES:
        rel = str(path.relative_to(REPO))
        check_links(path)
        for start, info, body in blocks(path):
            if info[:1] == ["python"] and "runnable" in info:
                receivers.append((f"{rel}:{start}", body))
                continue
            if not info or info[0] not in SHELLS:
                continue
            where = f"{rel}:{start}"
            if "runnable" in info:
                runnable.append((where, body, "serves" in info))
                continue
            for line, cmd in commands(body, start):
                if not covered(cmd, rel):
                    fail(f"{rel}:{line}", f"`{cmd}` is in a block not marked runnable and is not listed in COVERED "
                         "(.ci/doc-commands.sh): mark the block ```sh runnable, or list the command with the CI step that runs it")
    print("links and anchors of README.md and docs/*.md checked; unmarked commands all listed in COVERED", flush=True)

    # "Two commands": cargo run --release, zero configuration, and the walkthrough.
    run_block("README.md: cargo run --release and the Swagger UI walkthrough", "serve-sqlite",
              "cargo run --release", serves=True, on_ready=walkthrough)

    for where, body, serves in runnable:
        cmds = [c for _, c in commands(body, 0)]
        needs = [NEEDS[c] for c in cmds if c in NEEDS]
        try:
            for before, _ in needs:
                before()
        except Exception as e:  # noqa: BLE001
            fail(where, str(e))
            continue
        try:
            run_block(where, where.replace("/", "_").replace(":", "-"), "\n".join(body), serves)
        finally:
            for _, after in needs:
                after()

    for where, body in receivers:
        receiver(where, body)

    if failures:
        print(f"\n{len(failures)} failure(s) in the commands of README.md and docs/:", file=sys.stderr)
        for f in failures:
            print("  " + f.split("\n")[0], file=sys.stderr)
        sys.exit(1)
    print(f"\nall {len(runnable) + len(receivers) + 1} runnable blocks of README.md and docs/ passed", flush=True)


try:
    main()
except KeyboardInterrupt:
    sys.exit(130)
PYTHON
