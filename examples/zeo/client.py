"""A ZEO client node: commit a marker every INTERVAL seconds, forever.

    client.py CONFIG NAME ACKS [INTERVAL [STATUS]]

CONFIG is a ZODB config (client.conf) whose storage is a ZEO ClientStorage.
Commit number N of client NAME sets root[NAME][N] in the database; once
transaction.commit() has returned, the line "NAME N" is appended to ACKS.
Every line in ACKS is thus a commit the storage server acknowledged, and
must be in the database (check.py verifies it).

With STATUS (HOST:PORT), the client answers HTTP GETs there, for zdrun's
health check: 200 and "NAME committed N" while commits go through, 503
before the first one and once none has for STALE seconds (a hung client,
or a server away that long).

While the storage server is away, commits fail with ClientDisconnected;
the client waits and retries the same commit until the server is back.
"""

import http.server
import logging
import signal
import sys
import threading
import time

import transaction
import ZODB.config
from BTrees.IOBTree import IOBTree
from transaction.interfaces import TransientError

log = logging.getLogger("client")


def last_acknowledged(acks):
    """The highest commit number in ACKS, so a restarted client goes on."""
    last = 0
    try:
        with open(acks) as f:
            for line in f:
                if line.endswith("\n"):
                    last = max(last, int(line.split()[1]))
    except FileNotFoundError:
        pass
    return last


STALE = 60
# The last commit: (number, time), for the status page.
last = (0, None)


def serve_status(address, name):
    """Answer GETs on address (HOST:PORT) in a thread of their own."""
    host, port = address.rsplit(":", 1)

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            n, at = last
            if at is not None and time.time() - at < STALE:
                code, text = 200, f"{name} committed {n}\n"
            elif at is None:
                code, text = 503, f"{name}: no commit yet\n"
            else:
                code, text = 503, f"{name}: no commit for {time.time() - at:.0f} s\n"
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer((host, int(port)), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def commit(tm, conn, name, n):
    """Commit number n; retry while the server is away or on conflict."""
    while True:
        try:
            tm.begin()
            root = conn.root()
            if name not in root:
                root[name] = IOBTree()
            root[name][n] = time.time()
            tm.get().note(f"{name} {n}")
            tm.commit()
            return
        except TransientError as e:
            tm.abort()
            log.warning("commit %d not done, retrying: %r", n, e)
            time.sleep(0.2)


def main(argv):
    config, name, acks = argv[1:4]
    interval = float(argv[4]) if len(argv) > 4 else 1.0
    global last
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s {name} %(levelname)s %(message)s"
    )
    # zdrun stops a node with SIGTERM: close the database on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    n = last_acknowledged(acks)
    if len(argv) > 5:
        serve_status(argv[5], name)
    db = ZODB.config.databaseFromURL(config)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    print(f"{name}: connected, committing every {interval}s from #{n + 1}")
    try:
        with open(acks, "a") as out:
            while True:
                n += 1
                commit(tm, conn, name, n)
                out.write(f"{name} {n}\n")
                out.flush()
                last = (n, time.time())
                time.sleep(interval)
    finally:
        conn.close()
        db.close()


if __name__ == "__main__":
    main(sys.argv)
