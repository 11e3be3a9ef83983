//! A zope.conf read with Zope's WSGI schema: the keys, sections, datatypes
//! and defaults of `Zope2/Startup/wsgischema.xml` of Zope 6.3, plus what its root datatype (`root_wsgi_config`) checks when the
//! file is loaded. `<zodb_db>` storages are converted like every other
//! storage section.
//!
//! Sections the WSGI schema lacks are refused as Zope refuses them, with a
//! word on where their settings went: ZServer's (`<eventlog>`,
//! `<http-server>`, ...) belong to Zope 4's non-WSGI schema, and
//! zdaemon-rs's own `<runner>` and `<command>` would stop Zope itself from
//! loading the file.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::super::datatypes::{self as dt, Conv};
use super::super::reader::{Occurs, Reader, string, suggest};
use super::{Config, Cx, ErrorKind, Many, Once, match_sections, slot, top_environment};
use crate::pyrepr::repr_str;
use crate::zconfig::RawSection;

/// The settings Zope's WSGI schema declares at the top of a zope.conf,
/// with its defaults (Zope 6.3 wsgischema.xml); `clienthome` and
/// `pid-filename` get the defaults `root_wsgi_config` computes. The
/// `<environment>` and `<zodb_db>` sections are the config's
/// `environment` and `databases`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ZopeConf {
    pub instancehome: String,
    /// Default: `$instancehome/var`.
    pub clienthome: String,
    pub debug_mode: bool,
    pub debug_exceptions: bool,
    pub locale: Option<String>,
    /// `us` or `international`, lower-cased.
    pub datetime_format: String,
    pub python_check_interval: i64,
    pub http_realm: String,
    pub automatically_quote_dtml_request_data: bool,
    pub zmi_bookmarkable_urls: bool,
    /// Default: `$clienthome/Z4.pid`.
    pub pid_filename: String,
    pub trusted_proxy: Vec<String>,
    pub max_conflict_retries: i64,
    /// `C` or `PYTHON`, upper-cased.
    pub security_policy_implementation: String,
    pub skip_authentication_checking: bool,
    pub skip_ownership_checking: bool,
    pub verbose_security: bool,
    pub default_zpublisher_encoding: String,
    pub webdav_source_port: i64,
    pub enable_ms_public_header: bool,
    pub enable_xmlrpc: bool,
    pub dos_protection: Option<DosProtection>,
    /// `<product-config NAME>`: each product's keys (lower-cased) and
    /// values, by section name.
    pub product_config: IndexMap<String, IndexMap<String, String>>,
}

impl Default for ZopeConf {
    fn default() -> Self {
        ZopeConf {
            instancehome: String::new(),
            clienthome: String::new(),
            debug_mode: false,
            debug_exceptions: false,
            locale: None,
            datetime_format: "us".into(),
            python_check_interval: 1000,
            http_realm: "Zope".into(),
            automatically_quote_dtml_request_data: true,
            zmi_bookmarkable_urls: true,
            pid_filename: String::new(),
            trusted_proxy: Vec::new(),
            max_conflict_retries: 3,
            security_policy_implementation: "C".into(),
            skip_authentication_checking: false,
            skip_ownership_checking: false,
            verbose_security: false,
            default_zpublisher_encoding: "utf-8".into(),
            webdav_source_port: 0,
            enable_ms_public_header: false,
            enable_xmlrpc: false,
            dos_protection: None,
            product_config: IndexMap::new(),
        }
    }
}

/// `<dos_protection>`: request size limits (Zope 6.3 wsgischema.xml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DosProtection {
    pub form_memory_limit: i64,
    pub form_disk_limit: i64,
    pub form_memfile_limit: i64,
    pub form_part_limit: i64,
}

impl Default for DosProtection {
    fn default() -> Self {
        DosProtection {
            form_memory_limit: 1 << 20,
            form_disk_limit: 1 << 30,
            form_memfile_limit: 4 << 10,
            form_part_limit: 1024,
        }
    }
}

/// The top-level keys of Zope 6.3's wsgischema.xml.
const KEYS: &[(&str, Occurs)] = &[
    ("instancehome", Once),
    ("clienthome", Once),
    ("debug-mode", Once),
    ("debug-exceptions", Once),
    ("locale", Once),
    ("datetime-format", Once),
    ("python-check-interval", Once),
    ("http-realm", Once),
    ("automatically-quote-dtml-request-data", Once),
    ("zmi-bookmarkable-urls", Once),
    ("pid-filename", Once),
    ("trusted-proxy", Many),
    ("max-conflict-retries", Once),
    ("security-policy-implementation", Once),
    ("skip-authentication-checking", Once),
    ("skip-ownership-checking", Once),
    ("verbose-security", Once),
    ("default-zpublisher-encoding", Once),
    ("webdav-source-port", Once),
    ("enable-ms-public-header", Once),
    ("enable-xmlrpc", Once),
];

/// Section types a zope.conf may hold at its top: the schema's own and the
/// storages `%import ZODB` (and tempstorage, which the schema imports when
/// installed) bring, for did-you-mean.
const SECTION_TYPES: &[&str] = &["environment", "zodb_db", "product-config", "dos_protection"];

/// Where the settings of sections Zope 6 does not know have gone.
fn not_in_wsgi_schema(t: &str) -> Option<&'static str> {
    Some(match t {
        "eventlog" | "logger" => {
            "Zope 4's ZServer setting; Zope's WSGI logging is set in wsgi.ini or zope.ini"
        }
        "http-server"
        | "ftp-server"
        | "webdav-source-server"
        | "icp-server"
        | "fast-cgi"
        | "clock-server" => "Zope 4's ZServer server; the WSGI server is set in wsgi.ini",
        "warnfilter" => "Zope 4's ZServer setting; the WSGI schema has none",
        "runner" | "command" => {
            "Zope would not load this file; put zdaemon-rs's <runner> and <command> \
             in a runner file that %includes zope.conf"
        }
        _ => return None,
    })
}

/// Keys of older Zopes' schemas (ZServer's zopeschema.xml) that Zope's
/// WSGI schema dropped; recipe templates for Zope 4 still write them.
const OLDER_KEYS: &[&str] = &[
    "products",
    "path",
    "zserver-threads",
    "lock-filename",
    "effective-user",
    "port-base",
    "ip-address",
    "enable-product-installation",
    "http-header-max-length",
    "mime-types",
    "zserver-read-only-mode",
    "large-file-threshold",
    "maximum-number-of-session-objects",
    "session-timeout-minutes",
    "session-resolution-seconds",
    "publisher-profile-file",
    "conflict-error-log-level",
];

/// `existing-directory`.
fn existing_directory(s: &str) -> Conv<String> {
    let p = dt::expand_user(s);
    if std::path::Path::new(&p).is_dir() {
        Ok(p)
    } else {
        Err(format!("{s} is not an existing directory"))
    }
}

/// ZConfig's `locale`: one the system supports (Python's setlocale would
/// take it).
fn locale(s: &str) -> Conv<String> {
    // ZConfig's message, less its advice to read the system's manual.
    let unsupported = || format!("The specified locale \"{s}\" is not supported by your system.");
    let name = std::ffi::CString::new(s).map_err(|_| unsupported())?;
    // SAFETY: `name` is a valid NUL-terminated string; newlocale with a
    // null base allocates a new locale object, which is freed at once.
    // Unlike setlocale it leaves the process's locale untouched, so it is
    // safe to call from any thread.
    unsafe {
        let l = nix::libc::newlocale(nix::libc::LC_ALL_MASK, name.as_ptr(), std::ptr::null_mut());
        if l.is_null() {
            return Err(unsupported());
        }
        nix::libc::freelocale(l);
    }
    Ok(s.to_string())
}

/// Zope's `datetime_format`.
fn datetime_format(s: &str) -> Conv<String> {
    let v = s.to_lowercase();
    if v == "us" || v == "international" {
        Ok(v)
    } else {
        // Zope's own message fails to format (a TypeError); this is what
        // it means to say.
        Err("datetime-format must be one of ('us', 'international')".into())
    }
}

/// Zope's `security_policy_implementation`.
fn security_policy(s: &str) -> Conv<String> {
    let v = s.to_uppercase();
    if v == "PYTHON" || v == "C" {
        Ok(v)
    } else {
        Err("security-policy-implementation must be one of ('PYTHON', 'C')".into())
    }
}

/// ZConfig's `ipaddr-or-hostname`: its regular expression (an IPv4
/// address, else a hostname, else a run of IPv6 characters with a colon,
/// the first alternative that matches a prefix deciding), matched against
/// the whole value; lower-cased; IPv6 addresses must parse.
fn ipaddr_or_hostname(s: &str) -> Conv<String> {
    let b = s.as_bytes();
    let ipv4 = s.split('.').count() == 4
        && s.split('.').all(|o| {
            (1..=3).contains(&o.len())
                && o.bytes().all(|c| c.is_ascii_digit())
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        });
    let hostname = || {
        b.first()
            .filter(|c| c.is_ascii_alphabetic() || **c == b'_')?;
        let run = 1 + b[1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            .count();
        // The last character may not be a dot, and there must be two.
        (2..=run).rev().find(|&n| b[n - 1] != b'.')
    };
    let ipv6 = || {
        let run = b
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() || b":.".contains(c))
            .count();
        b[..run].iter().skip(1).any(|c| *c == b':').then_some(run)
    };
    let matched = if ipv4 {
        Some(b.len())
    } else {
        hostname().or_else(ipv6)
    };
    if matched != Some(b.len()) {
        return Err(format!(
            "value did not match regular expression: {}",
            repr_str(s)
        ));
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains(':') && lower.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!("{} is not a valid IPv6 address", repr_str(s)));
    }
    Ok(lower)
}

/// Zope's `mount_point`.
fn mount_point(s: &str) -> Conv<String> {
    if s.is_empty() {
        return Err("mount-point must not be empty".into());
    }
    if !s.starts_with('/') {
        return Err(format!(
            "mount-point '{s}' is invalid: mount points must begin with a slash"
        ));
    }
    // `virtual:~root/real`: Zope splits the root from the path when the
    // file is loaded and fails without the slash.
    if let Some((_, real)) = s.split_once(':')
        && let Some(root) = real.strip_prefix('~')
        && !root.contains('/')
    {
        return Err(format!(
            "mount-point '{s}' is invalid: a real root (~{root}) must be followed by /PATH"
        ));
    }
    Ok(s.to_string())
}

/// The virtual path a mount point is mounted at.
fn virtual_path(point: &str) -> &str {
    point.split_once(':').map_or(point, |(v, _)| v)
}

/// The Kind::Zope top level.
pub(super) fn top_level(root: &RawSection, config: &mut Config, cx: &mut Cx) {
    let before = cx.errors.list.len();
    let r = Reader::new(root, cx.values_of(root), KEYS, &mut cx.errors);
    for error in &mut cx.errors.list[before..] {
        if let ErrorKind::UnknownKey {
            key,
            suggestion: None,
        } = &error.kind
            && OLDER_KEYS.contains(&key.to_ascii_lowercase().as_str())
        {
            error.kind = ErrorKind::Invalid(format!(
                "{} is not a known key name (an older Zope's key: Zope's WSGI schema has none)",
                repr_str(key)
            ));
        }
    }
    // Relative paths are checked from the directory of the file they are
    // written in, as the runner's are.
    let dir = |key| r.dir_of(key, &cx.errors);
    let (home_dir, client_dir, pid_dir) =
        (dir("instancehome"), dir("clienthome"), dir("pid-filename"));
    let wrapper = is_runner_file(root, cx);
    let slots = [
        slot(&["environment"], Once),
        slot(&["zodb_db"], Many),
        slot(&["product-config"], Many),
        slot(&["dos_protection"], Once),
        slot(if wrapper { &["runner"] } else { &[] }, Once),
        slot(if wrapper { &["command"] } else { &[] }, Many),
    ];
    let mut other = Vec::new();
    let m = match_sections(root, &slots, cx, Some(&mut other));
    let e = &mut cx.errors;
    let instancehome = r.req(
        "instancehome",
        dt::checked_in(home_dir.as_deref(), existing_directory),
        e,
    );
    let clienthome = r
        .opt(
            "clienthome",
            dt::checked_in(client_dir.as_deref(), existing_directory),
            e,
        )
        .unwrap_or_else(|| join(&instancehome, "var"));
    let pid_filename = r
        .opt(
            "pid-filename",
            dt::checked_in(pid_dir.as_deref(), dt::existing_dirpath),
            e,
        )
        .unwrap_or_else(|| join(&clienthome, "Z4.pid"));
    let mut zope = ZopeConf {
        instancehome,
        clienthome,
        debug_mode: r.or("debug-mode", "off", dt::boolean, e),
        debug_exceptions: r.or("debug-exceptions", "off", dt::boolean, e),
        locale: r.opt("locale", locale, e),
        datetime_format: r.or("datetime-format", "us", datetime_format, e),
        python_check_interval: r.or("python-check-interval", "1000", dt::integer, e),
        http_realm: r.or("http-realm", "Zope", string, e),
        automatically_quote_dtml_request_data: r.or(
            "automatically-quote-dtml-request-data",
            "on",
            dt::boolean,
            e,
        ),
        zmi_bookmarkable_urls: r.or("zmi-bookmarkable-urls", "on", dt::boolean, e),
        pid_filename,
        trusted_proxy: r.many("trusted-proxy", ipaddr_or_hostname, e),
        max_conflict_retries: r.or("max-conflict-retries", "3", dt::integer, e),
        security_policy_implementation: r.or(
            "security-policy-implementation",
            "C",
            security_policy,
            e,
        ),
        skip_authentication_checking: r.or("skip-authentication-checking", "off", dt::boolean, e),
        skip_ownership_checking: r.or("skip-ownership-checking", "off", dt::boolean, e),
        verbose_security: r.or("verbose-security", "off", dt::boolean, e),
        default_zpublisher_encoding: r.or("default-zpublisher-encoding", "utf-8", string, e),
        webdav_source_port: r.or("webdav-source-port", "0", dt::integer, e),
        enable_ms_public_header: r.or("enable-ms-public-header", "off", dt::boolean, e),
        enable_xmlrpc: r.or("enable-xmlrpc", "off", dt::boolean, e),
        dos_protection: None,
        product_config: IndexMap::new(),
    };

    if let Some(s) = m[0].first() {
        identifier_keys(s, cx);
    }
    top_environment(&m[0], config, cx);
    databases(&m[1], config, cx);
    for s in &m[2] {
        let name = required_name(s, "zope.product.base", cx);
        let mapping = product_config(s, cx);
        zope.product_config.insert(name, mapping);
    }
    zope.dos_protection = m[3].first().map(|s| dos_protection(s, cx));
    // A runner file's own <runner> and <command>s, not an included
    // zope.conf's (Zope loads that one). The runner's program may be left
    // for zopectl to work out from the instance.
    let (ours, theirs): (Vec<&RawSection>, Vec<&RawSection>) = m[4]
        .iter()
        .chain(&m[5])
        .partition(|s| s.start.file == RUNNER_FILE);
    for s in ours {
        if s.type_name == "runner" {
            config.runner = Some(super::runner_of(s, false, cx));
        } else {
            config.commands.push(super::command(s, cx));
        }
    }
    other.extend(theirs);
    for s in other {
        unknown_section(root, s, cx);
    }
    config.zope = Some(zope);
}

/// The file a runner file's own sections are in: the one named with `-C`.
const RUNNER_FILE: u32 = 0;

/// True for a runner file: one whose own text holds no more than
/// `%include`s (of the instance's zope.conf), `<runner>` and `<command>`
/// sections. Zope never loads it, so zdaemon-rs's sections may live there;
/// in the zope.conf Zope loads they are refused as Zope refuses them.
fn is_runner_file(root: &RawSection, cx: &Cx) -> bool {
    const MAIN: u32 = RUNNER_FILE;
    let own_values = cx.values_of(root).iter().any(|v| v.pos.file == MAIN);
    let own_sections = root.sections.iter().filter(|s| s.start.file == MAIN);
    let mut ours = false;
    for s in own_sections {
        match &s.type_name[..] {
            "runner" | "command" => ours = true,
            _ => return false,
        }
    }
    let included = cx.values_of(root).iter().any(|v| v.pos.file != MAIN)
        || root.sections.iter().any(|s| s.start.file != MAIN);
    ours && !own_values && included
}

/// Python's `os.path.join` of two parts.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// A section Zope's schema has no place for at the top.
fn unknown_section(root: &RawSection, s: &RawSection, cx: &mut Cx) {
    let t: &str = &s.type_name;
    let storage = super::STORAGE_TYPES.contains(&t);
    let kind = if storage {
        ErrorKind::NoMatchingSection {
            type_name: t.to_string(),
            name: s.name.as_deref().map(str::to_owned),
        }
    } else if t == "zodb" {
        // ZODB's <zodb> fits the schema's slot but not Zope, which fails
        // on its missing mount points when the file is loaded.
        ErrorKind::Invalid(
            "<zodb> is not a Zope database: use <zodb_db NAME>, which has a mount-point".into(),
        )
    } else if let Some(why) = not_in_wsgi_schema(t) {
        ErrorKind::Invalid(format!(
            "unknown type name: {} (not in Zope's WSGI schema: {why})",
            repr_str(t)
        ))
    } else {
        match suggest(t, SECTION_TYPES.iter().copied()) {
            Some(s) => ErrorKind::Invalid(format!(
                "unknown type name: {} (did you mean {}?)",
                repr_str(t),
                repr_str(&s)
            )),
            None => ErrorKind::UnknownType(t.to_string()),
        }
    };
    cx.errors.push(s.start, kind, root);
}

/// A section of a `name="+"` multisection must be named.
fn required_name(s: &RawSection, abstract_type: &str, cx: &mut Cx) -> String {
    match &s.name {
        Some(n) => n.to_string(),
        None => {
            let kind = ErrorKind::Invalid(format!(
                "None is not an allowed name for {} sections: <{}> needs a name",
                repr_str(abstract_type),
                s.type_name
            ));
            cx.errors.push(s.start, kind, s);
            String::new()
        }
    }
}

/// `<environment>`'s keytype is `identifier`.
fn identifier_keys(s: &RawSection, cx: &mut Cx) {
    for v in cx.values_of(s) {
        if dt::dotted_name(&v.key).is_err() || v.key.contains('.') {
            let kind = ErrorKind::Invalid(format!(
                "not a valid Python identifier: {}",
                repr_str(&v.key)
            ));
            cx.errors.push(v.pos, kind, s);
        }
    }
}

/// `<product-config NAME>`: any basic keys, one value each.
fn product_config(s: &RawSection, cx: &mut Cx) -> IndexMap<String, String> {
    let mut map = IndexMap::new();
    for v in cx.values_of(s) {
        match dt::basic_key(&v.key) {
            Err(m) => cx.errors.push(v.pos, ErrorKind::BadKeyName(m), s),
            Ok(k) if map.contains_key(&k) => {
                cx.errors.push(v.pos, ErrorKind::TooManyValues(k), s);
            }
            Ok(k) => {
                map.insert(k, v.value.to_string());
            }
        }
    }
    match_sections(s, &[], cx, None);
    map
}

fn dos_protection(s: &RawSection, cx: &mut Cx) -> DosProtection {
    const KEYS: &[(&str, Occurs)] = &[
        ("form-memory-limit", Once),
        ("form-disk-limit", Once),
        ("form-memfile-limit", Once),
        ("form-part-limit", Once),
    ];
    let r = Reader::new(s, cx.values_of(s), KEYS, &mut cx.errors);
    match_sections(s, &[], cx, None);
    let e = &mut cx.errors;
    // Its name, allowed, means nothing to Zope.
    DosProtection {
        form_memory_limit: r.or("form-memory-limit", "1MB", dt::byte_size, e),
        form_disk_limit: r.or("form-disk-limit", "1GB", dt::byte_size, e),
        form_memfile_limit: r.or("form-memfile-limit", "4KB", dt::byte_size, e),
        form_part_limit: r.or("form-part-limit", "1024", dt::integer, e),
    }
}

/// The `<zodb_db NAME>` sections: each converted as a database (its
/// storage by the storage conversion), then what Zope checks of them:
/// names, mount-point values, and no virtual path mounted twice.
fn databases(found: &[&RawSection], config: &mut Config, cx: &mut Cx) {
    let mut mounted: IndexMap<String, String> = IndexMap::new();
    for s in found {
        let name = required_name(s, "zodb.database", cx);
        config.databases.push(super::database(s, cx));
        for v in cx.values_of(s) {
            if !v.key.eq_ignore_ascii_case("mount-point") {
                continue;
            }
            let point = match mount_point(&v.value) {
                Ok(p) => p,
                Err(message) => {
                    let kind = ErrorKind::Conversion {
                        key: "mount-point".into(),
                        message,
                    };
                    cx.errors.push(v.pos, kind, s);
                    continue;
                }
            };
            let path = virtual_path(&point).to_string();
            if let Some(first) = mounted.get(&path) {
                let kind = ErrorKind::Invalid(format!(
                    "Invalid configuration: ZODB databases named \"{first}\" and \"{name}\" \
                     are both configured to use the same mount point, named \"{path}\""
                ));
                cx.errors.push(v.pos, kind, s);
            } else {
                mounted.insert(path, name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_as_zconfig_matches_them() {
        // The first alternative of ZConfig's expression that matches a
        // prefix decides: `fe80::1` is taken for the hostname `fe80`.
        for ok in [
            "ab",
            "a.b",
            "_x",
            "1.2.3.4",
            "010.0.0.1",
            "::1",
            "2001:db8::1",
            "x..y",
        ] {
            assert!(ipaddr_or_hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "a.",
            "1.2.3.256",
            "fe80::1",
            "a:b",
            ":1",
            "1:2:3",
            "1abc",
            "a b",
        ] {
            assert!(ipaddr_or_hostname(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ipaddr_or_hostname("Proxy.Example").unwrap(),
            "proxy.example"
        );
    }

    #[test]
    fn mount_points() {
        for ok in ["/", "/a", "/a:/b", "/a:~root/b"] {
            assert!(mount_point(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "/a:~root"] {
            assert!(mount_point(bad).is_err(), "{bad}");
        }
        assert_eq!(virtual_path("/a:/b"), "/a");
    }
}
