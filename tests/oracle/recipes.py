#!/usr/bin/env python3
"""Render recipe-written configs and judge them with the real Python loaders.

Usage: python recipes.py OUTDIR

Renders zeo.conf with plone.recipe.zeoserver 4.0.1 and zope.conf with
plone.recipe.zope2instance 9.1.0 (its WSGI template and the older
non-WSGI one), each through the recipe's own
``Recipe(buildout, name, options).install()`` in a buildout directory of
its own under OUTDIR, then writes single-change variants of them.  Prints
one JSON list: for every file {"name", "file", "kind": "zeo"|"zope",
"what", "ok", "error"}, where ok/error is what Python says:

  * zeo.conf: runzeo's option processing (ZEOOptions.realize with -C:
    ZConfig with ZEO/schema.xml, then its event log opened);
  * zope.conf (both templates): Zope's own loading, as runwsgi, zconsole
    and make_wsgi_app do it (ZopeWSGIOptions with Zope2/Startup/
    wsgischema.xml, then the config handlers), with ZEO_TMP set as the
    recipe's bin/instance sets it before loading.  Zope 6 has no other
    schema, so the non-WSGI template is judged by the same loader.

Offline rendering: zc.recipe.egg's working-set lookup is replaced by the
venv's own working set (no index is asked; Products.CMFPlone is not in it,
so the recipe keeps its default temporary storage).  Everything else is
the recipes' code and templates.  zope2instance 9.1.0 always sets
``self.wsgi = True`` (its ``wsgi`` option only picks another wsgi.ini),
so the non-WSGI template is rendered by clearing that attribute before
install(): the recipe then writes ``zope_conf_template``.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile

import zc.buildout  # noqa: F401  (makes buildout's vendored pkg_resources importable)
import pkg_resources  # noqa: E402
import zc.recipe.egg.egg  # noqa: E402


def _working_set(self, extra=()):
    # What Egg.working_set does, minus resolving eggs against an index.
    self.options["executable"] = sys.executable
    return [], pkg_resources.working_set


zc.recipe.egg.egg.Eggs.working_set = _working_set

from plone.recipe.zeoserver.recipe import Recipe as ZeoRecipe  # noqa: E402
from plone.recipe.zope2instance.recipe import Recipe as ZopeRecipe  # noqa: E402


def _buildout(directory):
    for sub in ("parts", "bin", "eggs", "develop-eggs"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    return {
        "buildout": {
            "directory": directory,
            "parts-directory": os.path.join(directory, "parts"),
            "bin-directory": os.path.join(directory, "bin"),
            "eggs-directory": os.path.join(directory, "eggs"),
            "develop-eggs-directory": os.path.join(directory, "develop-eggs"),
            "find-links": "",
            "allow-hosts": "*",
            "offline": "true",
            "newest": "false",
            "executable": sys.executable,
        }
    }


def render(out, name, kind, options):
    """Install one part in OUT/NAME; return the path of its config."""
    directory = os.path.join(out, name)
    buildout = _buildout(directory)
    if kind == "zeo":
        part = "zeoserver"
        opts = {"recipe": "plone.recipe.zeoserver"}
        opts.update(options)
        recipe = ZeoRecipe(buildout, part, opts)
    else:
        part = "instance"
        opts = {"recipe": "plone.recipe.zope2instance", "user": "admin:admin"}
        opts.update(options)
        recipe = ZopeRecipe(buildout, part, opts)
        if kind == "zope-old":
            recipe.wsgi = False
    # Recipes report what they create on stdout; ours is the JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        recipe.install()
    conf = "zeo.conf" if kind == "zeo" else "zope.conf"
    return os.path.join(directory, "parts", part, "etc", conf)


# --------------------------------------------------------------------------
# the cases

def D(out, name):
    """The buildout directory of base render NAME."""
    return os.path.join(out, name)


def bases(out):
    """(name, kind, options, what) of every rendered file."""
    d = lambda name: D(out, name)  # noqa: E731
    zeo_conf_file = os.path.join(out, "handwritten-zeo.conf")
    return [
        # plone.recipe.zeoserver
        ("zeo-default", "zeo", {}, "defaults: port 8100, blob storage"),
        ("zeo-host-port", "zeo", {"zeo-address": "127.0.0.1:8100"},
         "host:port address"),
        ("zeo-all-interfaces", "zeo", {"zeo-address": "0.0.0.0:9100"},
         "0.0.0.0 address"),
        ("zeo-unix-socket", "zeo",
         {"zeo-address": d("zeo-unix-socket") + "/var/zeo.sock"},
         "Unix socket address"),
        ("zeo-no-blob", "zeo", {"blob-storage": ""},
         "plain filestorage without blobs"),
        ("zeo-pack", "zeo",
         {"pack-days": "7", "pack-gc": "false", "pack-keep-old": "false"},
         "pack-days, pack-gc and pack-keep-old off"),
        ("zeo-authentication", "zeo",
         {"authentication-database": d("zeo-authentication") + "/auth.db",
          "authentication-realm": "plone"},
         "digest authentication (removed in ZEO 5)"),
        ("zeo-log-rotate", "zeo",
         {"zeo-log-level": "debug", "zeo-log-max-size": "10MB",
          "zeo-log-old-files": "5"},
         "rotated log, debug level"),
        ("zeo-log-custom", "zeo",
         {"zeo-log-custom":
          "<syslog>\n      address localhost:514\n      facility local3\n"
          "    </syslog>"},
         "zeo-log-custom syslog handler"),
        ("zeo-log-path", "zeo",
         {"zeo-log": "zeo/server.log",
          "zeo-log-format": "%(asctime)s %(levelname)s %(message)s"},
         "zeo-log and zeo-log-format"),
        ("zeo-monitor", "zeo", {"monitor-address": "8101"},
         "monitor-address (removed in ZEO 5)"),
        ("zeo-effective-user", "zeo", {"effective-user": "root"},
         "effective-user as the runner's user"),
        ("zeo-read-only", "zeo",
         {"read-only": "true", "invalidation-queue-size": "500"},
         "read-only server, bigger invalidation queue"),
        ("zeo-file-storage", "zeo",
         {"file-storage": "storage/Main.fs", "blob-storage": "blobs",
          "storage-number": "main"},
         "file-storage, blob-storage and storage-number"),
        ("zeo-var", "zeo",
         {"var": d("zeo-var") + "/data",
          "socket-name": d("zeo-var") + "/run/zeo.zdsock",
          "pid-file": d("zeo-var") + "/run/zeo.pid"},
         "var, socket-name and pid-file"),
        ("zeo-zlibstorage", "zeo",
         {"zeo-conf-additional":
          "%import zc.zlibstorage\n<serverzlibstorage 2>\n  <filestorage>\n"
          "    path " + d("zeo-zlibstorage") + "/var/filestorage/Zlib.fs\n"
          "  </filestorage>\n</serverzlibstorage>"},
         "zeo-conf-additional: a compressed second storage"),
        ("zeo-relstorage", "zeo",
         {"zeo-conf-additional":
          "%import relstorage\n<relstorage 2>\n  keep-history false\n"
          "  <sqlite3>\n    data-dir " + d("zeo-relstorage") + "/var\n"
          "  </sqlite3>\n</relstorage>"},
         "zeo-conf-additional: a RelStorage second storage"),
        ("zeo-conf-include", "zeo", {"zeo-conf": zeo_conf_file},
         "zeo-conf: %include of a handwritten file"),
        ("zeo-var-removed", "zeo", {},
         "defaults, then var/ deleted (pid, storage, blob and log dirs)"),
        # plone.recipe.zope2instance, WSGI template
        ("zope-var-removed", "zope", {},
         "defaults, then var/ deleted (clienthome, storage, blob dirs)"),
        ("zope-default", "zope", {},
         "defaults: filestorage, blobstorage, temporary storage"),
        ("zope-zeo-client", "zope",
         {"zeo-client": "on", "zeo-address": "127.0.0.1:8100"},
         "ZEO client with a blob cache"),
        ("zope-zeo-client-cache", "zope",
         {"zeo-client": "on", "zeo-client-client": "client1"},
         "persistent client cache in $(ZEO_TMP)"),
        ("zope-zeo-shared-blob", "zope",
         {"zeo-client": "on", "shared-blob": "on",
          "blob-storage": d("zope-zeo-shared-blob") + "/var/blobstorage"},
         "ZEO client with a shared blob dir"),
        ("zope-zeo-addresses", "zope",
         {"zeo-client": "true",
          "zeo-address": "10.0.0.1:8100 10.0.0.2:8100 8100"},
         "several ZEO servers"),
        ("zope-zeo-unix", "zope",
         {"zeo-client": "yes", "zeo-address": "/var/run/zeo.sock"},
         "ZEO server on a Unix socket"),
        ("zope-zeo-settings", "zope",
         {"zeo-client": "on", "zeo-client-cache-size": "300MB",
          "zeo-client-blob-cache-size": "1GB",
          "zeo-client-blob-cache-size-check": "10",
          "min-disconnect-poll": "1", "max-disconnect-poll": "30",
          "zeo-client-drop-cache-rather-verify": "true",
          "zeo-client-read-only-fallback": "true", "read-only": "true",
          "zeo-client-client": "client2",
          "zeo-var": d("zope-zeo-settings") + "/var", "zeo-storage": "main"},
         "every zeo-client setting"),
        ("zope-zeo-auth", "zope",
         {"zeo-client": "on", "zeo-username": "plone",
          "zeo-password": "secret", "zeo-realm": "plone"},
         "ZEO authentication (removed in ZEO 5)"),
        ("zope-relstorage-postgresql", "zope",
         {"rel-storage": "type postgresql\ndbname plone\nuser plone\n"
          "host localhost\npassword secret\nkeep-history false\n"
          "blob-dir " + d("zope-relstorage-postgresql") + "/var/blobcache\n"
          "shared-blob-dir false\nblob-cache-size 512MB"},
         "RelStorage on PostgreSQL, zope2instance 1.4 style"),
        ("zope-relstorage-dsn", "zope",
         {"rel-storage": "type postgresql\n"
          "dsn dbname='plone' host='db' user='plone'\ncache-local-mb 200"},
         "RelStorage on PostgreSQL with a dsn"),
        ("zope-relstorage-mysql", "zope",
         {"rel-storage": "type mysql\ndb plone\nuser plone\npasswd secret\n"
          "host localhost\nport 3306"},
         "RelStorage on MySQL"),
        ("zope-relstorage-oracle", "zope",
         {"rel-storage": "type oracle\nuser plone\npassword secret\n"
          "dsn db.example.com/XE"},
         "RelStorage on Oracle"),
        ("zope-relstorage-sqlite", "zope",
         {"rel-storage": "type sqlite3\ndata-dir "
          + d("zope-relstorage-sqlite") + "/var\npragmas-journal_mode wal",
          "blob-storage": ""},
         "RelStorage on SQLite with pragmas"),
        ("zope-zlib-active", "zope", {"zlib-storage": "active"},
         "zlib-storage active"),
        ("zope-zlib-passive", "zope",
         {"zlib-storage": "passive", "blob-storage": ""},
         "zlib-storage passive, no blobs"),
        ("zope-demo-storage", "zope", {"demo-storage": "on"},
         "demo-storage over the filestorage"),
        ("zope-demo-changes", "zope",
         {"demo-storage": "on", "demo-file-storage": "demo/Changes.fs",
          "demo-blob-storage": "var/demoblobs"},
         "demo-storage with its own changes storage"),
        ("zope-cache-size", "zope",
         {"zodb-cache-size": "50000", "zodb-cache-size-bytes": "500MB"},
         "zodb-cache-size and zodb-cache-size-bytes"),
        ("zope-debug", "zope",
         {"debug-mode": "on", "debug-exceptions": "on",
          "verbose-security": "on"},
         "debug-mode, debug-exceptions, verbose-security"),
        ("zope-environment", "zope",
         {"environment-vars": "TZ Europe/Berlin\n"
          "zope_i18n_compile_mo_files true\nPTS_LANGUAGES en de"},
         "environment-vars, one per line"),
        ("zope-environment-one-line", "zope",
         {"environment-vars": "TZ UTC DISABLE_PTS 1",
          "template-cache": "off"},
         "environment-vars on one line, no template cache"),
        ("zope-no-temporary", "zope", {"zodb-temporary-storage": "off"},
         "zodb-temporary-storage off"),
        ("zope-logs-http", "zope",
         {"http-address": "127.0.0.1:8081", "event-log-level": "DEBUG",
          "event-log": d("zope-logs-http") + "/var/log/event.log",
          "z2-log": d("zope-logs-http") + "/var/log/access.log",
          "threads": "4", "http-fast-listen": "off"},
         "http-address and log options (they go to wsgi.ini)"),
        ("zope-additional", "zope",
         {"zope-conf-additional":
          "<product-config collective.sender>\n  host mail.example.com\n"
          "  port 25\n</product-config>\ntrusted-proxy 127.0.0.1\n"
          "max-conflict-retries 5\ndatetime-format international\n"
          "<dos_protection>\n  form-memory-limit 2MB\n"
          "  form-disk-limit 2GB\n</dos_protection>"},
         "zope-conf-additional: product-config, trusted-proxy, dos_protection"),
        ("zope-imports", "zope",
         {"zope-conf-imports": "zc.zlibstorage\ntempstorage",
          "zlib-storage": "passive"},
         "zope-conf-imports of installed packages"),
        ("zope-port-base", "zope", {"port-base": "1000"},
         "port-base (a ZServer key)"),
        ("zope-products", "zope",
         {"products": d("zope-products") + "/products"},
         "products directories"),
        ("zope-storage-wrapper", "zope",
         {"storage-wrapper": "%%import collective.auditstorage\n"
          "<auditstorage>\n%s\n</auditstorage>"},
         "storage-wrapper importing an unknown package"),
        ("zope-before-storage", "zope", {"before-storage": "now"},
         "before-storage (zc.beforestorage, not installed)"),
        # plone.recipe.zope2instance, the older non-WSGI template
        ("old-default", "zope-old", {}, "non-WSGI template, defaults"),
        ("old-zeo-client", "zope-old",
         {"zeo-client": "on", "zeo-client-client": "c1"},
         "non-WSGI template, ZEO client"),
        ("old-full", "zope-old",
         {"http-address": "8081", "webdav-address": "1980",
          "ftp-address": "8021", "icp-address": "3130",
          "effective-user": "root", "ip-address": "127.0.0.1",
          "event-log-max-size": "5MB", "event-log-old-files": "3",
          "access-log-max-size": "5MB", "deprecation-warnings": "off",
          "http-force-connection-close": "on", "zserver-threads": "4"},
         "non-WSGI template with ZServer servers and rotation"),
        ("old-logs-disabled", "zope-old",
         {"event-log": "disable", "z2-log": "disable", "http-address": ""},
         "non-WSGI template without logs and servers"),
        ("old-relstorage", "zope-old",
         {"rel-storage": "type postgresql\ndsn dbname=plone\n"
          "keep-history false"},
         "non-WSGI template with RelStorage"),
    ]


# Single changes to rendered files: (name, base, what, edits), edits a list
# of (old, new) replacements of text that must occur, or ("$append", text).
def variants(out):
    d = lambda name: D(out, name)  # noqa: E731
    return [
        # zeo.conf
        ("zeo-typo-key", "zeo-default", "typo in a <zeo> key",
         [("  address 8100", "  adress 8100")]),
        ("zeo-typo-section", "zeo-default", "typo in a section type",
         [("<filestorage 1>", "<filestorag 1>"),
          ("</filestorage>", "</filestorag>")]),
        ("zeo-typo-runner-key", "zeo-default", "typo in a <runner> key",
         [("backoff-limit 10", "backof-limit 10")]),
        ("zeo-bad-read-only", "zeo-default", "bad boolean",
         [("read-only false", "read-only maybe")]),
        ("zeo-bad-queue-size", "zeo-default", "bad integer",
         [("invalidation-queue-size 100", "invalidation-queue-size lots")]),
        # The recipe's zeopack script cannot take an IPv6 zeo-address.
        ("zeo-ipv6", "zeo-default", "IPv6 address",
         [("  address 8100", "  address [::1]:8100")]),
        ("zeo-bad-port", "zeo-default", "address without a port number",
         [("  address 8100", "  address localhost:zeo")]),
        ("zeo-bad-level", "zeo-default", "bad log level",
         [("level info", "level chatty")]),
        ("zeo-duplicate-key", "zeo-default", "a key given twice",
         [("  read-only false", "  read-only false\n  read-only true")]),
        ("zeo-no-zeo-section", "zeo-no-blob", "required <zeo> missing",
         [("<zeo>", "<zeoo>"), ("</zeo>", "</zeoo>")]),
        ("zeo-duplicate-storage", "zeo-no-blob", "two storages named 1",
         [("$append", "<filestorage 1>\n  path /tmp/Other.fs\n"
           "</filestorage>\n")]),
        ("zeo-pid-missing-dir", "zeo-default", "pid-filename in a missing dir",
         [(d("zeo-default") + "/var/zeoserver.pid",
           d("zeo-default") + "/nowhere/zeoserver.pid")]),
        ("zeo-log-missing-dir", "zeo-log-path", "log path in a missing dir",
         [("path " + d("zeo-log-path") + "/var/zeo/server.log",
           "path " + d("zeo-log-path") + "/nowhere/server.log")]),
        ("zeo-blob-missing-dir", "zeo-default", "blob-dir in a missing dir",
         [("blob-dir " + d("zeo-default") + "/var/blobstorage",
           "blob-dir " + d("zeo-default") + "/nowhere/blobs")]),
        ("zeo-unknown-import", "zeo-default", "%import of an unknown package",
         [("%define INSTANCE", "%import collective.nosuchstorage\n"
           "%define INSTANCE")]),
        ("zeo-zlib-wrapped", "zeo-default", "zlibstorage around the storage",
         [("<filestorage 1>", "%import zc.zlibstorage\n<zlibstorage 1>\n"
           "<filestorage>"),
          ("</filestorage>", "</filestorage>\n</zlibstorage>")]),
        ("zeo-zlib-no-import", "zeo-default", "zlibstorage without %import",
         [("<filestorage 1>", "<zlibstorage 1>\n<filestorage>"),
          ("</filestorage>", "</filestorage>\n</zlibstorage>")]),
        ("zeo-zlib-bad-compress", "zeo-zlibstorage", "bad zlib compress",
         [("<serverzlibstorage 2>",
           "<serverzlibstorage 2>\n  compress perhaps")]),
        ("zeo-demostorage", "zeo-default", "ZODB demostorage around it",
         [("<filestorage 1>", "<demostorage 1>\n<filestorage base>"),
          ("</filestorage>", "</filestorage>\n</demostorage>")]),
        ("zeo-relstorage-postgresql", "zeo-no-blob",
         "RelStorage on PostgreSQL as storage 1",
         [("<filestorage 1>", "%import relstorage\n<relstorage 1>\n"
           "<postgresql>\n  dsn dbname='zeo'\n</postgresql>"),
          ("</filestorage>", "</relstorage>"),
          ("  path " + d("zeo-no-blob") + "/var/filestorage/Data.fs\n", "")]),
        ("zeo-relstorage-typo", "zeo-relstorage", "typo in an adapter type",
         [("<sqlite3>", "<sqlite>"), ("</sqlite3>", "</sqlite>")]),
        ("zeo-temporarystorage", "zeo-default", "tempstorage in zeo.conf",
         [("%define INSTANCE", "%import tempstorage\n%define INSTANCE"),
          ("$append", "<temporarystorage 2>\n</temporarystorage>\n")]),
        ("zeo-bad-log-size", "zeo-log-rotate", "bad max-size",
         [("max-size 10MB", "max-size ten")]),
        # zope.conf (WSGI template)
        ("zope-typo-debug-mode", "zope-default", "debug-mod (typo)",
         [("debug-mode off", "debug-mod off")]),
        ("zope-bad-debug-mode", "zope-default", "debug-mode perhaps",
         [("debug-mode off", "debug-mode perhaps")]),
        ("zope-bad-security-policy", "zope-default",
         "security-policy-implementation FOO",
         [("security-policy-implementation C",
           "security-policy-implementation FOO")]),
        ("zope-no-instancehome", "zope-default", "instancehome missing",
         [("instancehome $INSTANCEHOME\n", "")]),
        ("zope-instancehome-missing-dir", "zope-default",
         "instancehome names a missing directory",
         [("instancehome $INSTANCEHOME", "instancehome $INSTANCEHOME/gone")]),
        ("zope-clienthome-missing-dir", "zope-default",
         "clienthome names a missing directory",
         [("clienthome $CLIENTHOME", "clienthome $CLIENTHOME/gone")]),
        ("zope-bad-dos-protection", "zope-default", "bad dos_protection size",
         [("$append", "\n<dos_protection>\n  form-memory-limit 1XB\n"
           "</dos_protection>\n")]),
        ("zope-bad-locale", "zope-default", "unknown locale",
         [("$append", "\nlocale xx_XX.NOPE\n")]),
        ("zope-bad-datetime-format", "zope-default", "bad datetime-format",
         [("$append", "\ndatetime-format klingon\n")]),
        ("zope-pid-missing-dir", "zope-default",
         "pid-filename in a missing directory",
         [("$append", "\npid-filename " + d("zope-default")
           + "/nowhere/instance.pid\n")]),
        ("zope-pid-filename", "zope-default", "pid-filename in var",
         [("$append", "\npid-filename " + d("zope-default")
           + "/var/instance.pid\n")]),
        ("zope-eventlog-section", "zope-default", "<eventlog> section",
         [("$append", "\n<eventlog>\n  level INFO\n  <logfile>\n    path "
           + d("zope-default") + "/var/log/instance.log\n  </logfile>\n"
           "</eventlog>\n")]),
        ("zope-http-server-section", "zope-default", "<http-server> section",
         [("$append", "\n<http-server>\n  address 8080\n</http-server>\n")]),
        ("zope-warnfilter-section", "zope-default", "<warnfilter> section",
         [("$append", "\n<warnfilter>\n  action ignore\n"
           "  category DeprecationWarning\n</warnfilter>\n")]),
        ("zope-runner-section", "zope-default", "<runner> section",
         [("$append", "\n<runner>\n  program bin/runwsgi\n</runner>\n")]),
        ("zope-typo-temporarystorage", "zope-default",
         "typo in <temporarystorage>",
         [("<temporarystorage>", "<temporarystorag>"),
          ("</temporarystorage>", "</temporarystorag>")]),
        ("zope-unknown-import", "zope-default", "%import of an unknown package",
         [("%define INSTANCEHOME", "%import collective.nosuchstorage\n"
           "%define INSTANCEHOME")]),
        ("zope-tempstorage-import", "zope-default", "%import tempstorage",
         [("%define INSTANCEHOME", "%import tempstorage\n"
           "%define INSTANCEHOME")]),
        ("zope-no-mount-point", "zope-default", "zodb_db without mount-point",
         [("    mount-point /\n", "")]),
        ("zope-bad-cache-size", "zope-default", "bad zodb_db cache-size",
         [("cache-size 30000", "cache-size many")]),
        ("zope-duplicate-db", "zope-no-temporary", "two <zodb_db main>",
         [("$append", "\n<zodb_db main>\n  <mappingstorage/>\n"
           "  mount-point /other\n</zodb_db>\n")]),
        ("zope-mappingstorage", "zope-no-temporary", "ZODB mappingstorage",
         [("$append", "\n<zodb_db catalog>\n  <mappingstorage/>\n"
           "  mount-point /catalog\n</zodb_db>\n")]),
        ("zope-filestorage-missing-dir", "zope-no-temporary",
         "filestorage path in a missing directory",
         [(d("zope-no-temporary") + "/var/filestorage/Data.fs",
           d("zope-no-temporary") + "/nowhere/Data.fs")]),
        ("zope-bad-environment-name", "zope-default",
         "environment name not an identifier",
         [("    CHAMELEON_CACHE", "    MY-VAR 1\n    CHAMELEON_CACHE")]),
        ("zope-bad-zeo-server", "zope-zeo-client", "bad ZEO server address",
         [("server 127.0.0.1:8100", "server 127.0.0.1:zeo")]),
        ("zope-bad-zeo-cache-size", "zope-zeo-client", "bad zeoclient cache",
         [("cache-size 128MB", "cache-size 12XB")]),
        ("zope-typo-zeoclient-key", "zope-zeo-client", "typo in zeoclient",
         [("shared-blob-dir no", "shared-blobdir no")]),
        ("zope-relstorage-typo-key", "zope-relstorage-postgresql",
         "typo in a postgresql key",
         [("            dsn ", "            dns ")]),
        ("zope-relstorage-bad-value", "zope-relstorage-postgresql",
         "bad relstorage boolean",
         [("keep-history false", "keep-history perhaps")]),
        ("zope-relstorage-no-import", "zope-relstorage-mysql",
         "relstorage without %import",
         [("%import relstorage\n", "")]),
        ("zope-zlib-bad-compress", "zope-zlib-active", "bad zlib compress",
         [("compress true", "compress yes please")]),
        ("zope-undefined-variable", "zope-default", "$(UNDEFINED) in a value",
         [("    CHAMELEON_CACHE",
           "    X $(ZDRS_NOT_DEFINED)\n    CHAMELEON_CACHE")]),
        ("zope-missing-include", "zope-default", "%include of a missing file",
         [("$append", "\n%include " + d("zope-default")
           + "/nowhere/extra.conf\n")]),
        ("zope-enable-product-installation", "zope-default",
         "enable-product-installation (a ZServer key)",
         [("$append", "\nenable-product-installation off\n")]),
        ("zope-bad-python-check-interval", "zope-default",
         "bad python-check-interval",
         [("python-check-interval 1000", "python-check-interval often")]),
        # The same kinds of change in a file with no add-on storage, so
        # they are judged on their own whatever the storages support is.
        ("plain-typo-debug-mode", "zope-no-temporary", "debug-mod (typo)",
         [("debug-mode off", "debug-mod off")]),
        ("plain-bad-debug-mode", "zope-no-temporary", "debug-mode perhaps",
         [("debug-mode off", "debug-mode perhaps")]),
        ("plain-bad-security-policy", "zope-no-temporary",
         "security-policy-implementation FOO",
         [("security-policy-implementation C",
           "security-policy-implementation FOO")]),
        ("plain-no-instancehome", "zope-no-temporary", "instancehome missing",
         [("instancehome $INSTANCEHOME\n", "")]),
        ("plain-bad-dos-protection", "zope-no-temporary",
         "bad dos_protection size",
         [("$append", "\n<dos_protection>\n  form-disk-limit lots\n"
           "</dos_protection>\n")]),
        ("plain-bad-locale", "zope-no-temporary", "unknown locale",
         [("$append", "\nlocale xx_XX.NOPE\n")]),
        ("plain-bad-datetime-format", "zope-no-temporary",
         "bad datetime-format",
         [("$append", "\ndatetime-format klingon\n")]),
        ("plain-pid-missing-dir", "zope-no-temporary",
         "pid-filename in a missing directory",
         [("$append", "\npid-filename " + d("zope-no-temporary")
           + "/nowhere/instance.pid\n")]),
        ("plain-eventlog-section", "zope-no-temporary", "<eventlog> section",
         [("$append", "\n<eventlog>\n  <logfile>\n    path "
           + d("zope-no-temporary") + "/var/log/instance.log\n"
           "  </logfile>\n</eventlog>\n")]),
        ("plain-http-server-section", "zope-no-temporary",
         "<http-server> section",
         [("$append", "\n<http-server>\n  address 8080\n</http-server>\n")]),
        ("plain-warnfilter-section", "zope-no-temporary",
         "<warnfilter> section",
         [("$append", "\n<warnfilter>\n  action ignore\n</warnfilter>\n")]),
        ("plain-runner-section", "zope-no-temporary", "<runner> section",
         [("$append", "\n<runner>\n  program bin/runwsgi\n</runner>\n")]),
        ("plain-unknown-import", "zope-no-temporary",
         "%import of an unknown package",
         [("%define INSTANCEHOME", "%import collective.nosuchstorage\n"
           "%define INSTANCEHOME")]),
        ("plain-zeo-tmp", "zope-no-temporary",
         "$(ZEO_TMP) as bin/instance provides it",
         [("    CHAMELEON_CACHE", "    TMPDIR $(ZEO_TMP)\n    CHAMELEON_CACHE")]),
        # old template
        ("old-typo-section", "old-default", "typo in <http-server>",
         [("<http-server>", "<http-servr>"),
          ("</http-server>", "</http-servr>")]),
        ("old-without-zserver", "old-logs-disabled",
         "non-WSGI file with the ZServer keys removed",
         [("zserver-threads 2\n", ""), ("http-header-max-length 8192\n", ""),
          ("\nenable-product-installation off", ""),
          ("lock-filename ", "# lock-filename ")]),
        ("old-without-zserver-typo", "old-logs-disabled",
         "the same, with a typo in <blobstorage>",
         [("zserver-threads 2\n", ""), ("http-header-max-length 8192\n", ""),
          ("\nenable-product-installation off", ""),
          ("lock-filename ", "# lock-filename "),
          ("<blobstorage>", "<blobstorag>"),
          ("</blobstorage>", "</blobstorag>")]),
    ]


def apply(text, edits, name):
    for old, new in edits:
        if old == "$append":
            text = text.rstrip("\n") + "\n" + new
        else:
            if old not in text:
                raise SystemExit("variant %s: %r not in its base" % (name, old))
            text = text.replace(old, new, 1)
    return text


# --------------------------------------------------------------------------
# judging

class Refused(Exception):
    """A refusal reported as a usage error (message only)."""


def judge_zeo(path):
    """runzeo's own option processing: ZEO/schema.xml, then the event log
    opened (realize() starts it), as runzeo does before serving."""
    import io
    import logging
    from ZEO.runzeo import ZEOOptions
    handlers = list(logging.root.handlers)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ZEOOptions().realize(["-C", path])
    except SystemExit:
        # realize() reports configuration errors as usage errors, exit 2.
        lines = [line for line in err.getvalue().strip().splitlines()
                 if not line.startswith("For help, use ")]
        raise Refused("\n".join(lines).removeprefix("Error: ")) from None
    finally:
        for h in logging.root.handlers:
            if h not in handlers:
                logging.root.removeHandler(h)
                h.close()


def judge_zope(path):
    from Zope2.Startup import handlers
    from Zope2.Startup.options import ZopeWSGIOptions
    saved = dict(os.environ)
    # bin/instance (plone.recipe.zope2instance ctl.py) does this first.
    os.environ["ZEO_TMP"] = tempfile.gettempdir()
    try:
        opts = ZopeWSGIOptions(configfile=path)()
        handlers.handleWSGIConfig(opts.configroot, opts.confighandlers)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def judge(kind, path):
    try:
        (judge_zeo if kind == "zeo" else judge_zope)(path)
    except Exception as e:  # every refusal counts, whatever its class
        if isinstance(e, Refused):
            return False, str(e)
        return False, "%s: %s" % (type(e).__name__, e)
    return True, ""


def main():
    out = os.path.abspath(sys.argv[1])
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with open(os.path.join(out, "handwritten-zeo.conf"), "w") as f:
        f.write("<zeo>\n  address 8100\n</zeo>\n<filestorage 1>\n  path "
                + out + "/Data.fs\n</filestorage>\n")
    cases = []
    files = {}
    for name, kind, options, what in bases(out):
        path = render(out, name, kind, options)
        if name.endswith("-var-removed"):
            # What an admin who wiped var/ (or restored only parts/) has.
            shutil.rmtree(os.path.join(D(out, name), "var"))
        files[name] = (path, "zeo" if kind == "zeo" else "zope")
        cases.append((name, path, files[name][1], what))
    for name, base, what, edits in variants(out):
        path, kind = files[base]
        with open(path) as f:
            text = apply(f.read(), edits, name)
        new = os.path.join(os.path.dirname(path), name + ".conf")
        with open(new, "w") as f:
            f.write(text)
        cases.append((name, new, kind, "%s (from %s)" % (what, base)))
    result = []
    for name, path, kind, what in cases:
        ok, error = judge(kind, path)
        result.append({"name": name, "file": path, "kind": kind,
                       "what": what, "ok": ok, "error": error})
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
