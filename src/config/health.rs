//! `<health>` in a `<program>` (a `health` table in TOML): how zdrun checks
//! that a node's program still works, and what it does when it does not.
//!
//! Exactly one of `url` (an HTTP GET), `address` (a TCP connect) or
//! `command` (its exit status decides). Defaults: `status 200`,
//! `interval 60`, `timeout 10`, `grace 60`, `failures 3`,
//! `action restart`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::datatypes as dt;
use super::reader::{Occurs, Reader, string};
use crate::zconfig::RawSection;

/// The keys of `<health>`.
pub(crate) const HEALTH_KEYS: &[(&str, Occurs)] = &[
    ("url", Occurs::Once),
    ("address", Occurs::Once),
    ("command", Occurs::Once),
    ("status", Occurs::Once),
    ("body", Occurs::Once),
    ("interval", Occurs::Once),
    ("timeout", Occurs::Once),
    ("grace", Occurs::Once),
    ("failures", Occurs::Once),
    ("action", Occurs::Once),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Health {
    /// `http://HOST:PORT/PATH`: a GET whose answer must have `status`
    /// (and contain `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `HOST:PORT`: a TCP connect must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A command that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default = "Health::default_status")]
    pub status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Seconds between checks.
    #[serde(default = "Health::default_interval")]
    pub interval: i64,
    /// Seconds a check may take.
    #[serde(default = "Health::default_timeout")]
    pub timeout: i64,
    /// Seconds after a start during which failures do not count (unless
    /// the check has passed already).
    #[serde(default = "Health::default_grace")]
    pub grace: i64,
    /// Consecutive failures before the action.
    #[serde(default = "Health::default_failures")]
    pub failures: i64,
    /// `restart` or `none` (only report).
    #[serde(default = "Health::default_action")]
    pub action: String,
    /// Where the section starts (`FILE:LINE`), for errors.
    #[serde(skip)]
    pub source: String,
}

/// A node's check as zdrun runs it: the settings and their target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub spec: Health,
    pub target: Target,
}

impl Eq for Health {}

/// What a check does, resolved and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Http {
        addr: SocketAddr,
        /// `Host:` header value as written in the URL.
        host: String,
        path: String,
    },
    Tcp(SocketAddr),
    Command(Vec<String>),
}

impl Health {
    fn default_status() -> i64 {
        200
    }
    fn default_interval() -> i64 {
        60
    }
    fn default_timeout() -> i64 {
        10
    }
    fn default_grace() -> i64 {
        60
    }
    fn default_failures() -> i64 {
        3
    }
    fn default_action() -> String {
        "restart".into()
    }

    /// Whether the check restarts the program (else it only reports).
    pub fn restarts(&self) -> bool {
        self.action == "restart"
    }

    /// Everything `check` must refuse, as one message; the target
    /// otherwise.
    pub fn validate(&self) -> Result<Target, String> {
        let given = [
            self.url.is_some(),
            self.address.is_some(),
            self.command.is_some(),
        ];
        let target = match given {
            [true, false, false] => http_target(self.url.as_deref().unwrap_or_default())?,
            [false, true, false] => Target::Tcp(socket_addr(
                self.address.as_deref().unwrap_or_default(),
                "address",
            )?),
            [false, false, true] => match &self.command {
                Some(words) if !words.is_empty() => Target::Command(words.clone()),
                _ => return Err("<health> command is empty".into()),
            },
            _ => {
                return Err("<health> needs exactly one of url, address or command".into());
            }
        };
        if self.body.is_some() && self.url.is_none() {
            return Err("<health> body is only checked with a url".into());
        }
        if !(100..=599).contains(&self.status) {
            return Err(format!(
                "<health> status must be an HTTP status (100-599), not {}",
                self.status
            ));
        }
        for (key, v) in [
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("failures", self.failures),
        ] {
            if v < 1 {
                return Err(format!("<health> {key} must be 1 or more, not {v}"));
            }
        }
        if self.grace < 0 {
            return Err(format!(
                "<health> grace must be 0 or more, not {}",
                self.grace
            ));
        }
        if !matches!(self.action.as_str(), "restart" | "none") {
            return Err(format!(
                "<health> action must be restart or none, not {}",
                crate::pyrepr::repr_str(&self.action)
            ));
        }
        Ok(target)
    }
}

/// `http://HOST[:PORT][/PATH]`, HOST an IP address or `localhost`: checks
/// are to the machine's own servers, and zdrun resolves no names in its
/// loop.
fn http_target(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("<health> url {}: {why}", crate::pyrepr::repr_str(url));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are checked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the path has spaces or control characters"));
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addr = socket_addr(&with_port, "url").map_err(|e| bad(&e))?;
    Ok(Target::Http {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// `HOST:PORT` with an IP address or `localhost` (an empty host is the
/// loopback address).
fn socket_addr(s: &str, key: &str) -> Result<SocketAddr, String> {
    let (host, port) = dt::inet_address(s, dt::DefaultHost::Loopback)?;
    let Some(port) = port else {
        return Err(format!(
            "<health> {key} needs a port: {}",
            crate::pyrepr::repr_str(s)
        ));
    };
    let ip = match host.as_str() {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| {
            format!(
                "<health> {key} host must be an IP address or localhost, not {}",
                crate::pyrepr::repr_str(h)
            )
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A check as `show` prints it: the keys with their values in effect (a
/// command's program found).
pub fn json(c: &Check) -> serde_json::Value {
    let mut v = serde_json::to_value(&c.spec).unwrap_or_default();
    if let (Target::Command(words), Some(map)) = (&c.target, v.as_object_mut()) {
        map.insert("command".into(), serde_json::json!(words));
    }
    v
}

/// `<health>` as ZConfig writes it.
pub(super) fn read(
    s: &RawSection,
    values: &[crate::zconfig::RawValue],
    e: &mut super::reader::Errors,
) -> Health {
    let r = Reader::new(s, values, HEALTH_KEYS, e);
    let words = |v: &str| Ok(dt::string_list(v));
    Health {
        url: r.opt("url", string, e),
        address: r.opt("address", string, e),
        command: r.opt("command", words, e),
        status: r.or("status", "200", dt::integer, e),
        body: r.opt("body", string, e),
        interval: r.or("interval", "60", dt::time_interval, e),
        timeout: r.or("timeout", "10", dt::time_interval, e),
        grace: r.or("grace", "60", dt::time_interval, e),
        failures: r.or("failures", "3", dt::integer, e),
        action: r.or("action", "restart", |v| Ok(v.to_lowercase()), e),
        source: e.describe(s.start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Health)) -> Health {
        let mut h: Health = toml::from_str("").expect("defaults");
        f(&mut h);
        h
    }

    #[test]
    fn targets() {
        let h = with(|h| h.url = Some("http://localhost:8080/ok?x=1".into()));
        assert_eq!(
            h.validate(),
            Ok(Target::Http {
                addr: "127.0.0.1:8080".parse().unwrap(),
                host: "localhost:8080".into(),
                path: "/ok?x=1".into()
            })
        );
        let h = with(|h| h.url = Some("http://[::1]".into()));
        assert!(matches!(h.validate(), Ok(Target::Http { addr, .. }) if addr.port() == 80));
        let h = with(|h| h.address = Some("127.0.0.1:8100".into()));
        assert_eq!(
            h.validate(),
            Ok(Target::Tcp("127.0.0.1:8100".parse().unwrap()))
        );
        for bad in [
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1:x/",
        ] {
            let h = with(|h| h.url = Some(bad.into()));
            assert!(h.validate().is_err(), "{bad}");
        }
        assert!(with(|_| ()).validate().is_err());
        let h = with(|h| {
            h.address = Some("8100".into());
            h.command = Some(vec!["true".into()]);
        });
        assert!(h.validate().is_err());
        let h = with(|h| {
            h.command = Some(vec!["true".into()]);
            h.action = "reboot".into();
        });
        assert!(h.validate().is_err());
    }
}
