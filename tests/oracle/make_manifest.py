#!/usr/bin/env python3
"""Regenerate tests/corpus/MANIFEST.tsv by running zconfig_oracle.py.

Usage: python make_manifest.py [--python PYTHON] [--check]

PYTHON is the interpreter that has ZConfig/zdaemon/ZEO/ZODB installed
(default: $ZCONFIG_ORACLE_PYTHON, else the interpreter running this script).
With --check the manifest is not written; the script exits 1 if the file
on disk differs from what would be generated.

One line per corpus file (valid/*.conf and invalid/*.conf; files under
valid/inc/ are include fragments, not entries), sorted by path:

    relative/path <TAB> ok|error|skip <TAB> kind <TAB> line|- <TAB> message|-

* path is relative to tests/corpus/.
* line is the `lineno` attribute of the exception (even when ZConfig's
  message does not print it), or - when it has none.
* message is str(exception) with "file://" + the absolute corpus directory,
  and the bare absolute corpus directory, replaced by <CORPUS> (so the manifest does not depend on the checkout location) and
  backslash, tab, CR and LF escaped as \\\\, \\t, \\r, \\n.

The script also fails (exit 1) if a valid/ file does not load, an invalid/
file loads, or the oracle reports an OracleError.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.normpath(os.path.join(HERE, "..", "corpus"))
ORACLE = os.path.join(HERE, "zconfig_oracle.py")


def escape(s):
    return (s.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\r", "\\r").replace("\n", "\\n"))


def corpus_files():
    out = []
    for sub in ("valid", "invalid"):
        d = os.path.join(CORPUS, sub)
        for name in sorted(os.listdir(d)):
            if name.endswith(".conf") and os.path.isfile(os.path.join(d, name)):
                out.append(sub + "/" + name)
    return out


def main(argv):
    python = os.environ.get("ZCONFIG_ORACLE_PYTHON") or sys.executable
    check = False
    args = list(argv[1:])
    while args:
        a = args.pop(0)
        if a == "--python":
            python = args.pop(0)
        elif a == "--check":
            check = True
        else:
            sys.exit("unknown argument %r" % a)

    files = corpus_files()
    proc = subprocess.run([python, ORACLE] + files, cwd=CORPUS,
                          stdout=subprocess.PIPE, check=True)
    lines = proc.stdout.decode("utf-8").splitlines()
    if len(lines) != len(files):
        sys.exit("oracle printed %d lines for %d files"
                 % (len(lines), len(files)))

    rows, problems = [], []
    abs_prefixes = ["file://" + CORPUS, CORPUS]
    for path, line in zip(files, lines):
        res = json.loads(line)
        if res["file"] != path:
            sys.exit("oracle output out of order at %s" % path)
        kind = res["kind"]
        if "config" in res:
            status, lineno, msg = "ok", "-", "-"
        elif "skip" in res:
            status, lineno, msg = "skip", "-", escape(res["skip"])
        else:
            status = "error"
            lineno = "-" if res["line"] is None else str(res["line"])
            msg = res["error"]
            for p in abs_prefixes:
                msg = msg.replace(p, "<CORPUS>")
            msg = escape(msg)
            if res["class"] == "OracleError":
                problems.append("%s: %s" % (path, res["error"]))
        if path.startswith("valid/") and status != "ok":
            problems.append("%s: expected ok, got %s %s"
                            % (path, status, res.get("error")))
        if path.startswith("invalid/") and status != "error":
            problems.append("%s: expected an error, got %s" % (path, status))
        rows.append("\t".join([path, status, kind, lineno, msg]))

    text = "\n".join(rows) + "\n"
    target = os.path.join(CORPUS, "MANIFEST.tsv")
    if check:
        try:
            with open(target, encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            problems.append("MANIFEST.tsv is out of date")
    else:
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    print("%d files: %d ok, %d error, %d skip"
          % (len(rows), sum(r.split("\t")[1] == "ok" for r in rows),
             sum(r.split("\t")[1] == "error" for r in rows),
             sum(r.split("\t")[1] == "skip" for r in rows)),
          file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
