#!/usr/bin/env python3
"""Differential-testing oracle: load ZConfig files with the real ZConfig.

Usage: python zconfig_oracle.py FILE [FILE...]

For each FILE prints one line of JSON to stdout (in argument order) and
exits 0.  Success: {"file", "kind", "config": FULL}; failure:
{"file", "kind", "error", "class", "line", "url"}; Zope configs:
{"file", "kind": "zope", "skip": "no Zope schema"}.

Requires ZConfig 4.3, zdaemon 5.2.1, ZEO 6.2, ZODB 6.4 (stdlib otherwise).

Two harmless instrumentation patches are applied (they do not change what
ZConfig accepts or rejects):
  * logger factories (EventLogFactory/LoggerFactory) keep their SectionValue
    in `_oracle_section`, because ZConfig drops it (we need the name);
  * ZEO's <ssl> section datatypes (server_ssl / client_ssl) still run (so
    their errors are real) but return a wrapper that keeps the SectionValue.
"""

import json
import math
import os
import re
import sys


class OracleError(Exception):
    pass


# --------------------------------------------------------------------------
# imports and instrumentation

import ZConfig  # noqa: E402
import ZConfig.datatypes  # noqa: E402
import ZConfig.matcher  # noqa: E402
import ZConfig.components.logger.logger as _zlogger  # noqa: E402
import ZConfig.components.logger.handlers as _zhandlers  # noqa: E402
import ZEO  # noqa: E402
import ZEO.zconfig  # noqa: E402
import ZODB  # noqa: E402
import ZODB.config  # noqa: E402
import zdaemon  # noqa: E402

_orig_logger_init = _zlogger.LoggerFactoryBase.__init__


def _patched_logger_init(self, section):
    _orig_logger_init(self, section)
    self._oracle_section = section


_zlogger.LoggerFactoryBase.__init__ = _patched_logger_init


class _SSLValue:
    def __init__(self, section, result):
        self.section = section
        self.result = result


def _wrap_ssl(orig):
    def datatype(section):
        return _SSLValue(section, orig(section))
    datatype.__name__ = orig.__name__
    return datatype


ZEO.zconfig.server_ssl = _wrap_ssl(ZEO.zconfig.server_ssl)
ZEO.zconfig.client_ssl = _wrap_ssl(ZEO.zconfig.client_ssl)

SCHEMA_PATHS = {
    "zeo": os.path.join(os.path.dirname(ZEO.__file__), "schema.xml"),
    "zodb": os.path.join(os.path.dirname(ZODB.__file__), "config.xml"),
    "zdaemon": os.path.join(os.path.dirname(zdaemon.__file__), "schema.xml"),
}
_schemas = {}


def get_schema(kind):
    if kind not in _schemas:
        _schemas[kind] = ZConfig.loadSchema(SCHEMA_PATHS[kind])
    return _schemas[kind]


# --------------------------------------------------------------------------
# schema choice

RE_ZEO = re.compile(r"^<zeo[\s/>]", re.I)
RE_ZODB_DB = re.compile(r"^<zodb_db[\s/>]", re.I)
RE_ZODB = re.compile(r"^<zodb[\s/>]", re.I)
RE_RUNNER = re.compile(r"^<runner[\s/>]", re.I)


def choose_kind(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except Exception:
        return "zdaemon"
    lines = [ln.lstrip() for ln in text.splitlines()]

    def has(rx):
        return any(rx.match(ln) for ln in lines)

    if has(RE_ZEO):
        return "zeo"
    if has(RE_ZODB_DB):
        return "zope"
    if has(RE_ZODB) and not has(RE_RUNNER):
        return "zodb"
    return "zdaemon"


# --------------------------------------------------------------------------
# value conversion

def hy(attr):
    return attr.replace("_", "-")


def addr(a):
    """ADDR string for a SocketAddress, an (host, port) tuple or a path."""
    if isinstance(a, ZConfig.datatypes.SocketAddress):
        a = a.address
    if isinstance(a, str):
        return a
    if isinstance(a, tuple) and len(a) == 2:
        host, port = a
        if not isinstance(host, str) or not (port is None
                                             or type(port) is int):
            raise OracleError("bad address tuple %r" % (a,))
        if port is None:
            return host
        if ":" in host:
            return "[%s]:%d" % (host, port)
        return "%s:%d" % (host, port)
    raise OracleError("not an address: %r" % (a,))


def scalar(v, where):
    if v is None or isinstance(v, (bool, str)):
        return v
    if type(v) is int:
        return v
    if type(v) is float:
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, list):
        return [value(x, where) for x in v]
    raise OracleError("unexpected value %r (%s) at %s"
                      % (v, type(v).__name__, where))


def value(v, where):
    """Convert an attribute value of any section."""
    if isinstance(v, ZConfig.datatypes.SocketAddress):
        return addr(v)
    if isinstance(v, _zhandlers.HandlerFactory):
        return dump_handler(v)
    if isinstance(v, _zlogger.LoggerFactoryBase):
        return dump_eventlog(v)
    if isinstance(v, (ZODB.config.BaseConfig,
                      ZEO.zconfig.ClientStorageConfig)):
        return dump_storage(v)
    if isinstance(v, _SSLValue):
        return dump_generic(v.section, with_type=False)
    if isinstance(v, ZConfig.matcher.SectionValue):
        return dump_generic(v, with_type=True)
    return scalar(v, where)


def dump_generic(sv, with_type, first=(), special=None):
    d = {}
    stype = sv.getSectionType()
    if with_type:
        d["type"] = stype
    name = sv.getSectionName()
    if name is not None:
        d["section-name"] = name
    attrs = list(sv.getSectionAttributes())
    ordered = [a for a in first if a in attrs] + \
        [a for a in attrs if a not in first]
    for a in ordered:
        v = getattr(sv, a)
        where = "%s.%s" % (stype, a)
        if special and a in special:
            d[hy(a)] = special[a](v, where)
        else:
            d[hy(a)] = value(v, where)
    return d


def _http_url(v, where):
    if not (isinstance(v, tuple) and len(v) == 2
            and all(isinstance(x, str) for x in v)):
        raise OracleError("bad http url %r at %s" % (v, where))
    return "http://" + v[0] + v[1]


def _addr_or_none(v, where):
    return None if v is None else addr(v)


HANDLER_COMMON = ["dateformat", "level", "style", "formatter",
                  "arbitrary_fields"]


def dump_handler(factory):
    sv = factory.section
    attrs = [a for a in sv.getSectionAttributes() if a not in HANDLER_COMMON]
    return dump_generic(sv, with_type=True, first=attrs + HANDLER_COMMON,
                        special={
        "url": _http_url,
        "smtp_server": _addr_or_none,
        "address": _addr_or_none,
    })


def dump_eventlog(factory):
    sv = factory._oracle_section
    d = {}
    stype = sv.getSectionType()
    if stype != "eventlog":
        # <logger> used where ZConfig.logger.log is allowed (runner)
        d["type"] = stype
    name = sv.getSectionName()
    if name is not None:
        d["section-name"] = name
    d["level"] = scalar(sv.level, "eventlog.level")
    d["handlers"] = [dump_handler(h) for h in sv.handlers]
    for a in sv.getSectionAttributes():
        if a not in ("level", "handlers"):
            d[hy(a)] = value(getattr(sv, a), "%s.%s" % (stype, a))
    return d


def _class_factory(v, where):
    if v is None:
        return None
    mod = getattr(v, "__module__", None)
    qn = getattr(v, "__qualname__", None)
    if isinstance(mod, str) and isinstance(qn, str):
        return mod + "." + qn
    n = getattr(v, "__name__", None)  # a module
    if isinstance(n, str):
        return n
    raise OracleError("cannot name class-factory %r" % (v,))


def _server_list(v, where):
    return [addr(x) for x in v]


def dump_storage(obj):
    sv = obj.config
    stype = sv.getSectionType()
    if stype == "zodb":
        return dump_generic(sv, with_type=True, first=("storage",),
                            special={"class_factory": _class_factory})
    return dump_generic(sv, with_type=True, special={"server": _server_list})


RUNNER_ORDER = ["program", "python", "zdrun", "socket_name", "daemon",
                "directory", "backoff_limit", "forever", "exit_codes",
                "start_test_program", "start_timeout", "stop_timeout",
                "user", "umask", "hang_around", "default_to_interactive",
                "logfile", "transcript", "prompt", "eventlog"]

ZEO_ORDER = ["address", "read_only", "invalidation_queue_size",
             "invalidation_age", "transaction_timeout", "pid_filename",
             "client_conflict_resolution", "msgpack", "ssl"]


def dump_ordered(sv, order, where):
    d = {}
    name = sv.getSectionName()
    if name is not None:
        d["section-name"] = name
    attrs = set(sv.getSectionAttributes())
    if attrs != set(order):
        raise OracleError("unexpected attributes in %s: %r"
                          % (where, sorted(attrs ^ set(order))))
    for a in order:
        d[hy(a)] = value(getattr(sv, a), "%s.%s" % (where, a))
    return d


def dump_config(kind, cfg):
    attrs = set(cfg.getSectionAttributes())
    full = {"kind": kind, "runner": None, "environment": {},
            "eventlog": None, "zeo": None, "storages": [], "databases": []}
    known = {"runner", "environment", "eventlog", "zeo", "storages",
             "database"}
    if attrs - known:
        raise OracleError("unexpected top-level attributes %r"
                          % sorted(attrs - known))
    runner = getattr(cfg, "runner", None)
    if runner is not None:
        full["runner"] = dump_ordered(runner, RUNNER_ORDER, "runner")
    env = getattr(cfg, "environment", None)
    if env is not None:
        mapping = env.mapping or {}
        full["environment"] = {k: scalar(v, "environment." + k)
                               for k, v in mapping.items()}
    ev = getattr(cfg, "eventlog", None)
    if ev is not None:
        full["eventlog"] = dump_eventlog(ev)
    zeo = getattr(cfg, "zeo", None)
    if zeo is not None:
        full["zeo"] = dump_ordered(zeo, ZEO_ORDER, "zeo")
    for s in getattr(cfg, "storages", None) or []:
        full["storages"].append(dump_storage(s))
    for db in getattr(cfg, "database", None) or []:
        full["databases"].append(dump_storage(db))
    return full


# --------------------------------------------------------------------------

def process(path):
    kind = choose_kind(path)
    if kind == "zope":
        return {"file": path, "kind": "zope", "skip": "no Zope schema"}
    try:
        schema = get_schema(kind)
        cfg, _handlers = ZConfig.loadConfig(schema, path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        lineno = getattr(exc, "lineno", None)
        if not (type(lineno) is int and lineno >= 0):
            lineno = None
        url = getattr(exc, "url", None)
        if url is not None and not isinstance(url, str):
            url = str(url)
        try:
            msg = str(exc)
        except BaseException as e2:  # pragma: no cover
            msg = "oracle: str() failed: %r" % (e2,)
        return {"file": path, "kind": kind, "error": msg,
                "class": type(exc).__name__, "line": lineno, "url": url}
    try:
        full = dump_config(kind, cfg)
        out = {"file": path, "kind": kind, "config": full}
        json.dumps(out, allow_nan=False)
        return out
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return {"file": path, "kind": kind,
                "error": "oracle: %s: %s" % (type(exc).__name__, exc),
                "class": "OracleError", "line": None}


def main(argv):
    try:
        sys.stdout.reconfigure(encoding="utf-8", errors="surrogateescape")
    except Exception:  # pragma: no cover
        pass
    out = sys.stdout
    for path in argv[1:]:
        res = process(path)
        out.write(json.dumps(res, sort_keys=False, ensure_ascii=False,
                             allow_nan=False) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
