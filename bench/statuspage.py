#!/usr/bin/env python3
"""Measure zdrun's status page beside supervisord's inet_http_server, in one run.

Usage: python -B statuspage.py --zdctl PATH --tmp DIR

Run by bench/statuspage with the bench venv's Python (which has supervisor,
so supervisord sits beside it); --zdctl is our release zdctl (it starts the
zdrun beside it), --tmp an empty scratch directory.

For each site size in SIZES (10 and 1000 nodes of `sleep 1000`) both
managers run at once, set up as bench/site sets them up (bench/site.py's
classes), plus an HTTP listener on a free loopback port with a username and
a hashed password: ours an `<http-server>` in the `<runner>`, supervisord an
[inet_http_server] (password as `{SHA}`).

  latency  wall time of one request, from connect to the end of the
           response (the server closes the connection, or Content-Length
           bytes have come), over REQUESTS (200) requests per path after
           one checked warm-up, the two managers and the paths taking
           turns; p50 and p99. The client is the same few lines of Python
           for both (a new connection per request, Basic credentials on
           every request). Paths: ours `/`, `/status.json`, `/metrics`;
           supervisord's `/` (its status page) and, beside our
           `/status.json`, its XML-RPC `supervisor.getAllProcessInfo`
           (POST /RPC2), the machine-readable status it offers; it has no
           metrics endpoint.
  idle     context switches (voluntary + nonvoluntary, summed over the
           manager's threads) during IDLE_SECONDS (60) with the listener on
           and nothing connected, both managers in the same window.

Environment: SIZES ("10 1000"), REQUESTS (200), IDLE_SECONDS (60).

Prints a table per size; exits non-zero only if something fails to run.
Every daemon started is stopped on the way out, whatever happens; manager
and program pids are listed in DIR/pids for the caller's last-resort
cleanup.
"""

import base64
import hashlib
import importlib.util
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Failure, env_int, log, main, print_table, ratio  # noqa: E402

# bench/site.py's managers, loaded under another name: `site` is Python's.
_spec = importlib.util.spec_from_file_location(
    "bench_site", os.path.join(os.path.dirname(os.path.abspath(__file__)), "site.py")
)
bench_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_site)

USER = "admin"
PASSWORD = "bench-password"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
RPC_BODY = (
    b"<?xml version='1.0'?><methodCall>"
    b"<methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>"
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ours(bench_site.Ours):
    def __init__(self, tmp, nodes, zdctl):
        super().__init__(tmp, nodes, zdctl, tag=f"ours{nodes}")
        self.port = free_port()
        digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
        with open(self.conf) as f:
            text = f.read()
        server = (
            "  <http-server>\n"
            f"    address 127.0.0.1:{self.port}\n"
            f"    username {USER}\n"
            f"    password {{SHA256}}{digest}\n"
            "  </http-server>\n"
        )
        with open(self.conf, "w") as f:
            f.write(text.replace("</runner>", server + "</runner>", 1))
        self.paths = [("/", "GET", b""), ("/status.json", "GET", b""), ("/metrics", "GET", b"")]


class Supervisord(bench_site.Supervisord):
    def __init__(self, tmp, nodes, bindir):
        super().__init__(tmp, nodes, bindir, tag=f"supervisord{nodes}")
        self.port = free_port()
        digest = hashlib.sha1(PASSWORD.encode()).hexdigest()
        with open(self.conf, "a") as f:
            f.write(
                f"\n[inet_http_server]\nport=127.0.0.1:{self.port}\n"
                f"username={USER}\npassword={{SHA}}{digest}\n"
            )
        self.paths = [("/", "GET", b""), ("/RPC2", "POST", RPC_BODY)]


def request(port, method, path, body):
    """(seconds, status code, body bytes) of one request on a new connection."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {AUTH}\r\nConnection: close\r\n"
    )
    if method == "POST":
        head += f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n"
    data = head.encode() + b"\r\n" + body
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        got = b""
        want = None
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if want is None and b"\r\n\r\n" in got:
                top, _, _ = got.partition(b"\r\n\r\n")
                for line in top.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        want = len(top) + 4 + int(v)
            if want is not None and len(got) >= want:
                break
    took = time.perf_counter() - t0
    status_line = got.split(b"\r\n", 1)[0].split()
    code = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return took, code, got.partition(b"\r\n\r\n")[2]


def check(manager, path, code, body, nodes):
    """The warm-up answer is a real one: 200 and every node in it."""
    if code != 200:
        raise Failure(f"{manager.label}: {path} answered {code}: {body[:300]!r}")
    if isinstance(manager, Ours):
        marker = {"/": b"data-node=", "/status.json": b'"name":', "/metrics": None}[path]
        if marker is not None and body.count(marker) != nodes:
            raise Failure(
                f"{manager.label}: {path} shows {body.count(marker)} of {nodes} nodes"
            )
    elif path == "/RPC2" and body.count(b"<name>statename</name>") != nodes:
        raise Failure(f"{manager.label}: getAllProcessInfo does not list {nodes} processes")


def wait_port(manager, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", manager.port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise Failure(f"{manager.label}: nothing listens on port {manager.port}")
            time.sleep(0.01)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def fmt_ms(s):
    return f"{s * 1e3:.2f} ms"


def measure(args, nodes, requests, idle_seconds, bindir):
    ours = Ours(args.tmp, nodes, args.zdctl)
    theirs = Supervisord(args.tmp, nodes, bindir)
    managers = (ours, theirs)
    times = {}
    try:
        for m in managers:
            log(f"start: {m.label}, {nodes} nodes, listener on port {m.port}")
            m.start()
            wait_port(m)
        for m in managers:
            for path, method, body in m.paths:
                _, code, got = request(m.port, method, path, body)
                check(m, path, code, got, nodes)
                times[(m.label, path)] = []
        log(f"{requests} requests per path, taking turns")
        for _ in range(requests):
            for m in managers:
                for path, method, body in m.paths:
                    took, code, _ = request(m.port, method, path, body)
                    if code != 200:
                        raise Failure(f"{m.label}: {path} answered {code}")
                    times[(m.label, path)].append(took)
        time.sleep(1)
        log(f"idle {idle_seconds} s: both managers, listeners on, nothing connected")
        before = {m.label: bench_site.ctxt_switches(m.manager) for m in managers}
        time.sleep(idle_seconds)
        idle = {}
        for m in managers:
            after = bench_site.ctxt_switches(m.manager)
            idle[m.label] = after[0] - before[m.label][0]
            m.check_programs()
        for m in managers:
            m.stop()
    finally:
        for m in managers:
            try:
                m.stop()
            except Failure as e:
                log(str(e))

    def cell(label, path, p):
        ts = times.get((label, path))
        return fmt_ms(percentile(ts, p)) if ts else "-"

    def ratio_cell(path, their_path, p):
        a, b = times.get((ours.label, path)), times.get((theirs.label, their_path))
        return ratio(percentile(a, p), percentile(b, p)) if a and b else ""

    rows = []
    for path, their_path in (("/", "/"), ("/status.json", "/RPC2"), ("/metrics", None)):
        for p in (50, 99):
            name = f"GET {path} p{p}"
            if their_path == "/RPC2":
                name += " (supervisord: getAllProcessInfo)"
            rows.append((
                name,
                cell(ours.label, path, p),
                cell(theirs.label, their_path, p) if their_path else "-",
                ratio_cell(path, their_path, p) if their_path else "",
                "-",
                "",
            ))
    rows.append((
        f"idle wake-ups in {idle_seconds} s, listener on",
        str(idle[ours.label]),
        str(idle[theirs.label]),
        ratio(idle[ours.label], idle[theirs.label]),
        "0",
        "yes" if idle[ours.label] == 0 else "NO",
    ))
    print()
    print(f"status page, site of {nodes} ({requests} requests per path):")
    print_table(rows, "supervisord")


def run(args):
    sizes = os.environ.get("SIZES", "10 1000").split()
    try:
        sizes = [int(s) for s in sizes]
    except ValueError:
        raise Failure(f"SIZES must be node counts, not {os.environ['SIZES']!r}")
    requests = env_int("REQUESTS", 200)
    idle_seconds = env_int("IDLE_SECONDS", 60)
    bindir = os.path.dirname(sys.executable)
    for nodes in sizes:
        measure(args, nodes, requests, idle_seconds, bindir)


if __name__ == "__main__":
    sys.exit(main(__doc__, "bench/statuspage", run))
