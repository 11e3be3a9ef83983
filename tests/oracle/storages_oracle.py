#!/usr/bin/env python3
"""Oracle for the storage add-ons: zconfig_oracle.py's output, plus the
section values of tempstorage, RelStorage and zc.zlibstorage, and for a
zope.conf (Zope's WSGI schema) the storage of each <zodb_db>.

Usage: python storages_oracle.py FILE [FILE...]; one JSON line per FILE.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ZConfig  # noqa: E402
import ZConfig.matcher  # noqa: E402
import Zope2.Startup  # noqa: E402
import zconfig_oracle as zo  # noqa: E402

_value = zo.value


def value(v, where):
    # `<pragmas>`' free keys: name -> every value given.
    if isinstance(v, dict):
        return {k: _value(x, where) for k, x in v.items()}
    # The add-ons' section datatypes keep their SectionValue in `config`.
    sv = getattr(v, "config", None)
    if (isinstance(sv, ZConfig.matcher.SectionValue)
            and not isinstance(v, ZConfig.matcher.SectionValue)):
        nested = sv.getSectionType() == "pragmas"
        return zo.dump_generic(sv, with_type=not nested)
    return _value(v, where)


zo.value = value

ZOPE_SCHEMA = os.path.join(os.path.dirname(Zope2.Startup.__file__),
                           "wsgischema.xml")


def zope(path):
    try:
        schema = ZConfig.loadSchema(ZOPE_SCHEMA)
        cfg, _ = ZConfig.loadConfig(schema, path)
    except Exception as exc:
        line = getattr(exc, "lineno", None)
        return {"file": path, "kind": "zope", "error": str(exc),
                "class": type(exc).__name__,
                "line": line if isinstance(line, int) and line >= 0 else None}
    dbs = []
    for db in cfg.databases:
        sv = db.config
        dbs.append({"section-name": sv.getSectionName(),
                    "storage": value(sv.storage, "zodb_db.storage")})
    return {"file": path, "kind": "zope", "config": {"databases": dbs}}


def main(argv):
    for path in argv[1:]:
        res = zo.process(path)
        if res.get("skip"):
            res = zope(path)
        sys.stdout.write(json.dumps(res, allow_nan=False) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
