"""Check that every acknowledged commit is in the storage.

    check.py DATA.FS ACKS...

Opens the FileStorage read-only (stop the storage server first) and looks
up each "NAME N" line of each ACKS file as root[NAME][N]. Prints one line
per client and exits 1 if any acknowledged commit is missing.
"""

import sys

import ZODB
import ZODB.FileStorage


def main(argv):
    path, ack_files = argv[1], argv[2:]
    storage = ZODB.FileStorage.FileStorage(path, read_only=True)
    db = ZODB.DB(storage)
    conn = db.open()
    root = conn.root()
    lost = 0
    for acks in ack_files:
        acked = {}
        with open(acks) as f:
            for line in f:
                if line.endswith("\n"):
                    name, n = line.split()
                    acked.setdefault(name, []).append(int(n))
        for name, numbers in sorted(acked.items()):
            stored = root.get(name, {})
            missing = [n for n in numbers if n not in stored]
            lost += len(missing)
            print(
                f"{name}: {len(numbers)} acknowledged, {len(stored)} stored,"
                f" {len(missing)} missing {missing[:20]}"
            )
    conn.close()
    db.close()
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main(sys.argv)
