//! `after` words that are network addresses: `after HOST:PORT` holds a
//! node back until that address accepts TCP connections (a server run by
//! another supervisor, on another host or in another container). A word
//! naming a program of the site is always that program.

use super::datatypes::{DefaultHost, inet_address};

/// A remote `after` address: where to connect, and the word as written
/// (what status shows in `waiting for ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    pub text: String,
}

/// What an `after` word that names no program is: `None` for a plain
/// name (the caller reports an unknown program), else the address or why
/// it is not one. A word is an address when it has a colon: program names
/// seldom do, and `host:port` is how ZEO and Compose write addresses.
pub fn remote(word: &str) -> Option<Result<Remote, String>> {
    if !word.contains(':') {
        return None;
    }
    let parsed = inet_address(word, DefaultHost::Any)
        .map_err(|e| format!("after {word}: {e}"))
        .and_then(|(host, port)| match (host.is_empty(), port) {
            (true, _) => Err(format!("after {word}: an address needs a host (HOST:PORT)")),
            (false, None | Some(0)) => Err(format!(
                "after {word}: an address needs a port from 1 to 65535 (HOST:PORT)"
            )),
            (false, Some(port)) => Ok(Remote {
                host,
                port,
                text: word.to_string(),
            }),
        });
    Some(parsed)
}

/// What is wrong with `word` in `after`, when it names no program: a bad
/// address, or no address at all; `None` for a good `HOST:PORT`.
pub fn problem(word: &str) -> Option<String> {
    match remote(word) {
        Some(Ok(_)) => None,
        Some(Err(why)) => Some(why),
        None => Some(format!(
            "comes after {}, which is not a program here",
            crate::pyrepr::repr_str(word)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_a_colon_are_addresses() {
        assert_eq!(remote("zeo"), None);
        let r = remote("zeo:8100").unwrap().unwrap();
        assert_eq!((r.host.as_str(), r.port), ("zeo", 8100));
        let r = remote("[::1]:8100").unwrap().unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 8100));
        assert!(remote(":8100").unwrap().is_err());
        assert!(remote("zeo:").unwrap().is_err());
        assert!(remote("zeo:0").unwrap().is_err());
        assert!(remote("zeo:99999").unwrap().is_err());
        assert!(remote("zeo:http").unwrap().is_err());
    }
}
