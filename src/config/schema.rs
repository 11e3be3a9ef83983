//! The schemas: which sections and keys each file kind allows, with their
//! datatypes and defaults, turning a raw tree into the typed model.
//!
//! Kinds follow the Python packages' schemas: zdaemon's `schema.xml`,
//! ZEO's `schema.xml` (runzeo), ZODB's `config.xml`, and a zope.conf.

use super::datatypes::{self as dt, Conv, DefaultHost};
use super::error::ErrorKind;
use super::limits;
use super::model::*;
use super::origin::Origin;
use super::reader::{Errors, Occurs, Reader, string};
use super::storages::{self, ADDON_TYPES, package_of};
use crate::zconfig::hash::FastSet;
use crate::zconfig::{Document, Location, Pos, RawSection, RawValue};

use Occurs::{Many, Once};

#[path = "zope.rs"]
pub(super) mod zope;

/// Section types no schema here defines are "unknown"; the rest are merely
/// misplaced when they appear where their schema does not allow them.
const KNOWN_TYPES: &[&str] = &[
    "runner",
    "program",
    "command",
    "environment",
    "health",
    "http-server",
    "eventlog",
    "logger",
    "logfile",
    "syslog",
    "win32-eventlog",
    "http-logger",
    "email-notifier",
    "zeo",
    "ssl",
    "filestorage",
    "mappingstorage",
    "demostorage",
    "blobstorage",
    "zeoclient",
    "fullstorage",
    "minimalstorage",
    "zodb",
];

const ABSTRACT_TYPES: &[&str] = &[
    "zodb.storage",
    "zodb.database",
    "zconfig.logger.handler",
    "zconfig.logger.log",
];

const KNOWN_IMPORTS: &[&str] = &["ZODB", "ZEO", "zdaemon", "ZConfig.components.logger"];

/// Keys at the top of a zope.conf that only Zope has; any of them marks a
/// file as a zope.conf.
const ZOPE_KEYS: &[&str] = &[
    "instancehome",
    "clienthome",
    "debug-mode",
    "debug-exceptions",
    "zserver-threads",
    "python-check-interval",
    "http-realm",
    "default-zpublisher-encoding",
    "security-policy-implementation",
    "verbose-security",
    "products",
    "path",
    "enable-product-installation",
];

/// Decide the kind of a parsed file from its top-level sections and keys.
pub fn detect_kind(doc: &Document) -> Kind {
    let root = &doc.root;
    let has = |t: &str| root.sections.iter().any(|s| s.type_name == t);
    if has("program") {
        Kind::Site
    } else if has("zeo") {
        Kind::Zeo
    } else if has("zodb_db")
        || has("product-config")
        || has("dos_protection")
        || doc
            .values_of(root)
            .iter()
            .any(|v| ZOPE_KEYS.iter().any(|z| z.eq_ignore_ascii_case(&v.key)))
    {
        Kind::Zope
    } else if has("zodb") && !has("runner") {
        Kind::Zodb
    } else {
        Kind::Zdaemon
    }
}

/// Conversion state for one document.
pub(crate) struct Cx<'d, 'a> {
    pub errors: Errors,
    /// The document's values.
    values: &'d [RawValue<'a>],
    /// The packages adding section types (ZEO, the add-ons) that were
    /// `%import`ed, and where; in a zope.conf also tempstorage, which
    /// Zope's schema imports itself when it is installed (no place).
    imported: Vec<(&'static str, Option<Location>)>,
}

impl<'d, 'a> Cx<'d, 'a> {
    /// The values of `s`.
    pub(super) fn values_of(&self, s: &RawSection) -> &'d [RawValue<'a>] {
        s.values.of(self.values)
    }

    /// Whether section type `t` may be used at `at`: ZODB's types always,
    /// ZEO's `<clientstorage>` and the add-ons' once their package has been
    /// imported. ZConfig adds a package's types from its `%import` line
    /// on; an import in another file (through `%include`) counts
    /// wherever it is.
    fn available(&self, t: &str, at: Pos) -> bool {
        let package = match package_of(t) {
            Some(p) => p,
            None if t == "clientstorage" => "ZEO",
            None => return true,
        };
        let here = self.errors.location(at);
        self.imported.iter().any(|(p, loc)| {
            *p == package
                && loc
                    .as_ref()
                    .is_none_or(|l| l.file != here.file || l.line < here.line)
        })
    }
}

/// Convert a parsed document into the typed model, or every error found.
pub(crate) fn convert(doc: &Document) -> (Config, Errors) {
    let kind = detect_kind(doc);
    let _cache = dt::cache_dir_checks();
    let mut cx = Cx {
        errors: Errors::new(&doc.files),
        values: &doc.values,
        imported: Vec::new(),
    };
    if kind == Kind::Zope {
        cx.imported.push(("tempstorage", None));
    }
    for (package, loc) in &doc.imports {
        if package == "ZEO" && kind == Kind::Zeo {
            // runzeo's schema defines the server's `<ssl>`; ZEO's component
            // defines the client's under the same name, so ZConfig refuses
            // the import there.
            let kind = ErrorKind::Invalid("type name cannot be redefined: 'ssl'".into());
            cx.errors.push_at(loc.clone(), kind, &doc.root);
        } else if package == "ZEO" {
            cx.imported.push(("ZEO", Some(loc.clone())));
        } else if let Some((p, _)) = ADDON_TYPES.iter().find(|(p, _)| p == package) {
            cx.imported.push((p, Some(loc.clone())));
        } else if !KNOWN_IMPORTS.contains(&package.as_str()) {
            let kind = ErrorKind::UnknownImport(package.clone());
            cx.errors.push_at(loc.clone(), kind, &doc.root);
        }
    }
    let config = top_level(&doc.root, kind, &mut cx);
    (config, cx.errors)
}

/// One section slot of a container.
pub(super) struct Slot {
    /// Concrete types that fill it.
    types: &'static [&'static str],
    occurs: Occurs,
}

/// Match `container`'s subsections to its slots; returns, per slot, the
/// sections that filled it. Misfits are reported.
pub(super) fn match_sections<'s, 'a>(
    container: &'s RawSection<'a>,
    slots: &[Slot],
    cx: &mut Cx,
    untyped: Option<&mut Vec<&'s RawSection<'a>>>,
) -> Vec<Vec<&'s RawSection<'a>>> {
    let mut filled: Vec<Vec<&RawSection>> = slots.iter().map(|_| Vec::new()).collect();
    let mut names: FastSet<&str> = FastSet::default();
    names.reserve(container.sections.len());
    let mut rest = untyped;
    for s in &container.sections {
        if let Some(name) = &s.name
            && !names.insert(name)
        {
            let kind = ErrorKind::SectionNameReused(name.to_string());
            cx.errors.push(s.end, kind, container);
        }
        let t: &str = &s.type_name;
        let allowed_here = |slot: &Slot| slot.types.contains(&t) && cx.available(t, s.start);
        if let Some(i) = slots.iter().position(allowed_here) {
            if slots[i].occurs == Once && !filled[i].is_empty() {
                let kind = ErrorKind::TooManySections(slot_type(slots[i].types, t).into());
                cx.errors.push(s.end, kind, container);
            } else {
                filled[i].push(s);
            }
            continue;
        }
        if let Some(list) = rest.as_deref_mut() {
            list.push(s);
            continue;
        }
        let kind = if ABSTRACT_TYPES.contains(&t) {
            ErrorKind::AbstractType(t.to_string())
        } else if KNOWN_TYPES.contains(&t)
            || ((t == "clientstorage" || package_of(t).is_some()) && cx.available(t, s.start))
        {
            ErrorKind::NoMatchingSection {
                type_name: t.to_string(),
                name: name_of(s),
            }
        } else {
            ErrorKind::UnknownType(t.to_string())
        };
        cx.errors.push(s.start, kind, container);
    }
    filled
}

/// The type a slot declares, as ZConfig names it: an abstract type
/// lower-cased, or the one concrete type `t`.
fn slot_type<'t>(types: &[&str], t: &'t str) -> &'t str {
    let is = |list: &[&str]| types == list;
    if is(STORAGE_TYPES) {
        "zodb.storage"
    } else if is(LOG_TYPES) {
        "zconfig.logger.log"
    } else if is(HANDLER_TYPES) {
        "zconfig.logger.handler"
    } else if is(storages::ADAPTER_TYPES) {
        "relstorage.adapter"
    } else {
        t
    }
}

const LOG_TYPES: &[&str] = &["eventlog", "logger"];
const HANDLER_TYPES: &[&str] = &[
    "logfile",
    "syslog",
    "win32-eventlog",
    "http-logger",
    "email-notifier",
];
/// The types implementing ZODB.storage; add-ons' once imported.
pub(super) const STORAGE_TYPES: &[&str] = &[
    "filestorage",
    "mappingstorage",
    "demostorage",
    "blobstorage",
    "zeoclient",
    "clientstorage",
    "fullstorage",
    "minimalstorage",
    "temporarystorage",
    "relstorage",
    "zlibstorage",
    "serverzlibstorage",
];

fn top_level(root: &RawSection, kind: Kind, cx: &mut Cx) -> Config {
    let mut config = Config {
        kind,
        ..Config::default()
    };
    match kind {
        Kind::Zdaemon => {
            Reader::new(root, cx.values_of(root), &[], &mut cx.errors);
            let slots = [
                slot(&["runner"], Once),
                slot(&["environment"], Once),
                slot(&["eventlog"], Once),
                slot(&["command"], Many),
            ];
            let m = match_sections(root, &slots, cx, None);
            config.runner = one_required(root, &m[0], "runner", cx).map(|s| runner(s, cx));
            top_environment(&m[1], &mut config, cx);
            config.eventlog = m[2].first().map(|s| eventlog(s, cx));
            config.commands = m[3].iter().map(|s| command(s, cx)).collect();
        }
        Kind::Site => {
            Reader::new(root, cx.values_of(root), &[], &mut cx.errors);
            let slots = [
                slot(&["runner"], Once),
                slot(&["environment"], Once),
                slot(&["eventlog"], Once),
                slot(&["program"], Many),
                slot(&["command"], Many),
            ];
            let m = match_sections(root, &slots, cx, None);
            config.commands = m[4].iter().map(|s| command(s, cx)).collect();
            // The runner holds the supervisor's own settings; no program.
            config.runner = Some(match m[0].first() {
                Some(s) => runner_of(s, false, cx),
                None => Runner::new(Vec::new()),
            });
            top_environment(&m[1], &mut config, cx);
            config.eventlog = m[2].first().map(|s| eventlog(s, cx));
            config.programs = m[3].iter().map(|s| program(s, cx)).collect();
            check_order(&m[3], &config.programs, cx);
        }
        Kind::Zeo => {
            Reader::new(root, cx.values_of(root), &[], &mut cx.errors);
            let slots = [
                slot(&["zeo"], Once),
                slot(&["runner"], Once),
                slot(STORAGE_TYPES, Many),
                slot(&["eventlog"], Once),
                slot(&["command"], Many),
            ];
            let m = match_sections(root, &slots, cx, None);
            config.commands = m[4].iter().map(|s| command(s, cx)).collect();
            config.zeo = one_required(root, &m[0], "zeo", cx).map(|s| zeo(s, cx));
            config.runner = m[1].first().map(|s| runner(s, cx));
            if m[2].is_empty() {
                not_enough(root, "zodb.storage", cx);
            }
            config.storages = m[2].iter().map(|s| storage(s, cx)).collect();
            config.eventlog = m[3].first().map(|s| eventlog(s, cx));
        }
        Kind::Zodb => {
            Reader::new(root, cx.values_of(root), &[], &mut cx.errors);
            let m = match_sections(root, &[slot(&["zodb"], Many)], cx, None);
            if m[0].is_empty() {
                not_enough(root, "zodb.database", cx);
            }
            config.databases = m[0].iter().map(|s| database(s, cx)).collect();
        }
        Kind::Zope => zope::top_level(root, &mut config, cx),
    }
    config
}

/// The top level's `<environment>`, remembering where it starts.
fn top_environment(found: &[&RawSection], config: &mut Config, cx: &mut Cx) {
    if let Some(s) = found.first() {
        let origin = Origin::File(cx.errors.location(s.start));
        config.origins.set("environment", origin);
        config.environment = environment(s, cx);
    }
}

/// A section's name, for the model.
pub(super) fn name_of(s: &RawSection) -> Option<String> {
    s.name.as_deref().map(str::to_owned)
}

pub(super) fn slot(types: &'static [&'static str], occurs: Occurs) -> Slot {
    Slot { types, occurs }
}

fn one_required<'s, 'a>(
    container: &RawSection,
    found: &[&'s RawSection<'a>],
    type_name: &str,
    cx: &mut Cx,
) -> Option<&'s RawSection<'a>> {
    if found.is_empty() {
        let kind = ErrorKind::MissingSection(type_name.to_string());
        cx.errors.push(container.end, kind, container);
    }
    found.first().copied()
}

fn not_enough(container: &RawSection, type_name: &str, cx: &mut Cx) {
    let kind = ErrorKind::NotEnoughSections {
        type_name: type_name.to_string(),
        found: 0,
        required: 1,
    };
    cx.errors.push(container.end, kind, container);
}

fn words(s: &str) -> Conv<Vec<String>> {
    Ok(dt::string_list(s))
}

fn runner(s: &RawSection, cx: &mut Cx) -> Runner {
    runner_of(s, true, cx)
}

/// The keys of `<runner>`.
pub(crate) const RUNNER_KEYS: &[(&str, Occurs)] = &[
    ("program", Once),
    ("python", Once),
    ("zdrun", Once),
    ("socket-name", Once),
    ("daemon", Once),
    ("directory", Once),
    ("backoff-limit", Once),
    ("forever", Once),
    ("exit-codes", Once),
    ("start-test-program", Once),
    ("start-timeout", Once),
    ("stop-timeout", Once),
    ("user", Once),
    ("umask", Once),
    ("hang-around", Once),
    ("default-to-interactive", Once),
    ("logfile", Once),
    ("transcript", Once),
    ("prompt", Once),
    ("memory-limit", Once),
    ("memory-cumulative", Once),
    ("memory-check-interval", Once),
    ("restart-policy", Once),
    ("restart-delay", Once),
    ("restart-delay-max", Once),
    ("restart-jitter", Once),
    ("start-limit-burst", Once),
    ("start-limit-interval", Once),
    ("event-hook", Once),
    ("event-hook-timeout", Once),
    ("prefix-output", Once),
];

/// `<runner>`; in a site it configures the supervisor, so `program` is
/// not required there.
fn runner_of(s: &RawSection, program_required: bool, cx: &mut Cx) -> Runner {
    let r = Reader::new(s, cx.values_of(s), RUNNER_KEYS, &mut cx.errors);
    let slots = [slot(LOG_TYPES, Once), slot(&["http-server"], Once)];
    let m = match_sections(s, &slots, cx, None);
    // Relative paths are checked from the directory of the file they
    // are written in.
    let dir = |key| r.dir_of(key, &cx.errors);
    let directory_dir = dir("directory");
    let (log_dir, transcript_dir) = (dir("logfile"), dir("transcript"));
    let (zdrun_dir, python_dir) = (dir("zdrun"), dir("python"));
    let e = &mut cx.errors;
    let mut runner = Runner {
        section_name: name_of(s),
        program: if program_required {
            r.req("program", words, e)
        } else {
            r.opt("program", words, e).unwrap_or_default()
        },
        python: r.opt(
            "python",
            dt::checked_in(python_dir.as_deref(), dt::existing_path),
            e,
        ),
        zdrun: r.opt(
            "zdrun",
            dt::checked_in(zdrun_dir.as_deref(), dt::existing_path),
            e,
        ),
        // Its directory is checked by the settings, when zdrun is to bind
        // there: `status` before the first start (the directory made then
        // does not exist yet) must say that nothing runs.
        socket_name: r.or("socket-name", "zdsock", |v| Ok(dt::expand_user(v)), e),
        daemon: r.or("daemon", "on", dt::boolean, e),
        directory: r.opt(
            "directory",
            dt::checked_in(directory_dir.as_deref(), dt::existing_parent_directory),
            e,
        ),
        backoff_limit: r.or("backoff-limit", "10", dt::integer, e),
        forever: r.or("forever", "false", dt::boolean, e),
        exit_codes: r.or("exit-codes", "0,2", dt::list_of_ints, e),
        start_test_program: r.opt("start-test-program", words, e),
        start_timeout: r.or("start-timeout", "300", dt::integer, e),
        stop_timeout: r.or("stop-timeout", "300", dt::integer, e),
        user: r.opt("user", string, e),
        umask: r.or("umask", "022", dt::octal, e),
        hang_around: r.or("hang-around", "false", dt::boolean, e),
        default_to_interactive: r.or("default-to-interactive", "true", dt::boolean, e),
        logfile: r.opt(
            "logfile",
            dt::checked_in(log_dir.as_deref(), dt::existing_dirpath),
            e,
        ),
        transcript: r.opt(
            "transcript",
            dt::checked_in(transcript_dir.as_deref(), dt::existing_dirpath),
            e,
        ),
        prompt: r.opt("prompt", string, e),
        memory_limit: r.opt("memory-limit", limits::memory_limit, e),
        memory_cumulative: r.opt("memory-cumulative", dt::boolean, e),
        memory_check_interval: r.opt("memory-check-interval", limits::positive_interval, e),
        restart_policy: r.opt("restart-policy", limits::restart_policy, e),
        restart_delay: r.opt("restart-delay", limits::seconds, e),
        restart_delay_max: r.opt("restart-delay-max", limits::seconds, e),
        restart_jitter: r.opt("restart-jitter", limits::fraction, e),
        start_limit_burst: r.opt("start-limit-burst", limits::positive_integer, e),
        start_limit_interval: r.opt("start-limit-interval", limits::positive_interval, e),
        event_hook: r.opt("event-hook", words, e),
        event_hook_timeout: r.or("event-hook-timeout", "30", dt::integer, e),
        prefix_output: r.opt("prefix-output", dt::boolean, e),
        eventlog: None,
        http_server: None,
        origins: r.origins(e),
    };
    if let Some(h) = m[1].first() {
        runner.http_server = Some(super::http::read(h, cx.values_of(h), &mut cx.errors));
    }
    if let Err((_, why)) = limits::resolve(&limits::runner_keys(&runner)) {
        cx.errors.push(s.end, ErrorKind::Invalid(why), s);
    }
    runner.eventlog = m[0].first().map(|s| eventlog(s, cx));
    runner
}

/// The keys of `<program NAME>`.
pub(crate) const PROGRAM_KEYS: &[(&str, Occurs)] = &[
    ("config", Once),
    ("after", Many),
    ("program", Once),
    ("directory", Once),
    ("backoff-limit", Once),
    ("forever", Once),
    ("exit-codes", Once),
    ("start-test-program", Once),
    ("start-timeout", Once),
    ("stop-timeout", Once),
    ("umask", Once),
    ("logfile", Once),
    ("transcript", Once),
    ("memory-limit", Once),
    ("memory-cumulative", Once),
    ("memory-check-interval", Once),
    ("restart-policy", Once),
    ("restart-delay", Once),
    ("restart-delay-max", Once),
    ("restart-jitter", Once),
    ("start-limit-burst", Once),
    ("start-limit-interval", Once),
    ("event-hook", Once),
    ("event-hook-timeout", Once),
];

/// `<program NAME>`: a node of a site.
fn program(s: &RawSection, cx: &mut Cx) -> Program {
    let r = Reader::new(s, cx.values_of(s), PROGRAM_KEYS, &mut cx.errors);
    let slots = [slot(&["environment"], Once), slot(&["health"], Once)];
    let m = match_sections(s, &slots, cx, None);
    let dir = |key| r.dir_of(key, &cx.errors);
    let (config_dir, directory_dir) = (dir("config"), dir("directory"));
    let (log_dir, transcript_dir) = (dir("logfile"), dir("transcript"));
    let e = &mut cx.errors;
    let name = name_of(s);
    if name.is_none() {
        let kind = ErrorKind::Invalid("a <program> section needs a name".into());
        e.push(s.start, kind, s);
    }
    let mut p = Program {
        name: name.unwrap_or_default(),
        config: r.opt(
            "config",
            dt::checked_in(config_dir.as_deref(), dt::existing_path),
            e,
        ),
        after: r.many("after", words, e).into_iter().flatten().collect(),
        program: r.opt("program", words, e),
        directory: r.opt(
            "directory",
            dt::checked_in(directory_dir.as_deref(), dt::existing_parent_directory),
            e,
        ),
        backoff_limit: r.opt("backoff-limit", dt::integer, e),
        forever: r.opt("forever", dt::boolean, e),
        exit_codes: r.opt("exit-codes", dt::list_of_ints, e),
        start_test_program: r.opt("start-test-program", words, e),
        start_timeout: r.opt("start-timeout", dt::integer, e),
        stop_timeout: r.opt("stop-timeout", dt::integer, e),
        umask: r.opt("umask", dt::octal, e),
        logfile: r.opt(
            "logfile",
            dt::checked_in(log_dir.as_deref(), dt::existing_dirpath),
            e,
        ),
        transcript: r.opt(
            "transcript",
            dt::checked_in(transcript_dir.as_deref(), dt::existing_dirpath),
            e,
        ),
        memory_limit: r.opt("memory-limit", limits::memory_limit, e),
        memory_cumulative: r.opt("memory-cumulative", dt::boolean, e),
        memory_check_interval: r.opt("memory-check-interval", limits::positive_interval, e),
        restart_policy: r.opt("restart-policy", limits::restart_policy, e),
        restart_delay: r.opt("restart-delay", limits::seconds, e),
        restart_delay_max: r.opt("restart-delay-max", limits::seconds, e),
        restart_jitter: r.opt("restart-jitter", limits::fraction, e),
        start_limit_burst: r.opt("start-limit-burst", limits::positive_integer, e),
        start_limit_interval: r.opt("start-limit-interval", limits::positive_interval, e),
        event_hook: r.opt("event-hook", words, e),
        event_hook_timeout: r.opt("event-hook-timeout", dt::integer, e),
        environment: Default::default(),
        health: None,
        source: e.describe(s.start),
        origins: r.origins(e),
    };
    if p.program.is_none() && p.config.is_none() {
        let kind = ErrorKind::Invalid(format!(
            "<program {}> needs a program, or a config file whose <runner> has one",
            p.name
        ));
        e.push(s.end, kind, s);
    }
    if let Some(env) = m[0].first() {
        let origin = Origin::File(cx.errors.location(env.start));
        p.origins.set("environment", origin);
        p.environment = environment(env, cx);
    }
    if let Some(h) = m[1].first() {
        p.health = Some(super::health::read(h, cx.values_of(h), &mut cx.errors));
    }
    p
}

/// `<command NAME>`: an action of zdctl's own, e.g. zopectl's `debug`.
fn command(s: &RawSection, cx: &mut Cx) -> UserCommand {
    const KEYS: &[(&str, Occurs)] = &[
        ("program", Once),
        ("description", Once),
        ("directory", Once),
    ];
    let r = Reader::new(s, cx.values_of(s), KEYS, &mut cx.errors);
    let m = match_sections(s, &[slot(&["environment"], Once)], cx, None);
    let e = &mut cx.errors;
    let name = name_of(s);
    if name.is_none() {
        let kind = ErrorKind::Invalid("a <command> section needs a name".into());
        e.push(s.start, kind, s);
    }
    if r.has("program") && r.opt("program", words, e).is_some_and(|p| p.is_empty()) {
        let kind = ErrorKind::Invalid("a <command> needs a program to run".into());
        e.push(s.end, kind, s);
    }
    let mut c = UserCommand {
        name: name.unwrap_or_default(),
        program: r.req("program", words, e),
        description: r.opt("description", string, e),
        directory: r.opt("directory", dt::existing_parent_directory, e),
        environment: Default::default(),
    };
    c.environment = m[0].first().map(|s| environment(s, cx)).unwrap_or_default();
    c
}

/// `after` must name other programs, without cycles.
fn check_order(sections: &[&RawSection], programs: &[Program], cx: &mut Cx) {
    let index = |name: &str| programs.iter().position(|p| p.name == name);
    for (s, p) in sections.iter().zip(programs) {
        for a in &p.after {
            // Not a program: HOST:PORT, a server elsewhere that zdrun
            // waits for, or an error at the `after` line (the first).
            if index(a).is_none()
                && let Some(why) = super::after::problem(a)
            {
                let kind = ErrorKind::Invalid(why);
                match p.origins.of("after") {
                    Origin::File(at) => cx.errors.push_at(at.clone(), kind, s),
                    _ => cx.errors.push(s.start, kind, s),
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(programs.len(), |i| {
        programs[i].after.iter().filter_map(|a| index(a)).collect()
    }) {
        let names: Vec<&str> = cycle.iter().map(|&i| programs[i].name.as_str()).collect();
        let kind = ErrorKind::Invalid(format!(
            "start order has a cycle: {} -> {}",
            names.join(" -> "),
            names[0]
        ));
        let s = sections[cycle[0]];
        cx.errors.push(s.start, kind, s);
    }
}

/// A cycle in the graph `edges` over `0..n`, as the nodes on it.
pub fn find_cycle(n: usize, edges: impl Fn(usize) -> Vec<usize>) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; n];
    let mut path = Vec::new();
    fn visit(
        i: usize,
        edges: &dyn Fn(usize) -> Vec<usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for j in edges(i) {
            if state[j] == 1 {
                let at = path.iter().position(|&k| k == j).unwrap_or(0);
                return Some(path[at..].to_vec());
            }
            if state[j] == 0
                && let Some(c) = visit(j, edges, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    (0..n).find_map(|i| {
        if state[i] == 0 {
            visit(i, &edges, &mut state, &mut path)
        } else {
            None
        }
    })
}

fn environment(s: &RawSection, cx: &mut Cx) -> indexmap::IndexMap<String, String> {
    // keytype "string": names are kept exactly as written.
    let mut map = indexmap::IndexMap::new();
    for v in cx.values_of(s) {
        if map.contains_key(&*v.key) {
            let kind = ErrorKind::TooManyValues(v.key.to_string());
            cx.errors.push(v.pos, kind, s);
        } else {
            map.insert(v.key.to_string(), v.value.to_string());
        }
    }
    match_sections(s, &[], cx, None);
    map
}

fn eventlog(s: &RawSection, cx: &mut Cx) -> EventLog {
    let is_logger = s.type_name == "logger";
    let keys: &[(&str, Occurs)] = if is_logger {
        &[("level", Once), ("propagate", Once), ("name", Once)]
    } else {
        &[("level", Once)]
    };
    let r = Reader::new(s, cx.values_of(s), keys, &mut cx.errors);
    let m = match_sections(s, &[slot(HANDLER_TYPES, Many)], cx, None);
    let e = &mut cx.errors;
    let mut log = EventLog {
        section_name: name_of(s),
        level: Level(r.or("level", "info", dt::logging_level, e)),
        handlers: Vec::new(),
        log_type: None,
        propagate: None,
        name: None,
    };
    if is_logger {
        log.log_type = Some("logger".into());
        log.propagate = Some(r.or("propagate", "true", dt::boolean, e));
        log.name = Some(r.opt("name", dt::dotted_name, e));
    }
    log.handlers = m[0].iter().map(|h| handler(h, cx)).collect();
    log
}

fn handler(s: &RawSection, cx: &mut Cx) -> Handler {
    let own: &[(&str, Occurs)] = match &s.type_name[..] {
        "logfile" => &[
            ("path", Once),
            ("old-files", Once),
            ("max-size", Once),
            ("when", Once),
            ("interval", Once),
            ("encoding", Once),
            ("delay", Once),
        ],
        "syslog" => &[("facility", Once), ("address", Once)],
        "win32-eventlog" => &[("appname", Once)],
        "http-logger" => &[("url", Once), ("method", Once)],
        _ => &[
            ("from", Once),
            ("to", Many),
            ("subject", Once),
            ("smtp-server", Once),
            ("smtp-username", Once),
            ("smtp-password", Once),
        ],
    };
    let mut keys = own.to_vec();
    keys.extend_from_slice(&[
        ("formatter", Once),
        ("dateformat", Once),
        ("level", Once),
        ("style", Once),
        ("arbitrary-fields", Once),
        ("format", Once),
    ]);
    let r = Reader::new(s, cx.values_of(s), &keys, &mut cx.errors);
    match_sections(s, &[], cx, None);
    let e = &mut cx.errors;
    let default_format = match &s.type_name[..] {
        "logfile" => logfile_format(),
        "syslog" => syslog_format(),
        "win32-eventlog" => win32_format(),
        _ => http_format(),
    };
    let section_name = name_of(s);
    let formatter = r.opt("formatter", dt::dotted_name, e);
    let dateformat = r.or("dateformat", "%Y-%m-%dT%H:%M:%S", string, e);
    let level = Level(r.or("level", "notset", dt::logging_level, e));
    let style = r.or("style", "classic", dt::log_format_style, e);
    let arbitrary_fields = r.or("arbitrary-fields", "false", dt::boolean, e);
    let format = match r.opt("format", |v| Ok(dt::escaped_string(v)), e) {
        Some(f) => f,
        None => default_format,
    };
    if let Err(m) = super::logcheck::check_format(&format, &style, arbitrary_fields) {
        e.push(s.end, ErrorKind::Invalid(m), s);
    }
    macro_rules! common {
        ($ty:ident { $($f:ident: $v:expr),* $(,)? }) => {
            $ty {
                section_name,
                $($f: $v,)*
                dateformat,
                formatter,
                level,
                style,
                arbitrary_fields,
                format,
            }
        };
    }
    match &s.type_name[..] {
        "logfile" => {
            let h = common!(LogFile {
                path: r.req("path", string, e),
                old_files: r.or("old-files", "0", dt::integer, e),
                max_size: r.or("max-size", "0", dt::byte_size, e),
                when: r.or("when", "", string, e),
                interval: r.or("interval", "0", dt::integer, e),
                encoding: r.opt("encoding", string, e),
                delay: r.or("delay", "false", dt::boolean, e),
                path_origin: r.origin("path", e),
            });
            if let Err(m) = super::logcheck::check_logfile(&h) {
                e.push(s.end, ErrorKind::Invalid(m), s);
            }
            Handler::Logfile(h)
        }
        "syslog" => Handler::Syslog(common!(Syslog {
            facility: r.or("facility", "user", dt::syslog_facility, e),
            address: r.or("address", "localhost:514", any_address, e),
        })),
        "win32-eventlog" => Handler::Win32Eventlog(common!(Win32EventLog {
            appname: r.or("appname", "Zope", string, e),
        })),
        "http-logger" => Handler::HttpLogger(common!(HttpLogger {
            url: r.or("url", "http://localhost/", dt::http_url, e),
            method: r.or("method", "GET", dt::get_or_post, e),
        })),
        _ => Handler::EmailNotifier(common!(EmailNotifier {
            fromaddr: r.req("from", string, e),
            toaddrs: {
                if !r.has("to") {
                    e.push(s.end, ErrorKind::NotEnoughValues("to".into()), s);
                }
                r.many("to", string, e)
            },
            subject: r.or("subject", "Message from Zope", string, e),
            smtp_server: r.or("smtp-server", "localhost", inet_any, e),
            smtp_username: r.or("smtp-username", "", string, e),
            smtp_password: r.or("smtp-password", "", string, e),
        })),
    }
}

fn any_address(s: &str) -> Conv<SocketAddress> {
    SocketAddress::parse(s, DefaultHost::Any)
}

fn connection_address(s: &str) -> Conv<SocketAddress> {
    SocketAddress::parse(s, DefaultHost::Loopback)
}

fn inet_any(s: &str) -> Conv<SocketAddress> {
    let (host, port) = dt::inet_address(s, DefaultHost::Any)?;
    Ok(SocketAddress::Inet { host, port })
}

impl Default for SocketAddress {
    fn default() -> Self {
        SocketAddress::Inet {
            host: String::new(),
            port: None,
        }
    }
}

fn zeo(s: &RawSection, cx: &mut Cx) -> Zeo {
    const KEYS: &[(&str, Occurs)] = &[
        ("address", Once),
        ("read-only", Once),
        ("invalidation-queue-size", Once),
        ("invalidation-age", Once),
        ("transaction-timeout", Once),
        ("pid-filename", Once),
        ("client-conflict-resolution", Once),
        ("msgpack", Once),
    ];
    let r = Reader::new(s, cx.values_of(s), KEYS, &mut cx.errors);
    let m = match_sections(s, &[slot(&["ssl"], Once)], cx, None);
    // Relative paths from the file's directory, as the runner's are.
    let pid_dir = r.dir_of("pid-filename", &cx.errors);
    let e = &mut cx.errors;
    let mut z = Zeo {
        section_name: name_of(s),
        address: r.req("address", any_address, e),
        read_only: r.or("read-only", "false", dt::boolean, e),
        invalidation_queue_size: r.or("invalidation-queue-size", "100", dt::integer, e),
        invalidation_age: r.opt("invalidation-age", dt::float, e),
        transaction_timeout: r.opt("transaction-timeout", dt::integer, e),
        pid_filename: r.opt(
            "pid-filename",
            dt::checked_in(pid_dir.as_deref(), dt::existing_dirpath),
            e,
        ),
        client_conflict_resolution: r.or("client-conflict-resolution", "false", dt::boolean, e),
        msgpack: r.opt("msgpack", dt::boolean, e),
        ssl: None,
    };
    z.ssl = m[0].first().map(|s| {
        let r = Reader::new(
            s,
            cx.values_of(s),
            &[
                ("certificate", Once),
                ("key", Once),
                ("password-function", Once),
                ("authenticate", Once),
            ],
            &mut cx.errors,
        );
        match_sections(s, &[], cx, None);
        let e = &mut cx.errors;
        ServerSsl {
            section_name: name_of(s),
            certificate: r.req("certificate", dt::existing_dirpath, e),
            key: r.opt("key", dt::existing_dirpath, e),
            password_function: r.opt("password-function", string, e),
            authenticate: r.req("authenticate", string, e),
        }
    });
    z
}

pub(super) fn storage(s: &RawSection, cx: &mut Cx) -> Storage {
    let name = name_of(s);
    match &s.type_name[..] {
        "filestorage" => {
            let r = Reader::new(
                s,
                cx.values_of(s),
                &[
                    ("path", Once),
                    ("blob-dir", Once),
                    ("create", Once),
                    ("read-only", Once),
                    ("quota", Once),
                    ("packer", Once),
                    ("pack-gc", Once),
                    ("pack-keep-old", Once),
                ],
                &mut cx.errors,
            );
            match_sections(s, &[], cx, None);
            let (path_dir, blob_dir) = (
                r.dir_of("path", &cx.errors),
                r.dir_of("blob-dir", &cx.errors),
            );
            let e = &mut cx.errors;
            Storage::Filestorage(FileStorage {
                section_name: name,
                path: r.req(
                    "path",
                    dt::checked_in(path_dir.as_deref(), dt::existing_dirpath),
                    e,
                ),
                blob_dir: r.opt(
                    "blob-dir",
                    dt::checked_in(blob_dir.as_deref(), dt::existing_dirpath),
                    e,
                ),
                create: r.opt("create", dt::boolean, e),
                read_only: r.opt("read-only", dt::boolean, e),
                quota: r.opt("quota", dt::byte_size, e),
                packer: r.opt("packer", string, e),
                pack_gc: r.or("pack-gc", "true", dt::boolean, e),
                pack_keep_old: r.or("pack-keep-old", "true", dt::boolean, e),
            })
        }
        "mappingstorage" => {
            let r = Reader::new(s, cx.values_of(s), &[("name", Once)], &mut cx.errors);
            match_sections(s, &[], cx, None);
            Storage::Mappingstorage(MappingStorage {
                section_name: name,
                name: r.or("name", "Mapping Storage", string, &mut cx.errors),
            })
        }
        "demostorage" => {
            let r = Reader::new(s, cx.values_of(s), &[("name", Once)], &mut cx.errors);
            let m = match_sections(s, &[slot(STORAGE_TYPES, Many)], cx, None);
            let n = r.opt("name", string, &mut cx.errors);
            Storage::Demostorage(DemoStorage {
                section_name: name,
                name: n,
                factories: m[0].iter().map(|c| storage(c, cx)).collect(),
            })
        }
        "blobstorage" => {
            let r = Reader::new(s, cx.values_of(s), &[("blob-dir", Once)], &mut cx.errors);
            let m = match_sections(s, &[slot(STORAGE_TYPES, Once)], cx, None);
            let blob_dir = r.req("blob-dir", string, &mut cx.errors);
            Storage::Blobstorage(BlobStorage {
                section_name: name,
                blob_dir,
                base: m[0].first().map(|c| Box::new(storage(c, cx))),
            })
        }
        "zeoclient" => zeoclient(s, cx),
        "clientstorage" => clientstorage(s, cx),
        "temporarystorage" => storages::temporarystorage(s, cx),
        "relstorage" => storages::relstorage(s, cx),
        "zlibstorage" | "serverzlibstorage" => storages::zlibstorage(s, cx),
        _ => {
            let r = Reader::new(
                s,
                cx.values_of(s),
                &[
                    ("envdir", Once),
                    ("interval", Once),
                    ("kbyte", Once),
                    ("min", Once),
                    ("logdir", Once),
                    ("cachesize", Once),
                    ("frequency", Once),
                    ("packtime", Once),
                    ("gcpack", Once),
                    ("read-only", Once),
                ],
                &mut cx.errors,
            );
            match_sections(s, &[], cx, None);
            let e = &mut cx.errors;
            let b = BdbStorage {
                section_name: name,
                envdir: r.req("envdir", string, e),
                interval: r.or("interval", "2m", dt::time_interval, e),
                kbyte: r.or("kbyte", "0", dt::integer, e),
                min: r.or("min", "0", dt::integer, e),
                logdir: r.opt("logdir", string, e),
                cachesize: r.or("cachesize", "128MB", dt::byte_size, e),
                frequency: r.or("frequency", "0", dt::time_interval, e),
                packtime: r.or("packtime", "4h", dt::time_interval, e),
                gcpack: r.or("gcpack", "0", dt::integer, e),
                read_only: r.or("read-only", "off", dt::boolean, e),
            };
            if s.type_name == "fullstorage" {
                Storage::Fullstorage(b)
            } else {
                Storage::Minimalstorage(b)
            }
        }
    }
}

fn servers(r: &Reader, s: &RawSection, e: &mut Errors) -> Vec<SocketAddress> {
    if !r.has("server") {
        e.push(s.end, ErrorKind::NotEnoughValues("server".into()), s);
    }
    r.many("server", connection_address, e)
}

fn zeoclient(s: &RawSection, cx: &mut Cx) -> Storage {
    let r = Reader::new(
        s,
        cx.values_of(s),
        &[
            ("server", Many),
            ("blob-dir", Once),
            ("shared-blob-dir", Once),
            ("blob-cache-size", Once),
            ("blob-cache-size-check", Once),
            ("storage", Once),
            ("cache-size", Once),
            ("name", Once),
            ("client", Once),
            ("var", Once),
            ("min-disconnect-poll", Once),
            ("max-disconnect-poll", Once),
            ("wait", Once),
            ("read-only", Once),
            ("read-only-fallback", Once),
            ("username", Once),
            ("password", Once),
            ("realm", Once),
            ("drop-cache-rather-verify", Once),
            ("client-label", Once),
        ],
        &mut cx.errors,
    );
    match_sections(s, &[], cx, None);
    let e = &mut cx.errors;
    Storage::Zeoclient(ZeoClient {
        section_name: name_of(s),
        server: servers(&r, s, e),
        blob_dir: r.opt("blob-dir", string, e),
        shared_blob_dir: r.or("shared-blob-dir", "no", dt::boolean, e),
        blob_cache_size: r.opt("blob-cache-size", dt::byte_size, e),
        blob_cache_size_check: r.opt("blob-cache-size-check", dt::integer, e),
        storage: r.or("storage", "1", string, e),
        cache_size: r.or("cache-size", "20MB", dt::byte_size, e),
        name: r.or("name", "", string, e),
        client: r.opt("client", string, e),
        var: r.opt("var", string, e),
        min_disconnect_poll: r.or("min-disconnect-poll", "5", dt::integer, e),
        max_disconnect_poll: r.or("max-disconnect-poll", "300", dt::integer, e),
        wait: r.or("wait", "on", dt::boolean, e),
        read_only: r.or("read-only", "off", dt::boolean, e),
        read_only_fallback: r.or("read-only-fallback", "off", dt::boolean, e),
        username: r.opt("username", string, e),
        password: r.opt("password", string, e),
        realm: r.opt("realm", string, e),
        drop_cache_rather_verify: r.or("drop-cache-rather-verify", "off", dt::boolean, e),
        client_label: r.opt("client-label", string, e),
    })
}

fn clientstorage(s: &RawSection, cx: &mut Cx) -> Storage {
    let r = Reader::new(
        s,
        cx.values_of(s),
        &[
            ("server", Many),
            ("cache-size", Once),
            ("cache-path", Once),
            ("blob-dir", Once),
            ("shared-blob-dir", Once),
            ("blob-cache-size", Once),
            ("blob-cache-size-check", Once),
            ("read-only", Once),
            ("read-only-fallback", Once),
            ("server-sync", Once),
            ("wait-timeout", Once),
            ("client-label", Once),
            ("storage", Once),
            ("name", Once),
        ],
        &mut cx.errors,
    );
    let m = match_sections(s, &[slot(&["ssl"], Once)], cx, None);
    let e = &mut cx.errors;
    let mut c = ClientStorage {
        section_name: name_of(s),
        server: servers(&r, s, e),
        cache_size: r.or("cache-size", "20MB", dt::byte_size, e),
        cache_path: r.opt("cache-path", string, e),
        blob_dir: r.opt("blob-dir", string, e),
        shared_blob_dir: r.or("shared-blob-dir", "no", dt::boolean, e),
        blob_cache_size: r.opt("blob-cache-size", dt::byte_size, e),
        blob_cache_size_check: r.opt("blob-cache-size-check", dt::integer, e),
        read_only: r.or("read-only", "off", dt::boolean, e),
        read_only_fallback: r.or("read-only-fallback", "off", dt::boolean, e),
        server_sync: r.or("server-sync", "off", dt::boolean, e),
        wait_timeout: r.or("wait-timeout", "30", dt::integer, e),
        client_label: r.opt("client-label", string, e),
        storage: r.or("storage", "1", string, e),
        name: r.or("name", "", string, e),
        ssl: None,
    };
    c.ssl = m[0].first().map(|s| {
        let r = Reader::new(
            s,
            cx.values_of(s),
            &[
                ("certificate", Once),
                ("key", Once),
                ("password-function", Once),
                ("authenticate", Once),
                ("check-hostname", Once),
                ("server-hostname", Once),
            ],
            &mut cx.errors,
        );
        match_sections(s, &[], cx, None);
        let e = &mut cx.errors;
        ClientSsl {
            section_name: name_of(s),
            certificate: r.req("certificate", dt::existing_dirpath, e),
            key: r.opt("key", dt::existing_dirpath, e),
            password_function: r.opt("password-function", string, e),
            authenticate: r.opt("authenticate", dt::existing_dirpath, e),
            check_hostname: r.or("check-hostname", "true", dt::boolean, e),
            server_hostname: r.opt("server-hostname", string, e),
        }
    });
    Storage::Clientstorage(c)
}

fn database(s: &RawSection, cx: &mut Cx) -> Database {
    let zope = s.type_name == "zodb_db";
    let mut keys = vec![
        ("cache-size", Once),
        ("cache-size-bytes", Once),
        ("large-record-size", Once),
        ("pool-size", Once),
        ("pool-timeout", Once),
        ("historical-pool-size", Once),
        ("historical-cache-size", Once),
        ("historical-cache-size-bytes", Once),
        ("historical-timeout", Once),
        ("database-name", Once),
        ("allow-implicit-cross-references", Once),
        ("class-factory", Once),
    ];
    if zope {
        keys.extend([
            ("mount-point", Many),
            ("container-class", Once),
            ("connection-class", Once),
        ]);
    }
    let r = Reader::new(s, cx.values_of(s), &keys, &mut cx.errors);
    let m = match_sections(s, &[slot(STORAGE_TYPES, Once)], cx, None);
    let e = &mut cx.errors;
    // Zope's schema requires every database to say where it is mounted.
    if zope && !r.has("mount-point") {
        e.push(s.end, ErrorKind::NotEnoughValues("mount-point".into()), s);
    }
    let mut db = Database {
        db_type: if zope {
            DatabaseType::ZodbDb
        } else {
            DatabaseType::Zodb
        },
        section_name: name_of(s),
        storage: None,
        cache_size: r.or("cache-size", "5000", dt::integer, e),
        cache_size_bytes: r.or("cache-size-bytes", "0", dt::byte_size, e),
        large_record_size: r.or("large-record-size", "16MB", dt::byte_size, e),
        pool_size: r.or("pool-size", "7", dt::integer, e),
        pool_timeout: r.opt("pool-timeout", dt::time_interval, e),
        historical_pool_size: r.or("historical-pool-size", "3", dt::integer, e),
        historical_cache_size: r.or("historical-cache-size", "1000", dt::integer, e),
        historical_cache_size_bytes: r.or("historical-cache-size-bytes", "0", dt::byte_size, e),
        historical_timeout: r.or("historical-timeout", "5m", dt::time_interval, e),
        database_name: r.opt("database-name", string, e),
        allow_implicit_cross_references: r.opt("allow-implicit-cross-references", dt::boolean, e),
        class_factory: r.opt("class-factory", dt::dotted_name, e),
        mount_points: r.many("mount-point", string, e),
        container_class: r.opt("container-class", string, e),
        connection_class: r.opt("connection-class", dt::dotted_name, e),
    };
    db.storage = m[0].first().map(|c| storage(c, cx));
    db
}
