#!/usr/bin/env python3
"""Time ZConfig loading a ZEO configuration file, in-process.

Usage: python zconfig_parse.py FILE ITERATIONS

Loads ZEO's schema (ZEO/schema.xml) once, outside the timing, then times
ZConfig.loadConfig(schema, FILE) ITERATIONS times (after one untimed
warm-up run) and prints one line of JSON to stdout:

  {"iterations", "median_s", "min_s", "max_s", "storages",
   "zconfig", "python"}

"storages" is the number of top-level storage sections ZConfig found, so
the caller can check both loaders saw the same file.  Any ZConfig error
propagates (traceback, non-zero exit): the file must be valid.

Requires ZConfig and ZEO (the oracle venv has ZConfig 4.3 and ZEO 6.2).
"""

import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time

import ZConfig
import ZEO


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: zconfig_parse.py FILE ITERATIONS")
    path = argv[1]
    iterations = int(argv[2])
    if iterations < 1:
        sys.exit("ITERATIONS must be at least 1")

    schema = ZConfig.loadSchema(
        os.path.join(os.path.dirname(ZEO.__file__), "schema.xml"))

    config, _ = ZConfig.loadConfig(schema, path)  # warm-up, and validation
    times = []
    for _ in range(iterations):
        gc.collect()
        start = time.perf_counter()
        ZConfig.loadConfig(schema, path)
        times.append(time.perf_counter() - start)

    print(json.dumps({
        "iterations": iterations,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "storages": len(config.storages),
        "zconfig": importlib.metadata.version("ZConfig"),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main(sys.argv)
