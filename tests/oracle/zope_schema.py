#!/usr/bin/env python3
"""Load zope.conf files the way Zope's runwsgi and zconsole do.

Usage: python zope_schema.py FILE [FILE...]

For each FILE prints one line of JSON to stdout, in argument order:
{"file", "ok": true, "values": {...}} or {"file", "ok": false, "error": MESSAGE}.
"values" holds what the loaded configuration says, under the keys zdctl's
`show --json --all` uses: the top-level keys under "zope" (hyphenated),
"environment", and each database's name and mount points.

The loader is Zope2.Startup.options.ZopeWSGIOptions (Zope's wsgischema.xml
with its conditional tempstorage import), which `make_wsgi_app` (runwsgi)
and `configure_wsgi` (zconsole) both call. Any exception while loading
counts as a refusal: Zope would not start with that file.
"""

import json
import sys

from Zope2.Startup.options import ZopeWSGIOptions

KEYS = [
    "instancehome", "clienthome", "debug-mode", "debug-exceptions", "locale",
    "datetime-format", "python-check-interval", "http-realm",
    "automatically-quote-dtml-request-data", "zmi-bookmarkable-urls",
    "pid-filename", "max-conflict-retries", "security-policy-implementation",
    "skip-authentication-checking", "skip-ownership-checking",
    "verbose-security", "default-zpublisher-encoding", "webdav-source-port",
    "enable-ms-public-header", "enable-xmlrpc",
]


def values(root):
    zope = {k: getattr(root, k.replace("-", "_")) for k in KEYS}
    zope["trusted-proxy"] = list(root.trusted_proxies or [])
    dos = root.dos_protection
    zope["dos-protection"] = dos and {
        a.replace("_", "-"): getattr(dos, a) for a in dos.getSectionAttributes()
    }
    zope["product-config"] = {
        name: dict(mapping) for name, mapping in root.product_config.items()
    }
    return {
        "zope": zope,
        "environment": dict(root.environment),
        "databases": [
            {
                "name": db.config.getSectionName(),
                "mount-points": list(db.config.mount_points),
            }
            for db in root.databases
        ],
    }


schema = None
for path in sys.argv[1:]:
    opts = ZopeWSGIOptions(configfile=path)
    if schema is None:
        opts.load_schema()
        schema = opts.schema
    opts.schema = schema
    try:
        opts.load_configfile()
        result = {"file": path, "ok": True, "values": values(opts.configroot)}
    except Exception as e:  # noqa: BLE001 -- any failure stops Zope
        result = {"file": path, "ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
