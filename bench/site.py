#!/usr/bin/env python3
"""Measure a 1000-node site under zdaemon-rs beside supervisord, in one run.

Usage: python -B site.py --zdctl PATH --tmp DIR

Run by bench/site with the bench venv's Python (which has supervisor, so
supervisord and supervisorctl sit beside it); --zdctl is our release zdctl
(it starts the zdrun beside it), --tmp an empty scratch directory for
configs, sockets and logs.

Both managers run NODES (1000) copies of `sleep 1000`: ours from one site
config with a `<program nNNN>` section per node, supervisord from one
[program:sleeper] with numprocs=NODES, startsecs=0, autostart, output
discarded (stdout_logfile=NONE, redirect_stderr) and loglevel=warn (ours
writes no event log here either).

  start    wall time from launching the manager until every node runs,
           median of STARTS starts; each manager starts alone (the other
           stopped), and the two take turns.  Ours: `zdctl -C site.conf
           start`, which starts zdrun daemonized and returns once every node
           reports running (it asks every 10 ms).  supervisord: from
           spawning `supervisord -c CONF` until its XML-RPC
           getAllProcessInfo, asked in process every 10 ms, shows every
           process RUNNING.  Both call a node running once it is forked,
           maybe before its exec, so the details add when the last program
           was forked (its /proc starttime, 10 ms resolution), when a poll
           of /proc after the manager's report first found every program
           exec'd (`sleep`), and how long the stop took.
  rss      VmRSS of the manager with every node running, after the status
           runs and the idle window (steady state); details add VmHWM and
           the RssAnon/RssFile split.
  status   wall time of `zdctl -C site.conf status` and of `supervisorctl
           -c CONF status` (spawn to exit, all 1000 lines to /dev/null),
           median of STATUS_RUNS after one warm-up each, taking turns.
  idle     context switches (voluntary + nonvoluntary, summed over the
           manager's threads) during IDLE_SECONDS with nothing to do; both
           managers are watched in the same window.

Then a large site, BIG_NODES (10000; 0 skips it), with one start each:
  start    as above, and the worst answer to a raw `status` request on
           zdrun's socket, asked every 20 ms while it starts; the ratio to
           the small site's start (linear: <= 12x for 10x the nodes).
           supervisord gets SUPERVISORD_CAP seconds (180); if not every
           process is RUNNING by then, the table says how many were.
  status   `zdctl status` of all, median of BIG_STATUS_RUNS (5).
  reload   `zdctl reload` with the file unchanged, median of 3.
  rss      zdrun's VmRSS with every node running.

Environment: NODES (1000), STARTS (3), STATUS_RUNS (20), IDLE_SECONDS (60),
BIG_NODES (10000), BIG_STATUS_RUNS (5), SUPERVISORD_CAP (180).

Prints a table; exits non-zero only if something fails to run.  Every
daemon started is stopped on the way out, whatever happens; manager and
program pids are also listed in DIR/pids for the caller's last-resort
cleanup.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import xmlrpc.client

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
    ratio,
)

PROGRAM = ["sleep", "1000"]
PROGRAM_CMDLINE = b"\0".join(w.encode() for w in PROGRAM) + b"\0"
POLL = 0.01
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc ------------------------------------------------------------------


def kill_tree(pid):
    """SIGKILL a manager and every child it has, also one between fork and
    exec: stopped first, it cannot start another while they are listed."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return
    for child in children(pid):
        kill_quietly(child)
    kill_quietly(pid)


def is_program(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == PROGRAM_CMDLINE
    except (FileNotFoundError, ProcessLookupError):
        return False


def start_time(pid):
    """The process's start, in seconds on the CLOCK_BOOTTIME scale."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[19]) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def ctxt_switches(pid):
    """(context switches, threads) summed over the process's threads."""
    switches = 0
    tids = os.listdir(f"/proc/{pid}/task")
    for tid in tids:
        st = proc_fields(f"/proc/{pid}/task/{tid}/status")
        switches += int(st["voluntary_ctxt_switches"][0])
        switches += int(st["nonvoluntary_ctxt_switches"][0])
    return switches, len(tids)


def memory(pid):
    """(VmRSS, VmHWM, RssAnon, RssFile) in KiB."""
    st = proc_fields(f"/proc/{pid}/status")
    return tuple(int(st[k][0]) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"))


def wait_gone(pids, timeout):
    """Wait until none of `pids` is alive; the ones left after `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL)
        left = [p for p in left if alive(p)]
    return left


# --- the two managers ---------------------------------------------------------


class Manager:
    """One implementation's manager running NODES programs."""

    label = ""
    status_argv = []

    def __init__(self, tmp, tag, nodes):
        self.tmp = tmp
        self.nodes = nodes
        self.dir = os.path.join(tmp, tag)
        os.mkdir(self.dir)
        self.manager = None
        self.programs = []
        self.started = False

    def note_pids(self, pids):
        with open(os.path.join(self.tmp, "pids"), "a") as f:
            f.write("".join(f"{p}\n" for p in pids))

    def start(self):
        """Launch the manager; return the seconds until it reports every
        node running, and until /proc shows every program exec'd."""
        self.started = True
        t0 = time.perf_counter()
        self.boot0 = time.clock_gettime(time.CLOCK_BOOTTIME)
        try:
            self.launch_and_wait()
            reported = time.perf_counter() - t0
        finally:
            self.collect()
        self.check_programs()
        return reported, time.perf_counter() - t0

    def last_fork(self):
        """Seconds from the launch to the fork of the last program."""
        starts = [start_time(p) for p in self.programs]
        return max(s for s in starts if s is not None) - self.boot0

    def check_programs(self, timeout=10):
        if getattr(self, "reached", None):
            return  # cut short by its time cap: not all run
        """Every program is a child of the manager and has exec'd (a manager
        may call a node running between its fork and its exec)."""
        if len(self.programs) != self.nodes or not self.manager:
            raise Failure(f"{self.label}: {len(self.programs)} of {self.nodes} programs running")
        mine = children(self.manager)
        strays = [p for p in self.programs if p not in mine]
        if strays:
            raise Failure(f"{self.label}: {len(strays)} programs are not its children, e.g. {strays[0]}")
        deadline = time.monotonic() + timeout
        left = self.programs
        while True:
            left = [p for p in left if not is_program(p)]
            if not left:
                return
            if time.monotonic() > deadline:
                raise Failure(f"{self.label}: {len(left)} programs are not `sleep`, e.g. {left[0]}")
            time.sleep(POLL)

    def stop(self):
        """Stop the manager and its programs; return the seconds it took."""
        if not self.started:
            return 0.0
        self.started = False
        t0 = time.perf_counter()
        try:
            self.shutdown()
            left = wait_gone([self.manager] if self.manager else [], 60)
            if left:
                raise Failure(f"{self.label}: manager {left[0]} still running 60 s after stop")
            left = wait_gone(self.programs, 10)
            if left:
                raise Failure(f"{self.label}: {len(left)} programs left after stop")
            return time.perf_counter() - t0
        finally:
            # Whatever happened above, nothing of ours outlives this.
            if self.manager and alive(self.manager):
                kill_tree(self.manager)
            for pid in self.programs:
                if is_program(pid):
                    kill_quietly(pid)
            self.manager = None
            self.programs = []


def run_quiet(label, argv, timeout):
    try:
        p = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"{label}: `{' '.join(argv)}` took over {timeout} s")
    if p.returncode != 0:
        raise Failure(
            f"{label}: `{' '.join(argv)}` exited {p.returncode}\n"
            f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}"
        )
    return p


class Ours(Manager):
    label = "zdaemon-rs"

    def __init__(self, tmp, nodes, zdctl, tag="ours"):
        super().__init__(tmp, tag, nodes)
        self.conf = os.path.join(self.dir, "site.conf")
        lines = ["<runner>", "  socket-name " + os.path.join(self.dir, "site.sock"), "</runner>"]
        for i in range(nodes):
            lines += [f"<program n{i:03d}>", "  program " + " ".join(PROGRAM), "</program>"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.ctl = [zdctl, "-C", self.conf]
        self.status_argv = self.ctl + ["status"]

    def launch_and_wait(self):
        run_quiet(self.label, self.ctl + ["start"], timeout=120)

    def collect(self):
        p = subprocess.run(
            self.ctl + ["status", "--json"], capture_output=True, text=True, timeout=60
        )
        try:
            info = json.loads(p.stdout)
        except ValueError:
            return
        self.manager = info.get("manager_pid") or self.manager
        if self.manager:
            self.note_pids([self.manager])
        nodes = info.get("nodes", [])
        self.programs = [n["pid"] for n in nodes if n.get("state") == "running" and n.get("pid")]
        self.note_pids(self.programs)

    def shutdown(self):
        run_quiet(self.label, self.ctl + ["stop"], timeout=60)


class Supervisord(Manager):
    label = "supervisord"

    def __init__(self, tmp, nodes, bindir, tag="supervisord", cap=None):
        super().__init__(tmp, tag, nodes)
        # None: every program must run within 120 s; else stop waiting
        # after `cap` seconds and note how far it got.
        self.cap = cap
        # Reached when the cap cut the start short: (seconds, RUNNING).
        self.reached = None
        self.conf = os.path.join(self.dir, "supervisord.conf")
        self.sock = os.path.join(self.dir, "supervisor.sock")
        self.pidfile = os.path.join(self.dir, "supervisord.pid")
        with open(self.conf, "w") as f:
            f.write(
                f"""\
[unix_http_server]
file={self.sock}

[supervisord]
logfile={self.dir}/supervisord.log
pidfile={self.pidfile}
childlogdir={self.dir}
loglevel=warn
minfds={min(max(1024, 4 * nodes + 256), hard_nofile())}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.sock}

[program:sleeper]
command={" ".join(PROGRAM)}
process_name=%(program_name)s_%(process_num)04d
numprocs={nodes}
startsecs=0
autostart=true
stdout_logfile=NONE
redirect_stderr=true
"""
            )
        self.supervisord = [os.path.join(bindir, "supervisord"), "-c", self.conf]
        self.status_argv = [os.path.join(bindir, "supervisorctl"), "-c", self.conf, "status"]

    def rpc(self):
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, "unix://" + self.sock)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def read_pidfile(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def launch_and_wait(self):
        try:
            os.unlink(self.pidfile)  # a stale one would name the wrong process
        except FileNotFoundError:
            pass
        launcher = subprocess.Popen(self.supervisord, stdin=subprocess.DEVNULL)
        self.reached = None
        best = 0
        try:
            t0 = time.monotonic()
            deadline = t0 + (self.cap or 120)
            while True:
                if launcher is not None and launcher.poll() is not None:
                    if launcher.returncode != 0:
                        raise Failure(f"{self.label}: supervisord exited {launcher.returncode}")
                    launcher = None
                if not self.manager:
                    self.manager = self.read_pidfile()
                try:
                    procs = self.rpc().getAllProcessInfo()
                except (OSError, xmlrpc.client.Error):
                    procs = None
                if procs is not None and len(procs) == self.nodes:
                    best = sum(p["statename"] == "RUNNING" for p in procs)
                    if best == self.nodes:
                        break
                if time.monotonic() > deadline:
                    if self.cap is None:
                        raise Failure(f"{self.label}: not every program RUNNING after 120 s")
                    forked = len(children(self.manager)) if self.manager else 0
                    self.reached = (time.monotonic() - t0, best, forked)
                    break
                # Asking a large site every 10 ms would be most of its work.
                time.sleep(POLL if self.nodes <= 1000 else 1.0)
        finally:
            if launcher is not None:
                launcher.wait()

    def collect(self):
        self.manager = self.manager or self.read_pidfile()
        try:
            rpc = self.rpc()
            self.manager = self.manager or rpc.getPID()
            procs = rpc.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            procs = []
        if self.manager:
            self.note_pids([self.manager])
        self.programs = [p["pid"] for p in procs if p["pid"]]
        self.note_pids(self.programs)

    def shutdown(self):
        try:
            self.rpc().shutdown()
        except (OSError, xmlrpc.client.Error) as e:
            raise Failure(f"{self.label}: shutdown failed: {e}")


# --- measuring ----------------------------------------------------------------


def time_status(managers, runs):
    """Wall times in seconds of each manager's `status` client (spawn to
    reaped exit); the implementations take turns, run by run."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    times = [[] for _ in managers]
    try:
        for m in managers:  # warm-up, and a check of the output
            out = run_quiet(m.label, m.status_argv, timeout=60).stdout
            if out.count("\n") != m.nodes or out.count("RUNNING") + out.count(" running;") != m.nodes:
                raise Failure(f"{m.label}: `status` does not show {m.nodes} running:\n{out[:500]}")
        for _ in range(runs):
            for m, ts in zip(managers, times):
                argv = m.status_argv
                t0 = time.perf_counter_ns()
                pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
                _, wst = os.waitpid(pid, 0)
                t1 = time.perf_counter_ns()
                code = os.waitstatus_to_exitcode(wst)
                if code != 0:
                    raise Failure(f"{m.label}: `status` exited {code}")
                ts.append((t1 - t0) / 1e9)
    finally:
        os.close(devnull)
    return times


def hard_nofile():
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def socket_status(path):
    """Seconds one raw `status` request on zdrun's socket takes, or None
    if it is not there yet."""
    import socket

    t0 = time.perf_counter()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(path)
            s.sendall(b"status\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
    except OSError:
        return None
    return time.perf_counter() - t0


def large(args, big, small_start, bindir):
    """The large site: start (and the worst status answer while it
    starts), status of all, a reload that changes nothing and RSS, beside
    supervisord's start within SUPERVISORD_CAP seconds."""
    cap = env_int("SUPERVISORD_CAP", 180)
    status_runs = env_int("BIG_STATUS_RUNS", 5)
    ours = Ours(args.tmp, big, args.zdctl, tag=f"ours{big}")
    theirs = Supervisord(args.tmp, big, bindir, tag=f"supervisord{big}", cap=cap)
    res = {}
    try:
        log(f"start: zdaemon-rs, {big} nodes, asking status every 20 ms meanwhile")
        ours.started = True
        sock = os.path.join(ours.dir, "site.sock")
        t0 = time.perf_counter()
        # Its output to a file: 10,000 lines would fill a pipe we only
        # read at the end.
        out_path = os.path.join(ours.dir, "start.out")
        with open(out_path, "w") as out_file:
            starter = subprocess.Popen(
                ours.ctl + ["start"], stdin=subprocess.DEVNULL,
                stdout=out_file, stderr=subprocess.STDOUT,
            )
        worst, answers = 0.0, 0
        while starter.poll() is None:
            took = socket_status(sock)
            if took is not None:
                worst, answers = max(worst, took), answers + 1
            time.sleep(0.02)
        res["start"] = time.perf_counter() - t0
        with open(out_path) as f:
            out = f.read()
        ours.collect()
        if starter.returncode != 0 or "not running" in out:
            raise Failure(f"zdaemon-rs: `start` exited {starter.returncode}: {out[-1000:]}")
        ours.check_programs(timeout=60)
        res["worst"], res["answers"] = worst, answers
        log(f"status x{status_runs}, reload x3: zdaemon-rs")
        res["status"] = time_status([ours], status_runs)[0]
        reloads = []
        for _ in range(3):
            r0 = time.perf_counter()
            p = run_quiet(ours.label, ours.ctl + ["reload"], timeout=60)
            reloads.append(time.perf_counter() - r0)
            if "changed none" not in p.stdout:
                raise Failure(f"zdaemon-rs: reload changed something: {p.stdout}")
        res["reload"] = reloads
        res["mem"] = memory(ours.manager)
        res["stop"] = ours.stop()

        log(f"start: supervisord, {big} nodes, capped at {cap} s")
        reported, _ = theirs.start()
        res["theirs_start"] = reported
        res["theirs_reached"] = theirs.reached
        res["theirs_mem"] = memory(theirs.manager) if theirs.manager else (0, 0, 0, 0)
        try:
            res["theirs_stop"] = theirs.stop()
        except Failure as e:
            log(str(e))
            res["theirs_stop"] = float("nan")
    finally:
        for m in (ours, theirs):
            try:
                m.stop()
            except Failure as e:
                log(str(e))

    def met(ok):
        return "yes" if ok else "NO"

    so = res["start"]
    reached = res["theirs_reached"]
    if reached:
        theirs_start = f"> {reached[0]:.0f} s ({reached[2]} forked, {reached[1]} RUNNING)"
        r = f"< 1/{reached[0] / so:.0f}"
    else:
        theirs_start = fmt_s(res["theirs_start"])
        r = ratio(so, res["theirs_start"])
    rows = [(
        f"time until all {big} run (one start)", fmt_s(so), theirs_start, r,
        "<= 5 s", met(so <= 5.0),
    ), (
        f"  against the {env_int('NODES', 1000)}-node start ({fmt_s(small_start)})",
        f"{so / small_start:.1f}x", "", "", "<= 12x", met(so <= 12 * small_start),
    ), (
        "worst `status` answer while starting", fmt_ms(res["worst"]), "", "",
        "<= 50 ms", met(res["worst"] <= 0.050),
    )]
    to = statistics.median(res["status"])
    rows.append((
        f"`status` of all, wall, median of {status_runs}", fmt_ms(to), "", "",
        "<= 100 ms", met(to <= 0.100),
    ))
    ro = statistics.median(res["reload"])
    rows.append((
        "`reload` with nothing changed, median of 3", fmt_ms(ro), "", "",
        "<= 200 ms", met(ro <= 0.200),
    ))
    mo, ms = res["mem"][0], res["theirs_mem"][0]
    rows.append((
        f"manager RSS with {big} running (VmRSS)", f"{mo / 1024:.2f} MiB",
        f"{ms / 1024:.2f} MiB" if ms else "-", ratio(mo, ms) if ms else "",
        "<= 32 MiB", met(mo <= 32 * 1024),
    ))
    print()
    print(f"site of {big}:")
    print_table(rows, "supervisord")
    print()
    print(
        f"details: zdaemon-rs answered {res['answers']} status requests while starting;"
        f" reloads {', '.join(fmt_ms(t) for t in res['reload'])};"
        f" stop {fmt_s(res['stop'])}; supervisord stop {fmt_s(res['theirs_stop'])}"
    )


def fmt_s(s):
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_ms(s):
    return f"{s * 1e3:.1f} ms"


def run(args):
    nodes = env_int("NODES", 1000)
    starts = env_int("STARTS", 3)
    status_runs = env_int("STATUS_RUNS", 20)
    idle_seconds = env_int("IDLE_SECONDS", 60)
    bindir = os.path.dirname(sys.executable)
    managers = {
        "ours": Ours(args.tmp, nodes, args.zdctl),
        "theirs": Supervisord(args.tmp, nodes, bindir),
    }
    res = {k: {"start": [], "exec": [], "fork": [], "stop": []} for k in managers}
    finished = False
    try:
        # Phase 1: timed starts, each manager alone, taking turns.
        for r in range(starts):
            order = list(managers) if r % 2 == 0 else list(reversed(managers))
            for k in order:
                m = managers[k]
                log(f"start {r + 1}/{starts}: {m.label}, {nodes} nodes")
                reported, execd = m.start()
                res[k]["start"].append(reported)
                res[k]["exec"].append(execd)
                res[k]["fork"].append(m.last_fork())
                res[k]["stop"].append(m.stop())

        # Phase 2: both running; status, then idle, then memory.
        log("steady state: both managers running")
        for m in managers.values():
            m.start()
        log(f"status x{status_runs}: both, taking turns")
        timed = time_status(list(managers.values()), status_runs)
        for k, ts in zip(managers, timed):
            res[k]["status"] = ts
        time.sleep(1)
        log(f"idle {idle_seconds} s: both managers")
        before = {k: ctxt_switches(m.manager) for k, m in managers.items()}
        time.sleep(idle_seconds)
        for k, m in managers.items():
            after = ctxt_switches(m.manager)
            res[k]["idle"] = after[0] - before[k][0]
            res[k]["threads"] = after[1]
            res[k]["mem"] = memory(m.manager)
            m.check_programs()
        for m in managers.values():
            m.stop()
        finished = True
    finally:
        errors = []
        for m in managers.values():
            try:
                m.stop()
            except Failure as e:
                errors.append(str(e))
        if errors and finished:
            raise Failure("\n".join(errors))

    o, s = res["ours"], res["theirs"]
    SMALL_STARTS.extend(o["start"])

    def met(ok):
        return "yes" if ok else "NO"

    rows = []
    so, ss = statistics.median(o["start"]), statistics.median(s["start"])
    rows.append((
        f"time until all {nodes} run, median of {starts}",
        fmt_s(so), fmt_s(ss), ratio(so, ss), "<= 1 s", met(so <= 1.0),
    ))
    mo, ms = o["mem"][0], s["mem"][0]
    rows.append((
        f"manager RSS with {nodes} running (VmRSS)",
        f"{mo / 1024:.2f} MiB", f"{ms / 1024:.2f} MiB", ratio(mo, ms),
        "<= 16 MiB", met(mo <= 16 * 1024),
    ))
    to, ts = statistics.median(o["status"]), statistics.median(s["status"])
    rows.append((
        f"`status` of all, wall, median of {status_runs}",
        fmt_ms(to), fmt_ms(ts), ratio(to, ts), "<= 20 ms", met(to <= 0.020),
    ))
    rows.append((
        f"idle wake-ups in {idle_seconds} s",
        str(o["idle"]), str(s["idle"]), ratio(o["idle"], s["idle"]), "0",
        met(o["idle"] == 0),
    ))
    print()
    print_table(rows, "supervisord")
    print()
    print("details:")
    for k, m in managers.items():
        r = res[k]
        st = sorted(r["status"])
        print(
            f"  {m.label}: starts {', '.join(fmt_s(t) for t in r['start'])}"
            f" (last fork {', '.join(fmt_s(t) for t in r['fork'])};"
            f" all exec'd by {', '.join(fmt_s(t) for t in r['exec'])});"
            f" stops {', '.join(fmt_s(t) for t in r['stop'])};"
            f" status min {fmt_ms(st[0])}, max {fmt_ms(st[-1])};"
            f" VmHWM {r['mem'][1] / 1024:.2f} MiB,"
            f" RSS anon {r['mem'][2]} KiB + file {r['mem'][3]} KiB;"
            f" {r['threads']} thread(s)"
        )


def run_all(args):
    run(args)
    big = env_int("BIG_NODES", 10000)
    if big:
        large(args, big, statistics.median(SMALL_STARTS), os.path.dirname(sys.executable))


SMALL_STARTS = []


if __name__ == "__main__":
    sys.exit(main(__doc__, "bench/site", run_all))
