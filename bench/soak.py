#!/usr/bin/env python3
"""Soak one zdrun: many restarts and status requests, then look for growth.

Usage: python -B soak.py --zdctl PATH --tmp DIR --program PATH
           [--restarts N] [--status N] [--warmup N] [--zdaemon N]

Run by bench/soak; --zdctl is our release zdctl (it starts the zdrun
beside it), --tmp an empty scratch directory, --program a program that
runs until SIGTERM and is cheap to start (bench/soak builds a static one
that only calls pause()).

One manager runs the program, with a transcript file and an event log at
level info that rotates at 256 KB (2 old files), so every restart also
writes log lines and, every couple of thousand, rotates the log.
Everything is driven over the control socket with zdaemon's protocol:
connect, send one line, read the reply until EOF.

  restart  one cycle is: open a pidfd on the running program; send
           `restart` (reply "Sent SIGTERM; will restart later"); wait on
           the pidfd until that program has exited; send `status` until it
           shows a different application pid; wait until that process has
           exec'd the program (/proc/PID/exe).  So every cycle is a real
           stop and a real spawn of a program that got to run, and the
           next SIGTERM never lands between fork and exec (where the
           child still has zdrun's signal handlers, which swallow it: the
           program then runs until stop-timeout).  The extra status
           requests are counted apart from the status phase.
  status   `status` requests one after another; each reply must show the
           same running program.

Memory and descriptors of the manager process are read from
/proc/PID/status (VmRSS, RssAnon, RssFile), /proc/PID/maps ([heap]) and
/proc/PID/fd: after a warm-up, after the restarts, and after the status
requests.  The warm-up is WARMUP restarts and WARMUP status requests, then
more restarts until the event log has rotated three times.  It is there
because a manager's first cycles take memory once: the allocator's heap
grows to its working set and keeps it, lazily made state (a /dev/null
handle for children, the environment) is set up on the first spawn, and
the code of each path (restart, status, log rotation) is paged in the
first time it runs -- shared library and binary pages count in RssFile;
the first rotation alone maps 64 KiB more of libc.  Growth after that is
what would grow without bound.  Our zdrun's own restart counter (`info`)
must have advanced by exactly the number of cycles.

With --zdaemon N (default 10,000; 0 skips it), zdaemon 5.2.1's zdrun gets
the same treatment with N restarts and N status requests, for comparison.

Prints a table per manager; exits non-zero only if something fails to run.
A missed target is reported in the table.  Every manager started is
stopped on the way out, whatever happens (SIGTERM included).
"""

import json
import os
import re
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    Failure,
    alive,
    children,
    kill_quietly,
    log,
    main,
    proc_fields,
    run_ctl,
)

RSS_TARGET_KIB = 64
FD_TARGET = 0
# A cycle step that takes longer than this has hung.
STEP_TIMEOUT = 30.0
# A cycle slower than this is listed in the details.
SLOW_CYCLE = 1.0
PROGRESS_EVERY = 0.05  # of a phase
# Enough for a rotation to have renamed old files and dropped the oldest.
WARMUP_ROTATIONS = 3

APPLICATION = re.compile(rb"^application=(\d+)$", re.M)
MANAGER = re.compile(rb"^manager=(\d+)$", re.M)


class Manager:
    """One implementation's zdrun, running `program` from its own config."""

    def __init__(self, label, client, tmp, tag, program):
        self.label = label
        self.dir = os.path.join(tmp, tag)
        os.mkdir(self.dir)
        self.conf = os.path.join(self.dir, "zd.conf")
        self.sock = os.path.join(self.dir, "zdsock")
        self.log = os.path.join(self.dir, "zdrun.log")
        with open(self.conf, "w") as f:
            f.write(
                "<runner>\n"
                f"  program {program}\n"
                f"  socket-name {self.sock}\n"
                f"  transcript {os.path.join(self.dir, 'transcript.log')}\n"
                "</runner>\n"
                "<eventlog>\n"
                "  level info\n"
                "  <logfile>\n"
                f"    path {self.log}\n"
                "    max-size 256KB\n"
                "    old-files 2\n"
                "  </logfile>\n"
                "</eventlog>\n"
            )
        self.argv = client + ["-C", self.conf]
        self.exe = os.path.realpath(program.split()[0])
        self.pid = 0
        self.program = 0
        self.started = False

    def ctl(self, *action, timeout=60):
        return run_ctl(self.label, self.argv, action, timeout=timeout).stdout

    def ask(self, line):
        """One request over the socket; the whole reply."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(STEP_TIMEOUT)
            s.connect(self.sock)
            s.sendall(line)
            chunks = []
            while True:
                b = s.recv(4096)
                if not b:
                    return b"".join(chunks)
                chunks.append(b)
        except OSError as e:
            raise Failure(f"{self.label}: {line.strip().decode()}: {e}")
        finally:
            s.close()

    def status(self):
        """(application pid, manager pid, raw reply)."""
        reply = self.ask(b"status\n")
        app, mgr = APPLICATION.search(reply), MANAGER.search(reply)
        if not app or not mgr:
            raise Failure(f"{self.label}: unexpected status reply {reply!r}")
        return int(app.group(1)), int(mgr.group(1)), reply

    def start(self):
        self.started = True
        self.ctl("start")
        self.program, self.pid, _ = self.status()
        if not self.pid or not self.program:
            raise Failure(f"{self.label}: not running after start")
        self.wait_exec(self.program)

    def wait_exec(self, pid):
        """Wait until `pid` runs the program (has exec'd it)."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                if os.readlink(f"/proc/{pid}/exe") == self.exe:
                    return
            except FileNotFoundError:
                raise Failure(f"{self.label}: program {pid} vanished before its exec")
            except PermissionError:
                pass
            if time.monotonic() > deadline:
                raise Failure(f"{self.label}: program {pid} did not exec in {STEP_TIMEOUT} s")
            os.sched_yield()

    def restart(self):
        """One full cycle (see the module doc); returns the status requests
        it took to see the new pid."""
        old = self.program
        try:
            pidfd = os.pidfd_open(old)
        except ProcessLookupError:
            raise Failure(f"{self.label}: program {old} died on its own")
        try:
            reply = self.ask(b"restart\n")
            if not reply.startswith(b"Sent SIGTERM"):
                raise Failure(f"{self.label}: unexpected restart reply {reply!r}")
            ready, _, _ = select.select([pidfd], [], [], STEP_TIMEOUT)
            if not ready:
                raise Failure(f"{self.label}: program {old} still runs {STEP_TIMEOUT} s "
                              "after restart")
        finally:
            os.close(pidfd)
        deadline = time.monotonic() + STEP_TIMEOUT
        asked = 0
        while True:
            app, mgr, _ = self.status()
            asked += 1
            if mgr != self.pid:
                raise Failure(f"{self.label}: manager pid changed from {self.pid} to {mgr}")
            if app and app != old:
                break
            if time.monotonic() > deadline:
                raise Failure(f"{self.label}: no new program {STEP_TIMEOUT} s after restart")
            os.sched_yield()
        self.program = app
        self.wait_exec(app)
        return asked

    def log_inode(self):
        """The event log file's inode: it changes when the log rotates."""
        try:
            return os.stat(self.log).st_ino
        except FileNotFoundError:
            return None

    def restarts_counted(self):
        """Our zdrun's own count of restarts (`info`); None for zdaemon."""
        reply = self.ask(b"info\n")
        try:
            return json.loads(reply)["restarts"]
        except (ValueError, KeyError, TypeError):
            return None

    def stop(self):
        """Stop the manager: `stop` over the socket (it then exits), and
        signals if it does not go."""
        if not self.started:
            return
        self.started = False
        log(f"{self.label}: stopping the manager")
        try:
            self.ask(b"stop\n")
        except Failure:
            pass
        deadline = time.monotonic() + 15
        while self.pid and alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid and alive(self.pid):
            for pid in children(self.pid):
                kill_quietly(pid)
            kill_quietly(self.pid)
            raise Failure(f"{self.label}: manager {self.pid} did not exit after stop; killed")


class Snapshot:
    """The manager's memory and descriptors at one moment."""

    def __init__(self, pid):
        st = proc_fields(f"/proc/{pid}/status")
        self.rss, self.anon, self.file = (
            int(st[k][0]) for k in ("VmRSS", "RssAnon", "RssFile")
        )
        self.hwm = int(st["VmHWM"][0])
        self.heap = 0
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[heap]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    self.heap += (hi - lo) // 1024
        self.fds = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                self.fds[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                pass

    def line(self):
        return (f"VmRSS {self.rss} KiB (anon {self.anon}, file {self.file}),"
                f" heap {self.heap} KiB, {len(self.fds)} fds")


def progress(label, what, done, total, t0, pid):
    rate = done / max(time.monotonic() - t0, 1e-9)
    log(f"{label}: {what} {done:,}/{total:,}, {rate:,.0f}/s; {Snapshot(pid).line()}")


def soak(m, restarts, statuses, warmup):
    """Run the phases on a started manager; the measurements."""
    res = {"slow": [], "trend": []}
    log(f"{m.label}: warm-up, {warmup:,} restarts and {warmup:,} status requests,"
        f" then restarts until the event log has rotated {WARMUP_ROTATIONS} times")
    for _ in range(warmup):
        m.restart()
    for _ in range(warmup):
        m.status()
    more = 0
    ino = m.log_inode()
    rotated = 0
    deadline = time.monotonic() + 600
    while rotated < WARMUP_ROTATIONS:
        m.restart()
        more += 1
        now = m.log_inode()
        if now != ino:
            ino, rotated = now, rotated + 1
        if time.monotonic() > deadline:
            raise Failure(f"{m.label}: the event log did not rotate {WARMUP_ROTATIONS} times"
                          f" in {more:,} restarts")
    res["warmup"] = warmup + more
    res["start"] = Snapshot(m.pid)
    counted0 = m.restarts_counted()

    log(f"{m.label}: {restarts:,} restarts")
    step = max(1, int(restarts * PROGRESS_EVERY))
    asked = 0
    t0 = time.monotonic()
    for i in range(1, restarts + 1):
        c0 = time.monotonic()
        asked += m.restart()
        took = time.monotonic() - c0
        if took > SLOW_CYCLE:
            res["slow"].append((i, took))
        if i % step == 0 or i == restarts:
            progress(m.label, "restarts", i, restarts, t0, m.pid)
            res["trend"].append((i, Snapshot(m.pid)))
    res["restart_s"] = time.monotonic() - t0
    res["asked"] = asked
    res["after_restarts"] = Snapshot(m.pid)
    counted1 = m.restarts_counted()
    if counted0 is not None and counted1 is not None:
        res["counted"] = counted1 - counted0

    log(f"{m.label}: {statuses:,} status requests")
    step = max(1, int(statuses * PROGRESS_EVERY))
    t0 = time.monotonic()
    for i in range(1, statuses + 1):
        app, mgr, reply = m.status()
        if app != m.program or mgr != m.pid or not reply.startswith(b"status=running\n"):
            raise Failure(f"{m.label}: unexpected status during the status phase: {reply!r}")
        if i % step == 0 or i == statuses:
            progress(m.label, "status", i, statuses, t0, m.pid)
    res["status_s"] = time.monotonic() - t0
    res["after_status"] = Snapshot(m.pid)
    return res


def table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def report(m, res, restarts, statuses):
    a, b, c = res["start"], res["after_restarts"], res["after_status"]
    kib = "{:,} KiB".format
    rows = [("", "VmRSS", "RssAnon", "RssFile", "heap", "open fds")]
    for name, s in (
        (f"start (after {res['warmup']:,} warm-up restarts)", a),
        (f"after {restarts:,} restarts", b),
        (f"after {statuses:,} status", c),
    ):
        rows.append((name, kib(s.rss), kib(s.anon), kib(s.file), kib(s.heap), str(len(s.fds))))

    def signed(n, unit=" KiB"):
        return f"{n:+,}{unit}"

    rss_growth = c.rss - a.rss
    fd_growth = len(c.fds) - len(a.fds)
    rows.append((
        "growth",
        signed(rss_growth), signed(c.anon - a.anon), signed(c.file - a.file),
        signed(c.heap - a.heap), signed(fd_growth, ""),
    ))
    rows.append(("target", f"<= {RSS_TARGET_KIB} KiB", "", "", "", str(FD_TARGET)))
    rows.append((
        "met?",
        "PASS" if rss_growth <= RSS_TARGET_KIB else "FAIL", "", "", "",
        "PASS" if fd_growth <= FD_TARGET else "FAIL",
    ))
    print()
    print(f"{m.label}: {restarts:,} restarts, {statuses:,} status requests")
    table(rows)
    rs, ss = res["restart_s"], res["status_s"]
    print(f"  restarts: {restarts:,} in {rs:,.1f} s = {restarts / rs:,.0f}/s"
          f" ({res['asked'] / restarts:.2f} status requests per restart to see the new pid)")
    print(f"  status:   {statuses:,} in {ss:,.1f} s = {statuses / ss:,.0f}/s")
    if "counted" in res:
        ok = "as expected" if res["counted"] == restarts else f"NOT {restarts:,}"
        print(f"  the manager's own restart counter advanced by {res['counted']:,} ({ok})")
    print(f"  peak RSS (VmHWM) {kib(c.hwm)}")
    trend = res["trend"]
    if trend:
        print("  VmRSS/RssAnon/fds during the restarts: " + ", ".join(
            f"{i:,}: {s.rss}/{s.anon}/{len(s.fds)}" for i, s in trend))
    if res["slow"]:
        worst = max(t for _, t in res["slow"])
        print(f"  {len(res['slow'])} cycles over {SLOW_CYCLE} s (worst {worst:.2f} s),"
              f" at {', '.join(str(i) for i, _ in res['slow'][:10])}")
    else:
        print(f"  no cycle took over {SLOW_CYCLE} s")
    print("  fds at start: " + ", ".join(f"{fd} {a.fds[fd]}" for fd in sorted(a.fds)))
    gone = sorted(set(a.fds) - set(c.fds))
    new = sorted(set(c.fds) - set(a.fds))
    changed = sorted(fd for fd in set(a.fds) & set(c.fds) if a.fds[fd] != c.fds[fd])
    for what, fds, snap in (("closed", gone, a), ("new", new, c), ("now other", changed, c)):
        if fds:
            print(f"  fds {what}: " + ", ".join(f"{fd} -> {snap.fds[fd]}" for fd in fds))
    return rss_growth <= RSS_TARGET_KIB and fd_growth <= FD_TARGET


def add_args(ap):
    def count(s):
        n = int(s.replace(",", "").replace("_", ""))
        if n < 0:
            raise ValueError(s)
        return n

    ap.add_argument("--program", required=True, help="program to supervise")
    ap.add_argument("--restarts", type=count, default=1_000_000)
    ap.add_argument("--status", type=count, default=100_000)
    ap.add_argument("--warmup", type=count, default=1_000)
    ap.add_argument("--zdaemon", type=count, default=10_000,
                    help="restarts and status requests for zdaemon's zdrun (0: skip)")


def stop_shielded(m, quiet):
    """Stop `m` with SIGINT and SIGTERM ignored, so a second Ctrl-C or the
    caller's SIGTERM cannot cut the stop short. `quiet`: another error is
    on its way out; only log a failure to stop."""
    old = [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        m.stop()
    except Failure as e:
        if not quiet:
            raise
        log(str(e))
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])


def run(args):
    runs = [("zdaemon-rs", [args.zdctl], args.restarts, args.status)]
    if args.zdaemon:
        runs.append(("zdaemon 5.2.1", [sys.executable, "-m", "zdaemon"],
                     args.zdaemon, args.zdaemon))
    results = []
    for k, (label, client, restarts, statuses) in enumerate(runs):
        m = Manager(label, client, args.tmp, f"m{k}", args.program)
        try:
            m.start()
            res = soak(m, restarts, statuses, args.warmup)
        except BaseException:
            stop_shielded(m, quiet=True)
            raise
        stop_shielded(m, quiet=False)
        results.append((m, res, restarts, statuses))
    for m, res, restarts, statuses in results:
        report(m, res, restarts, statuses)


if __name__ == "__main__":
    try:
        sys.exit(main(__doc__, "bench/soak", run, add_args))
    except KeyboardInterrupt:
        print("bench/soak: interrupted", file=sys.stderr)
        sys.exit(130)
