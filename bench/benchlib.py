"""Helpers shared by the benchmark scripts (bench/supervise.py,
bench/site.py and bench/soak.py): process inspection through /proc, cleanup, the table."""

import argparse
import os
import signal
import subprocess
import sys


class Failure(Exception):
    """Something did not run as it must; the benchmark cannot continue."""


def env_int(name, default):
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        raise Failure(f"{name} must be an integer, not {value!r}")
    if n < 1:
        raise Failure(f"{name} must be at least 1")
    return n


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def alive(pid):
    """Is `pid` a process that is not a zombie?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def children(pid):
    """Pids of the children of every thread of `pid`."""
    out = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.update(int(w) for w in f.read().split())
        except FileNotFoundError:
            pass
    return out


def proc_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def run_ctl(label, argv, action, timeout=60, check=True):
    """Run a control command (`argv` + `action`) to completion; a Failure
    if it takes over `timeout` seconds or, with `check`, exits non-zero."""
    try:
        p = subprocess.run(
            list(argv) + list(action),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"{label}: `{' '.join(action)}` took over {timeout} s")
    if check and p.returncode != 0:
        raise Failure(
            f"{label}: `{' '.join(action)}` exited {p.returncode}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}"
        )
    return p


def ratio(ours, theirs):
    if theirs == 0:
        return "-"
    r = ours / theirs
    if r == 0:
        return "0"
    if r < 0.5:
        return f"1/{1 / r:.0f}"
    return f"x{r:.2f}"


def print_table(rows, theirs):
    """The result table: ours beside `theirs` (the other program's name)."""
    head = ("measure", "zdaemon-rs", theirs, "ratio", "target", "met?")
    table = [head] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    sep = "-+-".join("-" * w for w in widths)
    for i, r in enumerate(table):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print(sep)


def main(doc, name, run, add_args=None):
    """The scripts' entry point: --zdctl and --tmp (and whatever `add_args`
    adds to the parser), SIGTERM as an exit that still runs the cleanups, a
    Failure as a message and status 1."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--zdctl", required=True, help="our release zdctl")
    ap.add_argument("--tmp", required=True, help="empty scratch directory")
    if add_args is not None:
        add_args(ap)
    args = ap.parse_args()

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        run(args)
    except Failure as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    return 0
