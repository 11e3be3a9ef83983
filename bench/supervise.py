#!/usr/bin/env python3
"""Measure zdaemon-rs's supervisor beside zdaemon 5.2.1, in one run.

Usage: python supervise.py --zdctl PATH --tmp DIR

Run by bench/supervise with the oracle venv's Python (which has zdaemon
5.2.1); --zdctl is our release zdctl (it starts the zdrun beside it), --tmp
an empty scratch directory for configs, sockets and transcripts.

Each implementation runs `sleep 1000` under its own daemon manager:

  status   wall time of `zdctl -C CONF status` (spawn to exit), median of
           STATUS_RUNS runs after one warm-up.  zdaemon's client is
           `python -m zdaemon`.  The implementations take turns run by run
           (and kill by kill below), so both see the same background load.
  restart  time from just before kill(2) sends SIGKILL to the program
           until the manager's new child has exec'd `sleep 1000`.  The exec
           time is the kernel's, from the process connector (netlink; needs
           root); without it, the time /proc/MANAGER/task/*/children and the
           child's cmdline first show the new program to a polling loop
           (which competes with the manager for the CPUs, so reads higher).
           backoff-limit is 1 and each program has run for more than that
           before it is killed, so no back-off delay is due.  Median of
           RESTARTS kills; the details add the manager's run-queue wait
           (runnable, but another process had the CPU) per restart.
  rss      VmRSS of the manager process after the status runs and the idle
           window (steady state), with its RssAnon/RssFile split.
  idle     context switches (voluntary + nonvoluntary, summed over the
           manager's threads) during IDLE_SECONDS with nothing to do.  The
           idle daemons use the default backoff-limit (10), which is also
           zdaemon's select timeout; both are watched in the same window.
           Beside them, our zdrun runs a site whose one program has a TCP
           health check every 60 s (to a socket this script listens on):
           its wake-ups in the same window, target one per 60 s.

Environment: STATUS_RUNS (200), RESTARTS (20), IDLE_SECONDS (60).

Prints a table; exits non-zero only if something fails to run.  Every
daemon started is stopped on the way out, whatever happens; the pids are
also listed in DIR/pids for the caller's last-resort cleanup.
"""

import os
import re
import signal
import socket
import struct
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    Failure,
    alive,
    children,
    env_int,
    kill_quietly,
    log,
    main,
    print_table,
    proc_fields,
    run_ctl,
    ratio,
)

PROGRAM = ["sleep", "1000"]
PROGRAM_CMDLINE = b"\0".join(w.encode() for w in PROGRAM) + b"\0"
RESTART_BACKOFF_LIMIT = 1


class Daemon:
    """One implementation's daemon manager running one config."""

    def __init__(self, label, client, tmp, tag, backoff_limit=None, health_port=None):
        self.label = label
        self.tmp = tmp
        self.dir = os.path.join(tmp, tag)
        os.mkdir(self.dir)
        self.conf = os.path.join(self.dir, "zd.conf")
        lines = [
            "<runner>",
            "  program " + " ".join(PROGRAM),
            "  socket-name " + os.path.join(self.dir, "zdsock"),
            "  transcript " + os.path.join(self.dir, "transcript.log"),
        ]
        if backoff_limit is not None:
            lines.append(f"  backoff-limit {backoff_limit}")
        lines.append("</runner>")
        if health_port is not None:
            # A site of one program with a health check.
            lines[1:2] = []
            lines += [
                "<program app>",
                "  program " + " ".join(PROGRAM),
                "  <health>",
                f"    address 127.0.0.1:{health_port}",
                "    interval 60",
                "  </health>",
                "</program>",
            ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.argv = client + ["-C", self.conf]
        self.manager = None
        self.started = False

    def ctl(self, *action, timeout=60, check=True):
        return run_ctl(self.label, self.argv, action, timeout=timeout, check=check)

    def status(self):
        """The manager's raw status reply, as a dict of strings."""
        out = self.ctl("status", "-l").stdout
        # A site's lines start with the node's name.
        return dict(re.findall(r"^(?:\w+: )?(\w+)=(.*)$", out, re.M))

    def start(self):
        self.started = True
        self.ctl("start")
        st = self.status()
        self.manager = int(st.get("manager", 0))
        program = int(st.get("application", 0))
        if not self.manager or not program:
            raise Failure(f"{self.label}: not running after start: {st}")
        self.note_pid(self.manager)
        self.note_pid(program)
        return program

    def note_pid(self, pid):
        with open(os.path.join(self.tmp, "pids"), "a") as f:
            f.write(f"{pid}\n")

    def stop(self):
        if not self.started:
            return
        self.started = False
        try:
            self.ctl("stop", timeout=30)
        finally:
            # zdaemon leaves the program behind if its manager dies; make sure.
            if self.manager and alive(self.manager):
                for pid in children(self.manager):
                    kill_quietly(pid)
                kill_quietly(self.manager)


def is_program(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == PROGRAM_CMDLINE
    except (FileNotFoundError, ProcessLookupError):
        return False


def ctxt_switches(pid):
    """(context switches, scheduler run slices, threads) summed over threads."""
    switches = slices = 0
    tids = os.listdir(f"/proc/{pid}/task")
    for tid in tids:
        st = proc_fields(f"/proc/{pid}/task/{tid}/status")
        switches += int(st["voluntary_ctxt_switches"][0])
        switches += int(st["nonvoluntary_ctxt_switches"][0])
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            slices += int(f.read().split()[2])
    return switches, slices, len(tids)


def memory(pid):
    """(VmRSS, RssAnon, RssFile) in KiB."""
    st = proc_fields(f"/proc/{pid}/status")
    return tuple(int(st[k][0]) for k in ("VmRSS", "RssAnon", "RssFile"))


def time_status(daemons, runs):
    """Wall times in seconds of `zdctl status` (spawn to reaped exit), per
    daemon.  The implementations take turns, run by run, so both see the
    same background load."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    for d in daemons:
        out = d.ctl("status").stdout
        if not out.startswith("program running; pid="):
            raise Failure(f"{d.label}: unexpected status output {out!r}")
    times = [[] for _ in daemons]
    try:
        for _ in range(runs):
            for d, ts in zip(daemons, times):
                argv = d.argv + ["status"]
                t0 = time.perf_counter_ns()
                pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
                _, wst = os.waitpid(pid, 0)
                t1 = time.perf_counter_ns()
                code = os.waitstatus_to_exitcode(wst)
                if code != 0:
                    raise Failure(f"{d.label}: `status` exited {code}")
                ts.append((t1 - t0) / 1e9)
    finally:
        os.close(devnull)
    return times


class ExecEvents:
    """Exec events from the kernel's process connector (needs root).

    Each event carries the kernel's CLOCK_MONOTONIC time of the exec, the
    same clock as time.monotonic_ns(), so the latency does not depend on
    when this process gets to run.
    """

    NETLINK_CONNECTOR = 11
    CN_IDX_PROC = 1
    PROC_CN_MCAST_LISTEN = 1
    PROC_EVENT_EXEC = 2
    NLMSG_DONE = 3
    # nlmsghdr (16 bytes) + cn_msg (20 bytes), then struct proc_event.
    EVENT_OFFSET = 36

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((0, self.CN_IDX_PROC))
            cn_msg = struct.pack(
                "=IIIIHHI", self.CN_IDX_PROC, 1, 0, 0, 4, 0, self.PROC_CN_MCAST_LISTEN
            )
            nlmsg = struct.pack("=IHHII", 16 + len(cn_msg), self.NLMSG_DONE, 0, 0, 0)
            self.sock.send(nlmsg + cn_msg)
        except OSError:
            self.sock.close()
            raise

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def next_exec(self, timeout):
        """(pid, monotonic ns) of the next exec anywhere, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if len(data) < self.EVENT_OFFSET + 24:
                continue
            what, _cpu, ts = struct.unpack_from("=IIQ", data, self.EVENT_OFFSET)
            if what == self.PROC_EVENT_EXEC:
                _pid, tgid = struct.unpack_from("=II", data, self.EVENT_OFFSET + 16)
                return tgid, ts


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0


def wait_new_program(manager, old, events, timeout=10.0):
    """Wait until a child of `manager` other than `old` has exec'd the program.

    Returns (pid, monotonic ns of the exec).  With `events`, the time is the
    kernel's; without, it is when polling /proc/MANAGER/task/*/children and
    the child's cmdline first shows it (reading /proc does not wake the
    manager, but the poller competes with it for the CPUs).
    """
    deadline = time.monotonic() + timeout
    while True:
        if events is not None:
            ev = events.next_exec(max(0.0, deadline - time.monotonic()))
            if ev is not None:
                pid, ts = ev
                if pid != old and parent(pid) == manager and is_program(pid):
                    return pid, ts
        else:
            for pid in children(manager):
                if pid != old and is_program(pid):
                    return pid, time.monotonic_ns()
        if time.monotonic() > deadline:
            raise Failure(f"no new program under manager {manager} after {timeout} s")
        if not alive(manager):
            raise Failure(f"manager {manager} exited after its program was killed")


def runqueue_wait_ns(pid):
    """Time the process's threads have spent runnable but not running."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[1])
    return total


def time_restarts(daemons, programs, restarts, events):
    """Latencies in seconds from SIGKILL to the next program's exec, per
    daemon, and the manager's run-queue wait over each (time it was ready
    but another process had the CPU); the daemons take turns, kill by kill."""
    programs = list(programs)
    seen = [time.monotonic()] * len(daemons)
    times = [[] for _ in daemons]
    waits = [[] for _ in daemons]
    for _ in range(restarts):
        for i, d in enumerate(daemons):
            # The governor counts a death within backoff-limit seconds of
            # the spawn as a quick one: let the program outlive that first.
            wait = seen[i] + RESTART_BACKOFF_LIMIT + 0.3 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if events is not None:
                events.drain()
            w0 = runqueue_wait_ns(d.manager)
            t0 = time.monotonic_ns()
            os.kill(programs[i], signal.SIGKILL)
            programs[i], t1 = wait_new_program(d.manager, programs[i], events)
            seen[i] = time.monotonic()
            waits[i].append((runqueue_wait_ns(d.manager) - w0) / 1e9)
            d.note_pid(programs[i])
            times[i].append((t1 - t0) / 1e9)
    for d, program in zip(daemons, programs):
        st = d.status()
        if int(st.get("application", 0)) != program or st.get("backoff") != "0":
            raise Failure(f"{d.label}: unexpected state after restarts: {st}")
    return times, waits


def fmt_ms(s):
    return f"{s * 1e3:.2f} ms"


def run(args):
    status_runs = env_int("STATUS_RUNS", 200)
    restarts = env_int("RESTARTS", 20)
    idle_seconds = env_int("IDLE_SECONDS", 60)
    clients = {
        "ours": [args.zdctl],
        "zdaemon": [sys.executable, "-m", "zdaemon"],
    }
    labels = {"ours": "zdaemon-rs", "zdaemon": "zdaemon 5.2.1"}
    daemons = []
    res = {k: {} for k in clients}
    finished = False
    try:
        # Phase 1: default backoff-limit; status, then idle, then RSS.
        idle = {}
        for k in clients:
            d = Daemon(labels[k], clients[k], args.tmp, f"{k}-idle")
            daemons.append(d)
            idle[k] = (d, d.start())
        log(f"status x{status_runs}: both, taking turns")
        timed = time_status([d for d, _ in idle.values()], status_runs)
        for k, ts in zip(idle, timed):
            res[k]["status"] = ts
        # The health-checked site: the check connects here (the kernel
        # completes the connection from the listen backlog).
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        checked = Daemon(
            "zdaemon-rs, one 60 s check", clients["ours"], args.tmp, "ours-health",
            health_port=listener.getsockname()[1],
        )
        daemons.append(checked)
        checked.start()
        time.sleep(1)
        log(f"idle {idle_seconds} s: both managers, and ours with a health check")
        before = {k: ctxt_switches(d.manager) for k, (d, _) in idle.items()}
        before_checked = ctxt_switches(checked.manager)
        time.sleep(idle_seconds)
        res["ours"]["idle_checked"] = ctxt_switches(checked.manager)[0] - before_checked[0]
        checked.stop()
        listener.close()
        for k, (d, program) in idle.items():
            after = ctxt_switches(d.manager)
            res[k]["idle"] = after[0] - before[k][0]
            res[k]["idle_slices"] = after[1] - before[k][1]
            res[k]["threads"] = after[2]
            res[k]["mem"] = memory(d.manager)
            if not alive(program) or not is_program(program):
                raise Failure(f"{d.label}: the program died during the idle window")
        for d, _ in idle.values():
            d.stop()

        # Phase 2: backoff-limit 1; restarts after SIGKILL.
        try:
            events = ExecEvents()
            method = "exec times from the kernel's process connector"
        except OSError as e:
            events = None
            method = f"exec seen by polling /proc (no process connector: {e.strerror})"
        log(f"restart timing: {method}")
        restart = {}
        for k in clients:
            d = Daemon(labels[k], clients[k], args.tmp, f"{k}-restart", RESTART_BACKOFF_LIMIT)
            daemons.append(d)
            restart[k] = (d, d.start())
        log(f"restart x{restarts}: both, taking turns")
        timed = time_restarts(
            [d for d, _ in restart.values()], [p for _, p in restart.values()], restarts, events
        )
        for k, ts, ws in zip(restart, *timed):
            res[k]["restart"] = ts
            res[k]["restart_wait"] = ws
        for d, _ in restart.values():
            d.stop()
        finished = True
    finally:
        errors = []
        for d in daemons:
            try:
                d.stop()
            except Failure as e:
                errors.append(str(e))
        if errors and finished:
            raise Failure("\n".join(errors))

    o, z = res["ours"], res["zdaemon"]
    rows = []

    def met(ok):
        return "yes" if ok else "NO"

    so, sz = statistics.median(o["status"]), statistics.median(z["status"])
    rows.append((
        f"`zdctl status` wall, median of {status_runs}",
        fmt_ms(so), fmt_ms(sz), ratio(so, sz), "<= 1/50", met(so * 50 <= sz),
    ))
    ro, rz = statistics.median(o["restart"]), statistics.median(z["restart"])
    rows.append((
        f"restart after SIGKILL, median of {restarts}",
        fmt_ms(ro), fmt_ms(rz), ratio(ro, rz), "<= 2 ms", met(ro <= 0.002),
    ))
    mo, mz = o["mem"][0], z["mem"][0]
    rows.append((
        "zdrun RSS (VmRSS)",
        f"{mo / 1024:.2f} MiB", f"{mz / 1024:.2f} MiB", ratio(mo, mz),
        "<= 2 MiB", met(mo <= 2048),
    ))
    rows.append((
        f"idle wake-ups in {idle_seconds} s",
        str(o["idle"]), str(z["idle"]), ratio(o["idle"], z["idle"]), "0",
        met(o["idle"] == 0),
    ))
    checks = max(1, idle_seconds // 60)
    rows.append((
        f"idle wake-ups in {idle_seconds} s, one 60 s TCP check",
        str(o["idle_checked"]), "-", "-", f"<= {checks}",
        met(o["idle_checked"] <= checks),
    ))
    print()
    print_table(rows, "zdaemon 5.2.1")
    print()
    print(f"details (restart: {method}):")
    for k, r in res.items():
        st, rs = sorted(r["status"]), sorted(r["restart"])
        print(
            f"  {labels[k]}: status min {fmt_ms(st[0])}, p90 {fmt_ms(st[len(st) * 9 // 10])};"
            f" restart min {fmt_ms(rs[0])}, max {fmt_ms(rs[-1])},"
            f" manager run-queue wait median {fmt_ms(statistics.median(r['restart_wait']))};"
            f" RSS anon {r['mem'][1]} KiB + file {r['mem'][2]} KiB;"
            f" {r['threads']} thread(s), {r['idle_slices']} run slices while idle"
        )


if __name__ == "__main__":
    sys.exit(main(__doc__, "bench/supervise", run))
