//! The typed configuration model shared by ZConfig files, TOML and the
//! supervisor. Field names are ZConfig's key names; defaults are the
//! schemas' defaults (zdaemon 5.2.1, ZEO 6.2, ZODB 6.4, ZConfig 4.3).

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::datatypes::{self, DefaultHost};
use super::origin::{Origin, Origins};

/// Which schema a file was read with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// zdaemon's runner schema: `<runner>`, `<environment>`, `<eventlog>`.
    #[default]
    Zdaemon,
    /// ZEO's server schema: `<zeo>`, storages, `<runner>`, `<eventlog>`.
    Zeo,
    /// ZODB's database schema: `<zodb>` sections.
    Zodb,
    /// A Zope instance's zope.conf.
    Zope,
    /// A site: several `<program NAME>` nodes under one zdrun.
    Site,
}

/// One loaded configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub runner: Option<Runner>,
    /// `<environment>`: names as written, in file order.
    #[serde(default)]
    pub environment: IndexMap<String, String>,
    #[serde(default)]
    pub eventlog: Option<EventLog>,
    #[serde(default)]
    pub zeo: Option<Zeo>,
    #[serde(default)]
    pub storages: Vec<Storage>,
    #[serde(default)]
    pub databases: Vec<Database>,
    /// A zope.conf's own settings, as Zope's WSGI schema reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zope: Option<super::ZopeConf>,
    /// A site's `<program NAME>` nodes, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<Program>,
    /// `<command NAME>`: zdctl actions defined by the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<UserCommand>,
    /// Where `<environment>` starts (key `environment`).
    #[serde(skip)]
    pub origins: Origins,
}

/// `<command NAME>`: `zdctl NAME ARGS...` runs `program` with ARGS appended,
/// in the foreground, with the config's environment plus its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UserCommand {
    pub name: String,
    pub program: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, String>,
}

/// `<program NAME>`: one node of a site. Runner keys left unset here come
/// from the node's own configuration file (`config`), then the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Program {
    pub name: String,
    /// The node's own zeo.conf / zope.conf / runner config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Nodes that must be ready before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forever: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_test_program: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_umask"
    )]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    // Memory limit and restart policy (see `limits`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_memory_limit"
    )]
    pub memory_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cumulative: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_interval"
    )]
    pub memory_check_interval: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_policy"
    )]
    pub restart_policy: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_seconds"
    )]
    pub restart_delay: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_seconds"
    )]
    pub restart_delay_max: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_fraction"
    )]
    pub restart_jitter: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_count"
    )]
    pub start_limit_burst: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_interval"
    )]
    pub start_limit_interval: Option<i64>,
    /// A command run on the node's events (started, ready, exited, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hook: Option<Vec<String>>,
    /// Seconds an event hook may run before it is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hook_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, String>,
    /// `<health>`: the node's health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
    /// Where the section starts (`FILE:LINE`), for later errors.
    #[serde(skip)]
    pub source: String,
    /// Where each key was set (and `environment`, its section).
    #[serde(skip)]
    pub origins: Origins,
}

/// A umask in TOML: octal text as in ZConfig (`"022"`), or the number
/// itself (`18`), as older output wrote it.
fn umask<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => u32::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("umask out of range: {n}"))),
        Raw::Text(s) => datatypes::octal(&s).map_err(serde::de::Error::custom),
    }
}

fn some_umask<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    umask(d).map(Some)
}

fn yes() -> bool {
    true
}

/// `<runner>`: how zdrun runs the program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Runner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub program: Vec<String>,
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub zdrun: Option<String>,
    #[serde(default = "Runner::default_socket_name")]
    pub socket_name: String,
    #[serde(default = "yes")]
    pub daemon: bool,
    #[serde(default)]
    pub directory: Option<String>,
    #[serde(default = "Runner::default_backoff_limit")]
    pub backoff_limit: i64,
    #[serde(default)]
    pub forever: bool,
    #[serde(default = "Runner::default_exit_codes")]
    pub exit_codes: Vec<i64>,
    #[serde(default)]
    pub start_test_program: Option<Vec<String>>,
    #[serde(default = "Runner::default_timeout")]
    pub start_timeout: i64,
    #[serde(default = "Runner::default_timeout")]
    pub stop_timeout: i64,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default = "Runner::default_umask", deserialize_with = "umask")]
    pub umask: u32,
    #[serde(default)]
    pub hang_around: bool,
    #[serde(default = "yes")]
    pub default_to_interactive: bool,
    #[serde(default)]
    pub logfile: Option<String>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    // Memory limit and restart policy (see `limits`): the program's, or
    // in a site the defaults of its programs.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_memory_limit"
    )]
    pub memory_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cumulative: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_interval"
    )]
    pub memory_check_interval: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_policy"
    )]
    pub restart_policy: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_seconds"
    )]
    pub restart_delay: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_seconds"
    )]
    pub restart_delay_max: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_fraction"
    )]
    pub restart_jitter: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_count"
    )]
    pub start_limit_burst: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::limits::toml_interval"
    )]
    pub start_limit_interval: Option<i64>,
    /// The default event hook of every program. Neither key is written
    /// out unless set: a zdaemon runner reads as zdaemon's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hook: Option<Vec<String>>,
    #[serde(
        default = "Runner::default_hook_timeout",
        skip_serializing_if = "Runner::is_default_hook_timeout"
    )]
    pub event_hook_timeout: i64,
    #[serde(default)]
    pub eventlog: Option<EventLog>,
    /// `<http-server>`: zdrun's status page (none: no listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_server: Option<super::http::HttpServer>,
    /// Where each key was set, for errors found after loading.
    #[serde(skip)]
    pub origins: Origins,
}

impl Runner {
    pub const DEFAULT_SOCKET_NAME: &'static str = "zdsock";

    fn default_socket_name() -> String {
        Self::DEFAULT_SOCKET_NAME.into()
    }
    fn default_backoff_limit() -> i64 {
        10
    }
    fn default_exit_codes() -> Vec<i64> {
        vec![0, 2]
    }
    fn default_timeout() -> i64 {
        300
    }
    fn default_umask() -> u32 {
        0o22
    }
    pub fn default_hook_timeout() -> i64 {
        30
    }

    fn is_default_hook_timeout(t: &i64) -> bool {
        *t == Self::default_hook_timeout()
    }

    /// A runner with every default and the given program.
    pub fn new(program: Vec<String>) -> Self {
        Runner {
            section_name: None,
            program,
            python: None,
            zdrun: None,
            socket_name: Self::default_socket_name(),
            daemon: true,
            directory: None,
            backoff_limit: Self::default_backoff_limit(),
            forever: false,
            exit_codes: Self::default_exit_codes(),
            start_test_program: None,
            start_timeout: Self::default_timeout(),
            stop_timeout: Self::default_timeout(),
            user: None,
            umask: Self::default_umask(),
            hang_around: false,
            default_to_interactive: true,
            logfile: None,
            transcript: None,
            prompt: None,
            memory_limit: None,
            memory_cumulative: None,
            memory_check_interval: None,
            restart_policy: None,
            restart_delay: None,
            restart_delay_max: None,
            restart_jitter: None,
            start_limit_burst: None,
            start_limit_interval: None,
            event_hook: None,
            event_hook_timeout: Self::default_hook_timeout(),
            eventlog: None,
            http_server: None,
            origins: Origins::default(),
        }
    }
}

/// A logging level, written as a number; TOML may also use a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Level(pub i64);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Name(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(n) => n.to_string(),
            Raw::Name(s) => s,
        };
        datatypes::logging_level(&text)
            .map(Level)
            .map_err(serde::de::Error::custom)
    }
}

/// `<eventlog>` (a ZConfig logger): a level and handlers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EventLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "EventLog::default_level")]
    pub level: Level,
    #[serde(default)]
    pub handlers: Vec<Handler>,
    /// `Some("logger")` when a `<logger>` section filled the slot.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub log_type: Option<String>,
    /// `<logger>` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate: Option<bool>,
    /// `<logger>` only: the logger's dotted name, which may be unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
}

impl EventLog {
    fn default_level() -> Level {
        Level(20)
    }
}

/// Declares a log handler struct: the keys every handler has, then its own.
macro_rules! handler {
    ($(#[$m:meta])* $name:ident, format = $fmt:expr, { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct $name {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub section_name: Option<String>,
            $($body)*
            #[serde(default = "handler_dateformat")]
            pub dateformat: String,
            #[serde(default)]
            pub formatter: Option<String>,
            #[serde(default = "handler_level")]
            pub level: Level,
            #[serde(default = "handler_style")]
            pub style: String,
            #[serde(default)]
            pub arbitrary_fields: bool,
            #[serde(default = $fmt)]
            pub format: String,
        }
    };
}

fn handler_dateformat() -> String {
    "%Y-%m-%dT%H:%M:%S".into()
}
fn handler_level() -> Level {
    Level(0)
}
fn handler_style() -> String {
    "classic".into()
}
pub(crate) fn logfile_format() -> String {
    "------\n%(asctime)s %(levelname)s %(name)s %(message)s".into()
}
pub(crate) fn syslog_format() -> String {
    "%(name)s %(message)s".into()
}
pub(crate) fn win32_format() -> String {
    "%(levelname)s %(name)s %(message)s".into()
}
pub(crate) fn http_format() -> String {
    "%(asctime)s %(levelname)s %(name)s %(message)s".into()
}
fn syslog_facility() -> String {
    "user".into()
}
fn syslog_address() -> SocketAddress {
    SocketAddress::Inet {
        host: "localhost".into(),
        port: Some(514),
    }
}
fn win32_appname() -> String {
    "Zope".into()
}
fn http_url() -> String {
    "http://localhost/".into()
}
fn http_method() -> String {
    "GET".into()
}
fn email_subject() -> String {
    "Message from Zope".into()
}
fn email_server() -> SocketAddress {
    SocketAddress::Inet {
        host: "localhost".into(),
        port: None,
    }
}

handler!(
    /// `<logfile>`: a file, `STDOUT` or `STDERR`, optionally rotated.
    LogFile, format = "logfile_format", {
    pub path: String,
    #[serde(default)]
    pub old_files: i64,
    #[serde(default)]
    pub max_size: i64,
    #[serde(default)]
    pub when: String,
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub delay: bool,
    /// Where `path` was set.
    #[serde(skip)]
    pub path_origin: Origin,
});

handler!(
    /// `<syslog>`.
    Syslog, format = "syslog_format", {
    #[serde(default = "syslog_facility")]
    pub facility: String,
    #[serde(default = "syslog_address")]
    pub address: SocketAddress,
});

handler!(
    /// `<win32-eventlog>`.
    Win32EventLog, format = "win32_format", {
    #[serde(default = "win32_appname")]
    pub appname: String,
});

handler!(
    /// `<http-logger>`.
    HttpLogger, format = "http_format", {
    #[serde(default = "http_url")]
    pub url: String,
    #[serde(default = "http_method")]
    pub method: String,
});

handler!(
    /// `<email-notifier>`.
    EmailNotifier, format = "http_format", {
    pub fromaddr: String,
    pub toaddrs: Vec<String>,
    #[serde(default = "email_subject")]
    pub subject: String,
    #[serde(default = "email_server")]
    pub smtp_server: SocketAddress,
    #[serde(default)]
    pub smtp_username: String,
    #[serde(default)]
    pub smtp_password: String,
});

/// A log handler section inside `<eventlog>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Handler {
    Logfile(LogFile),
    Syslog(Syslog),
    Win32Eventlog(Win32EventLog),
    HttpLogger(HttpLogger),
    EmailNotifier(EmailNotifier),
}

/// A socket address: a Unix socket path, or host and optional port.
/// Written as text: the path, `host:port`, `[v6]:port`, or `host`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    Unix(String),
    Inet { host: String, port: Option<u16> },
}

impl SocketAddress {
    /// Parse ZConfig's `socket-*-address` text.
    pub fn parse(text: &str, default: DefaultHost) -> Result<Self, String> {
        if text.contains('/') {
            return Ok(SocketAddress::Unix(text.to_string()));
        }
        let (host, port) = datatypes::inet_address(text, default)?;
        Ok(SocketAddress::Inet { host, port })
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Unix(p) => f.write_str(p),
            SocketAddress::Inet { host, port: None } => f.write_str(host),
            SocketAddress::Inet {
                host,
                port: Some(p),
            } if host.contains(':') => write!(f, "[{host}]:{p}"),
            SocketAddress::Inet {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
        }
    }
}

impl Serialize for SocketAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.to_string();
        match self {
            // Hosts such as "a b" or "" (from "[a b]:" or ":") do not read
            // back from the plain form; the bracketed one keeps them.
            SocketAddress::Inet { host, port }
                if SocketAddress::parse(&text, DefaultHost::Any).as_ref() != Ok(self) =>
            {
                let port = port.map(|p| p.to_string()).unwrap_or_default();
                s.serialize_str(&format!("[{host}]:{port}"))
            }
            _ => s.serialize_str(&text),
        }
    }
}

impl<'de> Deserialize<'de> for SocketAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SocketAddress::parse(&text, DefaultHost::Any).map_err(serde::de::Error::custom)
    }
}

/// `<zeo>`: the storage server's own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Zeo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub address: SocketAddress,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default = "Zeo::default_queue")]
    pub invalidation_queue_size: i64,
    #[serde(default)]
    pub invalidation_age: Option<f64>,
    #[serde(default)]
    pub transaction_timeout: Option<i64>,
    #[serde(default)]
    pub pid_filename: Option<String>,
    #[serde(default)]
    pub client_conflict_resolution: bool,
    #[serde(default)]
    pub msgpack: Option<bool>,
    #[serde(default)]
    pub ssl: Option<ServerSsl>,
}

impl Zeo {
    fn default_queue() -> i64 {
        100
    }
}

/// `<ssl>` inside `<zeo>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerSsl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub certificate: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub password_function: Option<String>,
    pub authenticate: String,
}

/// `<ssl>` inside `<clientstorage>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientSsl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub certificate: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub password_function: Option<String>,
    #[serde(default)]
    pub authenticate: Option<String>,
    #[serde(default = "yes")]
    pub check_hostname: bool,
    #[serde(default)]
    pub server_hostname: Option<String>,
}

/// A ZODB storage section (ZConfig abstract type `ZODB.storage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Storage {
    Filestorage(FileStorage),
    Mappingstorage(MappingStorage),
    Demostorage(DemoStorage),
    Blobstorage(BlobStorage),
    Zeoclient(ZeoClient),
    Clientstorage(ClientStorage),
    Fullstorage(BdbStorage),
    Minimalstorage(BdbStorage),
    /// tempstorage's `<temporarystorage>`.
    Temporarystorage(TemporaryStorage),
    /// RelStorage's `<relstorage>` (boxed: it has many keys).
    Relstorage(Box<RelStorage>),
    /// zc.zlibstorage's `<zlibstorage>`.
    Zlibstorage(ZlibStorage),
    /// zc.zlibstorage's `<serverzlibstorage>`.
    Serverzlibstorage(ZlibStorage),
}

impl Storage {
    /// The section name: the storage's name as served by ZEO.
    pub fn section_name(&self) -> Option<&str> {
        match self {
            Storage::Filestorage(s) => s.section_name.as_deref(),
            Storage::Mappingstorage(s) => s.section_name.as_deref(),
            Storage::Demostorage(s) => s.section_name.as_deref(),
            Storage::Blobstorage(s) => s.section_name.as_deref(),
            Storage::Zeoclient(s) => s.section_name.as_deref(),
            Storage::Clientstorage(s) => s.section_name.as_deref(),
            Storage::Fullstorage(s) | Storage::Minimalstorage(s) => s.section_name.as_deref(),
            Storage::Temporarystorage(s) => s.section_name.as_deref(),
            Storage::Relstorage(s) => s.section_name.as_deref(),
            Storage::Zlibstorage(s) | Storage::Serverzlibstorage(s) => s.section_name.as_deref(),
        }
    }

    /// The storages this one wraps or combines, in file order.
    pub fn bases(&self) -> Vec<&Storage> {
        match self {
            Storage::Demostorage(d) => d.factories.iter().collect(),
            Storage::Blobstorage(b) => b.base.as_deref().into_iter().collect(),
            Storage::Zlibstorage(z) | Storage::Serverzlibstorage(z) => vec![&*z.base],
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub path: String,
    #[serde(default)]
    pub blob_dir: Option<String>,
    #[serde(default)]
    pub create: Option<bool>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub quota: Option<i64>,
    #[serde(default)]
    pub packer: Option<String>,
    #[serde(default = "yes")]
    pub pack_gc: bool,
    #[serde(default = "yes")]
    pub pack_keep_old: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MappingStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "MappingStorage::default_name")]
    pub name: String,
}

impl MappingStorage {
    fn default_name() -> String {
        "Mapping Storage".into()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DemoStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The base storage, then the changes storage.
    #[serde(default)]
    pub factories: Vec<Storage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BlobStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub blob_dir: String,
    #[serde(default)]
    pub base: Option<Box<Storage>>,
}

/// ZODB's `<zeoclient>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ZeoClient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub server: Vec<SocketAddress>,
    #[serde(default)]
    pub blob_dir: Option<String>,
    #[serde(default)]
    pub shared_blob_dir: bool,
    #[serde(default)]
    pub blob_cache_size: Option<i64>,
    #[serde(default)]
    pub blob_cache_size_check: Option<i64>,
    #[serde(default = "default_storage_name")]
    pub storage: String,
    #[serde(default = "default_cache_size")]
    pub cache_size: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub var: Option<String>,
    #[serde(default = "ZeoClient::default_min_poll")]
    pub min_disconnect_poll: i64,
    #[serde(default = "ZeoClient::default_max_poll")]
    pub max_disconnect_poll: i64,
    #[serde(default = "yes")]
    pub wait: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub read_only_fallback: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub drop_cache_rather_verify: bool,
    #[serde(default)]
    pub client_label: Option<String>,
}

impl ZeoClient {
    fn default_min_poll() -> i64 {
        5
    }
    fn default_max_poll() -> i64 {
        300
    }
}

fn default_storage_name() -> String {
    "1".into()
}
fn default_cache_size() -> i64 {
    20 << 20
}

/// ZEO's own `<clientstorage>` (after `%import ZEO`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub server: Vec<SocketAddress>,
    #[serde(default = "default_cache_size")]
    pub cache_size: i64,
    #[serde(default)]
    pub cache_path: Option<String>,
    #[serde(default)]
    pub blob_dir: Option<String>,
    #[serde(default)]
    pub shared_blob_dir: bool,
    #[serde(default)]
    pub blob_cache_size: Option<i64>,
    #[serde(default)]
    pub blob_cache_size_check: Option<i64>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub read_only_fallback: bool,
    #[serde(default)]
    pub server_sync: bool,
    #[serde(default = "ClientStorage::default_wait_timeout")]
    pub wait_timeout: i64,
    #[serde(default)]
    pub client_label: Option<String>,
    #[serde(default = "default_storage_name")]
    pub storage: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ssl: Option<ClientSsl>,
}

impl ClientStorage {
    fn default_wait_timeout() -> i64 {
        30
    }
}

/// The legacy BerkeleyDB `<fullstorage>` / `<minimalstorage>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BdbStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub envdir: String,
    #[serde(default = "BdbStorage::default_interval")]
    pub interval: i64,
    #[serde(default)]
    pub kbyte: i64,
    #[serde(default)]
    pub min: i64,
    #[serde(default)]
    pub logdir: Option<String>,
    #[serde(default = "BdbStorage::default_cachesize")]
    pub cachesize: i64,
    #[serde(default)]
    pub frequency: i64,
    #[serde(default = "BdbStorage::default_packtime")]
    pub packtime: i64,
    #[serde(default)]
    pub gcpack: i64,
    #[serde(default)]
    pub read_only: bool,
}

impl BdbStorage {
    fn default_interval() -> i64 {
        120
    }
    fn default_cachesize() -> i64 {
        128 << 20
    }
    fn default_packtime() -> i64 {
        4 * 3600
    }
}

/// tempstorage's `<temporarystorage>` (tempstorage 6.0 component.xml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TemporaryStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "TemporaryStorage::default_name")]
    pub name: String,
}

impl TemporaryStorage {
    pub(crate) fn default_name() -> String {
        "Temporary Storage".into()
    }
}

/// zc.zlibstorage's `<zlibstorage>` and `<serverzlibstorage>`
/// (zc.zlibstorage 1.2.0 component.xml): a compressing wrapper of `base`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ZlibStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    pub base: Box<Storage>,
    #[serde(default)]
    pub compress: Option<bool>,
}

/// RelStorage's `<relstorage>` (RelStorage 4.3.0 component.xml). Key names
/// with `_` are RelStorage's own spelling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// The database adapter; RelStorage's schema does not require one.
    #[serde(default)]
    pub adapter: Option<RelStorageAdapter>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub blob_dir: Option<String>,
    #[serde(default)]
    pub shared_blob_dir: bool,
    #[serde(default)]
    pub blob_cache_size: Option<i64>,
    #[serde(default)]
    pub blob_cache_size_check: Option<i64>,
    #[serde(default)]
    pub blob_cache_size_check_external: bool,
    #[serde(default)]
    pub blob_chunk_size: Option<i64>,
    #[serde(default = "yes")]
    pub keep_history: bool,
    #[serde(default)]
    pub replica_conf: Option<String>,
    #[serde(default)]
    pub ro_replica_conf: Option<String>,
    #[serde(default = "RelStorage::default_replica_timeout")]
    pub replica_timeout: f64,
    #[serde(default)]
    pub revert_when_stale: bool,
    #[serde(default)]
    pub poll_interval: Option<f64>,
    #[serde(default = "yes")]
    pub pack_gc: bool,
    #[serde(default)]
    pub pack_prepack_only: bool,
    #[serde(default)]
    pub pack_skip_prepack: bool,
    #[serde(default)]
    pub pack_batch_timeout: Option<f64>,
    #[serde(default)]
    pub pack_commit_busy_delay: Option<f64>,
    #[serde(default)]
    pub cache_servers: Option<String>,
    #[serde(default)]
    pub cache_module_name: Option<String>,
    #[serde(default)]
    pub cache_prefix: Option<String>,
    #[serde(default)]
    pub cache_local_mb: Option<i64>,
    #[serde(default)]
    pub cache_local_storage: Option<String>,
    #[serde(default)]
    pub cache_local_dir: Option<String>,
    #[serde(default)]
    pub cache_local_dir_count: Option<i64>,
    #[serde(default)]
    pub cache_local_dir_read_count: Option<i64>,
    #[serde(default)]
    pub cache_local_dir_compress: Option<bool>,
    #[serde(default)]
    pub cache_local_dir_write_max_size: Option<i64>,
    #[serde(default)]
    pub cache_local_object_max: Option<i64>,
    #[serde(default)]
    pub cache_local_compression: Option<String>,
    #[serde(default)]
    pub cache_delta_size_limit: Option<i64>,
    #[serde(default)]
    pub commit_lock_timeout: Option<i64>,
    #[serde(default)]
    pub commit_lock_id: Option<i64>,
    #[serde(default = "yes")]
    pub create_schema: bool,
}

impl RelStorage {
    pub(crate) fn default_replica_timeout() -> f64 {
        600.0
    }
}

fn auto() -> String {
    "auto".into()
}

/// The database adapter of a `<relstorage>` (RelStorage 4.3.0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RelStorageAdapter {
    Postgresql(PostgresqlAdapter),
    Mysql(MysqlAdapter),
    Oracle(OracleAdapter),
    Sqlite3(Sqlite3Adapter),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PostgresqlAdapter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "auto")]
    pub driver: String,
    #[serde(default)]
    pub dsn: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OracleAdapter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "auto")]
    pub driver: String,
    pub user: String,
    pub password: String,
    pub dsn: String,
}

/// `<mysql>`: its keys are MySQLdb's connection arguments, spelled so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MysqlAdapter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "auto")]
    pub driver: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub passwd: Option<String>,
    #[serde(default)]
    pub db: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub unix_socket: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<i64>,
    #[serde(default)]
    pub compress: Option<bool>,
    #[serde(default)]
    pub named_pipe: Option<bool>,
    #[serde(default)]
    pub read_default_file: Option<String>,
    #[serde(default)]
    pub read_default_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Sqlite3Adapter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default = "auto")]
    pub driver: String,
    pub data_dir: String,
    #[serde(default)]
    pub gevent_yield_interval: Option<i64>,
    #[serde(default)]
    pub pragmas: Option<SqlitePragmas>,
}

/// `<pragmas>` inside `<sqlite3>`: a few known pragmas, typed, and any
/// other key as text (`pragmas`, names lower-cased, every value given).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SqlitePragmas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default)]
    pub page_size: Option<i64>,
    #[serde(default)]
    pub mmap_size: Option<i64>,
    #[serde(default)]
    pub max_page_count: Option<i64>,
    #[serde(default)]
    pub threads: Option<i64>,
    #[serde(default)]
    pub cache_size: Option<i64>,
    #[serde(default)]
    pub wal_autocheckpoint: Option<i64>,
    #[serde(default)]
    pub soft_heap_limit: Option<i64>,
    #[serde(default)]
    pub pragmas: IndexMap<String, Vec<String>>,
}

/// Which section type a database came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatabaseType {
    #[default]
    #[serde(rename = "zodb")]
    Zodb,
    /// Zope's `<zodb_db>`, which adds mount points.
    #[serde(rename = "zodb_db")]
    ZodbDb,
}

/// `<zodb>` / `<zodb_db>`: a database over one storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Database {
    #[serde(rename = "type", default)]
    pub db_type: DatabaseType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default)]
    pub storage: Option<Storage>,
    #[serde(default = "Database::default_cache_size")]
    pub cache_size: i64,
    #[serde(default)]
    pub cache_size_bytes: i64,
    #[serde(default = "Database::default_large_record_size")]
    pub large_record_size: i64,
    #[serde(default = "Database::default_pool_size")]
    pub pool_size: i64,
    #[serde(default)]
    pub pool_timeout: Option<i64>,
    #[serde(default = "Database::default_historical_pool_size")]
    pub historical_pool_size: i64,
    #[serde(default = "Database::default_historical_cache_size")]
    pub historical_cache_size: i64,
    #[serde(default)]
    pub historical_cache_size_bytes: i64,
    #[serde(default = "Database::default_historical_timeout")]
    pub historical_timeout: i64,
    #[serde(default)]
    pub database_name: Option<String>,
    #[serde(default)]
    pub allow_implicit_cross_references: Option<bool>,
    #[serde(default)]
    pub class_factory: Option<String>,
    /// Zope `<zodb_db>` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_class: Option<String>,
}

impl Database {
    fn default_cache_size() -> i64 {
        5000
    }
    fn default_large_record_size() -> i64 {
        16 << 20
    }
    fn default_pool_size() -> i64 {
        7
    }
    fn default_historical_pool_size() -> i64 {
        3
    }
    fn default_historical_cache_size() -> i64 {
        1000
    }
    fn default_historical_timeout() -> i64 {
        300
    }
}
