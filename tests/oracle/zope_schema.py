#!/usr/bin/env python3
"""Load zope.conf files the way Zope's runwsgi and zconsole do.

Usage: python zope_schema.py FILE [FILE...]

For each FILE prints one line of JSON to stdout, in argument order:
{"file", "ok": true} or {"file", "ok": false, "error": MESSAGE}.

The loader is Zope2.Startup.options.ZopeWSGIOptions (Zope's wsgischema.xml
with its conditional tempstorage import), which `make_wsgi_app` (runwsgi)
and `configure_wsgi` (zconsole) both call. Any exception while loading
counts as a refusal: Zope would not start with that file.
"""

import json
import sys

from Zope2.Startup.options import ZopeWSGIOptions

schema = None
for path in sys.argv[1:]:
    opts = ZopeWSGIOptions(configfile=path)
    if schema is None:
        opts.load_schema()
        schema = opts.schema
    opts.schema = schema
    try:
        opts.load_configfile()
        result = {"file": path, "ok": True}
    except Exception as e:  # noqa: BLE001 -- any failure stops Zope
        result = {"file": path, "ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
