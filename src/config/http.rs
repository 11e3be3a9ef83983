//! `<http-server>` in `<runner>` (an `http-server` table in the runner's
//! TOML table): zdrun's status page. No section, no listener.
//!
//! `address` is `HOST:PORT` (an IP address or `localhost`: zdrun resolves
//! no names), a port alone (the loopback address: the page is not exposed
//! by accident), or an absolute or relative path (a Unix socket, for a
//! reverse proxy). `username` and `password` come together; the password
//! is only ever written hashed, as `{SHA256}` and the hex digest of the
//! password: a plain one is refused, so no file or `show` holds it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize};

use super::datatypes as dt;
use super::reader::{Occurs, Reader, string};
use crate::zconfig::RawSection;

/// The keys of `<http-server>`.
pub(crate) const HTTP_KEYS: &[(&str, Occurs)] = &[
    ("address", Occurs::Once),
    ("username", Occurs::Once),
    ("password", Occurs::Once),
];

/// The scheme prefix of a hashed password.
pub const SHA256_PREFIX: &str = "{SHA256}";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpServer {
    /// As written (checked when loaded).
    #[serde(deserialize_with = "toml_address")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `{SHA256}` and 64 hex digits (lower case once loaded).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "toml_password"
    )]
    pub password: Option<String>,
    /// Where the section starts (`FILE:LINE`), for messages.
    #[serde(skip)]
    pub source: String,
}

/// Where the page listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// As written; made absolute by the settings.
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `address`, checked.
pub fn address(s: &str) -> dt::Conv<Listen> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the address is empty".into());
    }
    if s.contains('/') {
        return Ok(Listen::Unix(s.into()));
    }
    let (host, port) = dt::inet_address(s, dt::DefaultHost::Loopback)?;
    let Some(port) = port else {
        return Err(format!(
            "needs a port, or a path for a Unix socket: {}",
            crate::pyrepr::repr_str(s)
        ));
    };
    let ip = match host.as_str() {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| {
            format!(
                "the host must be an IP address or localhost, not {}",
                crate::pyrepr::repr_str(h)
            )
        })?,
    };
    Ok(Listen::Tcp(SocketAddr::new(ip, port)))
}

/// `password`: only `{SHA256}` and 64 hex digits; given in lower case.
pub fn password(s: &str) -> dt::Conv<String> {
    let s = s.trim();
    let hex = s
        .get(..SHA256_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(SHA256_PREFIX))
        .map(|_| &s[SHA256_PREFIX.len()..]);
    match hex {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("{SHA256_PREFIX}{}", h.to_ascii_lowercase()))
        }
        Some(_) => Err(format!("{SHA256_PREFIX} must be followed by 64 hex digits")),
        None => Err(format!(
            "only a hashed password is accepted: {SHA256_PREFIX} and the hex SHA-256 of \
             the password (`zdctl http-password` makes one)"
        )),
    }
}

/// The hash to write for `plain`.
pub fn hash_password(plain: &str) -> String {
    use sha2::Digest;
    format!(
        "{SHA256_PREFIX}{}",
        hex(&sha2::Sha256::digest(plain.as_bytes()))
    )
}

/// Lower-case hex, as a `{SHA256}` password is written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Credentials as zdrun checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub sha256: [u8; 32],
}

impl HttpServer {
    /// Everything `check` must refuse across keys.
    pub fn problem(&self) -> Option<String> {
        match (&self.username, &self.password) {
            (Some(_), None) => Some("<http-server> has a username but no password".into()),
            (None, Some(_)) => Some("<http-server> has a password but no username".into()),
            _ => None,
        }
    }

    pub fn listen(&self) -> Result<Listen, String> {
        address(&self.address)
    }

    pub fn credentials(&self) -> Option<Credentials> {
        let hash = password(self.password.as_deref()?).ok()?;
        let digits = &hash.as_bytes()[SHA256_PREFIX.len()..];
        let mut sha256 = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            sha256[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Credentials {
            username: self.username.clone()?,
            sha256,
        })
    }

    /// The warning for a page that anyone who reaches it can read: a TCP
    /// address other than loopback, without credentials.
    pub fn exposure_warning(&self) -> Option<String> {
        if self.username.is_some() {
            return None;
        }
        match self.listen() {
            Ok(Listen::Tcp(a)) if !a.ip().is_loopback() => Some(format!(
                "{}the status page at {a} is open to anyone who can reach it: \
                 no username and password",
                if self.source.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", self.source)
                }
            )),
            _ => None,
        }
    }
}

fn toml_address<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    address(&s).map_err(serde::de::Error::custom)?;
    Ok(s)
}

fn toml_password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    password(&s).map(Some).map_err(serde::de::Error::custom)
}

/// `<http-server>` as ZConfig writes it.
pub(super) fn read(
    s: &RawSection,
    values: &[crate::zconfig::RawValue],
    e: &mut super::reader::Errors,
) -> HttpServer {
    let r = Reader::new(s, values, HTTP_KEYS, e);
    let server = HttpServer {
        address: r.req("address", |v| address(v).map(|_| v.trim().to_string()), e),
        username: r.opt("username", string, e),
        password: r.opt("password", password, e),
        source: e.describe(s.start),
    };
    // A password given in a refused form was reported already: "no
    // password" on top of that would only mislead.
    let refused = |key: &str, v: &Option<String>| v.is_none() && r.has(key);
    if !refused("password", &server.password)
        && !refused("username", &server.username)
        && let Some(why) = server.problem()
    {
        e.push(s.end, super::error::ErrorKind::Invalid(why), s);
    }
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            address("9001"),
            Ok(Listen::Tcp("127.0.0.1:9001".parse().unwrap()))
        );
        assert_eq!(
            address("0.0.0.0:80"),
            Ok(Listen::Tcp("0.0.0.0:80".parse().unwrap()))
        );
        assert_eq!(
            address("[::1]:9001"),
            Ok(Listen::Tcp("[::1]:9001".parse().unwrap()))
        );
        assert_eq!(
            address("var/page.sock"),
            Ok(Listen::Unix("var/page.sock".into()))
        );
        for bad in ["", "example.com:80", "localhost", "1:99999"] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        let h = hash_password("secret");
        assert_eq!(
            h,
            "{SHA256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert_eq!(
            password(&h.to_uppercase().replace("{SHA256}", "{sha256}")),
            Ok(h.clone())
        );
        assert!(password("secret").is_err());
        assert!(password("{SHA256}abc").is_err());
        let s = HttpServer {
            address: "9001".into(),
            username: Some("admin".into()),
            password: Some(h),
            source: String::new(),
        };
        assert_eq!(s.credentials().unwrap().sha256[0], 0x2b);
        assert!(s.problem().is_none());
    }

    #[test]
    fn exposure() {
        let mut s = HttpServer {
            address: "0.0.0.0:9001".into(),
            username: None,
            password: None,
            source: "f.conf:3".into(),
        };
        assert!(s.exposure_warning().unwrap().starts_with("f.conf:3: "));
        s.address = "9001".into();
        assert!(s.exposure_warning().is_none());
    }
}
