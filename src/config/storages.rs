//! The storage add-ons Plone and Zope sites import: tempstorage's
//! `<temporarystorage>`, RelStorage's `<relstorage>` with its database
//! adapters, zc.zlibstorage's `<zlibstorage>` and `<serverzlibstorage>`.
//! Keys, datatypes and defaults are those of each package's component.xml
//! at the version named on each function.

use indexmap::IndexMap;

use super::datatypes as dt;
use super::error::ErrorKind;
use super::model::*;
use super::reader::{Occurs, Reader, string};
use super::schema::{Cx, STORAGE_TYPES, match_sections, name_of, slot, storage};
use crate::zconfig::RawSection;

use Occurs::Once;

/// The packages `%import` knows beyond ZODB, ZEO, zdaemon and ZConfig's
/// logger, with the section types each one adds.
pub(crate) const ADDON_TYPES: &[(&str, &[&str])] = &[
    ("tempstorage", &["temporarystorage"]),
    (
        "relstorage",
        &[
            "relstorage",
            "postgresql",
            "mysql",
            "oracle",
            "sqlite3",
            "pragmas",
        ],
    ),
    ("zc.zlibstorage", &["zlibstorage", "serverzlibstorage"]),
];

/// The package whose `%import` adds section type `t`, if an add-on's.
pub(crate) fn package_of(t: &str) -> Option<&'static str> {
    ADDON_TYPES
        .iter()
        .find(|(_, types)| types.contains(&t))
        .map(|(p, _)| *p)
}

/// `<temporarystorage>`, from tempstorage 6.0.
pub(crate) fn temporarystorage(s: &RawSection, cx: &mut Cx) -> Storage {
    let r = Reader::new(s, cx.values_of(s), &[("name", Once)], &mut cx.errors);
    match_sections(s, &[], cx, None);
    Storage::Temporarystorage(TemporaryStorage {
        section_name: name_of(s),
        name: r.or("name", "Temporary Storage", string, &mut cx.errors),
    })
}

/// `<zlibstorage>` and `<serverzlibstorage>`, from zc.zlibstorage 1.2.0:
/// one required base storage and `compress`.
pub(crate) fn zlibstorage(s: &RawSection, cx: &mut Cx) -> Storage {
    let r = Reader::new(s, cx.values_of(s), &[("compress", Once)], &mut cx.errors);
    let m = match_sections(s, &[slot(STORAGE_TYPES, Once)], cx, None);
    let compress = r.opt("compress", dt::boolean, &mut cx.errors);
    let base = match m[0].first() {
        Some(c) => storage(c, cx),
        None => {
            // ZConfig names abstract types lower-cased.
            let kind = ErrorKind::MissingSection("zodb.storage".into());
            cx.errors.push(s.end, kind, s);
            Storage::Mappingstorage(MappingStorage {
                section_name: None,
                name: String::new(),
            })
        }
    };
    let z = ZlibStorage {
        section_name: name_of(s),
        base: Box::new(base),
        compress,
    };
    if s.type_name == "serverzlibstorage" {
        Storage::Serverzlibstorage(z)
    } else {
        Storage::Zlibstorage(z)
    }
}

pub(super) const ADAPTER_TYPES: &[&str] = &["postgresql", "mysql", "oracle", "sqlite3"];

/// `<relstorage>`, from RelStorage 4.3.0.
pub(crate) fn relstorage(s: &RawSection, cx: &mut Cx) -> Storage {
    const KEYS: &[(&str, Occurs)] = &[
        ("name", Once),
        ("read-only", Once),
        ("blob-dir", Once),
        ("shared-blob-dir", Once),
        ("blob-cache-size", Once),
        ("blob-cache-size-check", Once),
        ("blob-cache-size-check-external", Once),
        ("blob-chunk-size", Once),
        ("keep-history", Once),
        ("replica-conf", Once),
        ("ro-replica-conf", Once),
        ("replica-timeout", Once),
        ("revert_when_stale", Once),
        ("poll-interval", Once),
        ("pack-gc", Once),
        ("pack-prepack-only", Once),
        ("pack-skip-prepack", Once),
        ("pack-batch-timeout", Once),
        ("pack-commit-busy-delay", Once),
        ("cache-servers", Once),
        ("cache-module-name", Once),
        ("cache-prefix", Once),
        ("cache-local-mb", Once),
        ("cache-local-storage", Once),
        ("cache-local-dir", Once),
        ("cache-local-dir-count", Once),
        ("cache-local-dir-read-count", Once),
        ("cache-local-dir-compress", Once),
        ("cache-local-dir-write-max-size", Once),
        ("cache-local-object-max", Once),
        ("cache-local-compression", Once),
        ("cache-delta-size-limit", Once),
        ("commit-lock-timeout", Once),
        ("commit-lock-id", Once),
        ("create-schema", Once),
    ];
    let r = Reader::new(s, cx.values_of(s), KEYS, &mut cx.errors);
    let m = match_sections(s, &[slot(ADAPTER_TYPES, Once)], cx, None);
    let e = &mut cx.errors;
    let mut rs = RelStorage {
        section_name: name_of(s),
        adapter: None,
        name: r.opt("name", string, e),
        read_only: r.or("read-only", "false", dt::boolean, e),
        blob_dir: r.opt("blob-dir", string, e),
        shared_blob_dir: r.or("shared-blob-dir", "false", dt::boolean, e),
        blob_cache_size: r.opt("blob-cache-size", dt::byte_size, e),
        blob_cache_size_check: r.opt("blob-cache-size-check", dt::integer, e),
        blob_cache_size_check_external: r.or(
            "blob-cache-size-check-external",
            "false",
            dt::boolean,
            e,
        ),
        blob_chunk_size: r.opt("blob-chunk-size", dt::byte_size, e),
        keep_history: r.or("keep-history", "true", dt::boolean, e),
        replica_conf: r.opt("replica-conf", string, e),
        ro_replica_conf: r.opt("ro-replica-conf", string, e),
        replica_timeout: r.or("replica-timeout", "600.0", dt::float, e),
        revert_when_stale: r.or("revert_when_stale", "false", dt::boolean, e),
        poll_interval: r.opt("poll-interval", dt::float, e),
        pack_gc: r.or("pack-gc", "true", dt::boolean, e),
        pack_prepack_only: r.or("pack-prepack-only", "false", dt::boolean, e),
        pack_skip_prepack: r.or("pack-skip-prepack", "false", dt::boolean, e),
        pack_batch_timeout: r.opt("pack-batch-timeout", dt::float, e),
        pack_commit_busy_delay: r.opt("pack-commit-busy-delay", dt::float, e),
        cache_servers: r.opt("cache-servers", string, e),
        cache_module_name: r.opt("cache-module-name", string, e),
        cache_prefix: r.opt("cache-prefix", string, e),
        cache_local_mb: r.opt("cache-local-mb", dt::integer, e),
        cache_local_storage: r.opt("cache-local-storage", dt::dotted_name, e),
        cache_local_dir: r.opt("cache-local-dir", string, e),
        cache_local_dir_count: r.opt("cache-local-dir-count", dt::integer, e),
        cache_local_dir_read_count: r.opt("cache-local-dir-read-count", dt::integer, e),
        cache_local_dir_compress: r.opt("cache-local-dir-compress", dt::boolean, e),
        cache_local_dir_write_max_size: r.opt("cache-local-dir-write-max-size", dt::byte_size, e),
        cache_local_object_max: r.opt("cache-local-object-max", dt::byte_size, e),
        cache_local_compression: r.opt("cache-local-compression", string, e),
        cache_delta_size_limit: r.opt("cache-delta-size-limit", dt::integer, e),
        commit_lock_timeout: r.opt("commit-lock-timeout", dt::integer, e),
        commit_lock_id: r.opt("commit-lock-id", dt::integer, e),
        create_schema: r.or("create-schema", "true", dt::boolean, e),
    };
    rs.adapter = m[0].first().map(|a| adapter(a, cx));
    Storage::Relstorage(Box::new(rs))
}

fn adapter(s: &RawSection, cx: &mut Cx) -> RelStorageAdapter {
    let section_name = name_of(s);
    match &s.type_name[..] {
        "postgresql" => {
            let keys = &[("driver", Once), ("dsn", Once)];
            let r = Reader::new(s, cx.values_of(s), keys, &mut cx.errors);
            match_sections(s, &[], cx, None);
            let e = &mut cx.errors;
            RelStorageAdapter::Postgresql(PostgresqlAdapter {
                section_name,
                driver: r.or("driver", "auto", string, e),
                dsn: r.or("dsn", "", string, e),
            })
        }
        "oracle" => {
            let keys = &[
                ("driver", Once),
                ("user", Once),
                ("password", Once),
                ("dsn", Once),
            ];
            let r = Reader::new(s, cx.values_of(s), keys, &mut cx.errors);
            match_sections(s, &[], cx, None);
            let e = &mut cx.errors;
            RelStorageAdapter::Oracle(OracleAdapter {
                section_name,
                driver: r.or("driver", "auto", string, e),
                user: r.req("user", string, e),
                password: r.req("password", string, e),
                dsn: r.req("dsn", string, e),
            })
        }
        "mysql" => {
            let keys = &[
                ("driver", Once),
                ("host", Once),
                ("user", Once),
                ("passwd", Once),
                ("db", Once),
                ("port", Once),
                ("unix_socket", Once),
                ("connect_timeout", Once),
                ("compress", Once),
                ("named_pipe", Once),
                ("read_default_file", Once),
                ("read_default_group", Once),
            ];
            let r = Reader::new(s, cx.values_of(s), keys, &mut cx.errors);
            match_sections(s, &[], cx, None);
            let e = &mut cx.errors;
            RelStorageAdapter::Mysql(MysqlAdapter {
                section_name,
                driver: r.or("driver", "auto", string, e),
                host: r.opt("host", string, e),
                user: r.opt("user", string, e),
                passwd: r.opt("passwd", string, e),
                db: r.opt("db", string, e),
                port: r.opt("port", dt::integer, e),
                unix_socket: r.opt("unix_socket", string, e),
                connect_timeout: r.opt("connect_timeout", dt::integer, e),
                compress: r.opt("compress", dt::boolean, e),
                named_pipe: r.opt("named_pipe", dt::boolean, e),
                read_default_file: r.opt("read_default_file", string, e),
                read_default_group: r.opt("read_default_group", string, e),
            })
        }
        _ => {
            let keys = &[
                ("driver", Once),
                ("data-dir", Once),
                ("gevent_yield_interval", Once),
            ];
            let r = Reader::new(s, cx.values_of(s), keys, &mut cx.errors);
            let m = match_sections(s, &[slot(&["pragmas"], Once)], cx, None);
            let e = &mut cx.errors;
            let mut a = Sqlite3Adapter {
                section_name,
                driver: r.or("driver", "auto", string, e),
                data_dir: r.req("data-dir", dt::existing_dirpath, e),
                gevent_yield_interval: r.opt("gevent_yield_interval", dt::integer, e),
                pragmas: None,
            };
            a.pragmas = m[0].first().map(|p| pragmas(p, cx));
            RelStorageAdapter::Sqlite3(a)
        }
    }
}

/// `<pragmas>`: the declared pragmas typed; every other key (ZConfig's
/// `+` multikey) kept as text under its lower-cased name.
fn pragmas(s: &RawSection, cx: &mut Cx) -> SqlitePragmas {
    const KEYS: &[(&str, Occurs)] = &[
        ("page_size", Once),
        ("mmap_size", Once),
        ("max_page_count", Once),
        ("threads", Once),
        ("cache_size", Once),
        ("wal_autocheckpoint", Once),
        ("soft_heap_limit", Once),
    ];
    let all = cx.values_of(s);
    let declared = |k: &str| KEYS.iter().any(|(n, _)| n.eq_ignore_ascii_case(k));
    let (known, other): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|v| declared(&v.key));
    let r = Reader::new(s, &known, KEYS, &mut cx.errors);
    match_sections(s, &[], cx, None);
    let e = &mut cx.errors;
    let mut rest: IndexMap<String, Vec<String>> = IndexMap::new();
    for v in &other {
        if let Err(m) = dt::check_basic_key(&v.key) {
            e.push(v.pos, ErrorKind::BadKeyName(m), s);
            continue;
        }
        let key = v.key.to_ascii_lowercase();
        rest.entry(key).or_default().push(v.value.to_string());
    }
    SqlitePragmas {
        section_name: name_of(s),
        page_size: r.opt("page_size", dt::byte_size, e),
        mmap_size: r.opt("mmap_size", dt::byte_size, e),
        max_page_count: r.opt("max_page_count", dt::integer, e),
        threads: r.opt("threads", dt::integer, e),
        cache_size: r.opt("cache_size", dt::byte_size, e),
        wal_autocheckpoint: r.opt("wal_autocheckpoint", dt::integer, e),
        soft_heap_limit: r.opt("soft_heap_limit", dt::byte_size, e),
        pragmas: rest,
    }
}
