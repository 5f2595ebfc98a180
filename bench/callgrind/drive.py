#!/usr/bin/env python3
"""bench/callgrind/drive.py PORT REQFILE START N CONNECTIONS: sends lines
[START, START+N) of a bench .req file (METHOD PATH TOKEN) over CONNECTIONS
keep-alive connections; every file but untrust.req is cycled. Fails on a non-2xx."""
import http.client, sys, threading
port, reqfile, start, n, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
lines = [l.split() for l in open(reqfile).read().splitlines() if l.strip()]
if not reqfile.endswith("untrust.req"):  # reads and heartbeats repeat; an untrust is once per device
    lines = [lines[i % len(lines)] for i in range(start + n)]
todo = lines[start:start + n]
assert len(todo) == n, (len(todo), n)
bad = []
lock = threading.Lock()
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=600)
    for i in range(k, n, conns):
        m, p, t = todo[i]
        c.request(m, p, headers={"Authorization": f"Bearer {t}", "Content-Length": "0"})
        r = c.getresponse(); r.read()
        if r.status // 100 != 2:
            with lock: bad.append((r.status, p))
ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
if bad:
    print("non-2xx:", len(bad), bad[:3]); sys.exit(1)
