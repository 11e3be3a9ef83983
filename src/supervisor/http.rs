//! The status page (`<http-server>`), served from the event loop: the
//! listener and its connections are polled with everything else, and
//! nothing is armed while no connection is open, so an idle page costs
//! no wake-ups.
//!
//! Paths: `/` (HTML), `/status.json` (what `zdctl status --json` prints),
//! `/metrics` (what `zdctl metrics` prints), all GET or HEAD; and, only
//! with a username and password configured, `POST /control` with a node,
//! an action (start, stop or restart: nothing else, ever) and the page's
//! CSRF token. With credentials, every path needs them (HTTP Basic, realm
//! "zdrun"). Unlike supervisord's page, no request ever runs a command,
//! and a page without credentials cannot control anything.

use sha2::{Digest, Sha256};

use super::http_conn::{self, Accepted, Conn, Listener, Parsed, Request, Response};
use super::*;
use crate::config::http::{Credentials, HttpServer as Spec, Listen};

/// How long accepting stops when no descriptor is left.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// Connections taken in one turn of the loop, at most.
const ACCEPTS_PER_TURN: usize = 256;
/// Turned-away clients are logged at most this often.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) struct HttpServer {
    /// The section in effect (a reload compares with it).
    spec: Spec,
    listen: Listen,
    listener: Listener,
    credentials: Option<Credentials>,
    /// Carried by the page's forms; a POST without it is refused (another
    /// site cannot make the browser send it).
    csrf: String,
    /// The machine's name, for the page's title.
    host: String,
    conns: Vec<Conn>,
    /// Accepting stopped until then (out of descriptors).
    paused_until: Option<Instant>,
    turned_away: u64,
    reported: Option<Instant>,
}

fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the status page's token: {e}"))?;
    Ok(crate::config::http::hex(&bytes))
}

/// A Host header naming this machine's loopback: `localhost` (or a name
/// under it), or a loopback address, with or without a port.
fn loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    let lower = name.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `application/x-www-form-urlencoded` pairs.
fn form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

impl HttpServer {
    /// Bind the section's address.
    pub(super) fn new(spec: &Spec) -> Result<HttpServer, String> {
        let at = |e: String| match spec.source.as_str() {
            "" => e,
            source => format!("{source}: {e}"),
        };
        let listen = spec.listen().map_err(at)?;
        let listener = http_conn::bind(&listen).map_err(at)?;
        Ok(HttpServer {
            spec: spec.clone(),
            listen,
            listener,
            credentials: spec.credentials(),
            csrf: random_token()?,
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            conns: Vec::new(),
            paused_until: None,
            turned_away: 0,
            reported: None,
        })
    }

    /// Add the listener (unless paused) and the connections to a poll
    /// list; `ready` later gets the same order.
    pub(super) fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        if self.paused_until.is_none() {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        }
        for c in &self.conns {
            let mut flags = PollFlags::empty();
            if c.wants_read() {
                flags |= PollFlags::POLLIN;
            }
            if c.wants_write() {
                flags |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.stream.as_fd(), flags));
        }
    }

    /// The next deadline: none while no connection is open.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().map(|c| c.deadline).min();
        [conns, self.paused_until].into_iter().flatten().min()
    }

    /// Remove a Unix socket's file (zdrun is exiting, or moved the page).
    pub(super) fn close(&self) {
        self.listener.remove_file();
    }

    /// A loopback page without credentials answers only requests made to
    /// a loopback name: a web page the admin visits could otherwise point
    /// a name of its own at 127.0.0.1 and read the site's state (DNS
    /// rebinding). A reverse proxy passes its upstream's address as Host
    /// unless told otherwise; a Unix socket is not checked.
    fn host_allowed(&self, req: &Request) -> bool {
        let Listen::Tcp(addr) = &self.listen else {
            return true;
        };
        if self.credentials.is_some() || !addr.ip().is_loopback() {
            return true;
        }
        // HTTP/1.0 may leave Host out; no browser does.
        req.header("host").is_none_or(loopback_host)
    }

    /// Do the request's credentials match?
    fn authorized(&self, req: &Request) -> bool {
        let Some(creds) = &self.credentials else {
            return true;
        };
        let Some(given) = req
            .header("authorization")
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b| base64_decode(b.trim()))
        else {
            return false;
        };
        let Some(colon) = given.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, password) = (&given[..colon], &given[colon + 1..]);
        // Both compared, in full and as hashes: neither the time nor the
        // order says which was wrong, or how long the name is.
        let user_ok = same(
            &Sha256::digest(user),
            &Sha256::digest(creds.username.as_bytes()),
        );
        let password_ok = same(&Sha256::digest(password), &creds.sha256);
        user_ok & password_ok
    }
}

impl Supervisor {
    /// Log where the page is at zdrun's start, warning when anyone who
    /// reaches it may read it.
    pub(super) fn announce_http(&mut self) {
        let Some(server) = &self.http else {
            return;
        };
        if let Some(w) = server.spec.exposure_warning() {
            self.log.warning(&w);
        }
        self.log.info(&format!(
            "status page on {}{}",
            server.listen,
            if server.credentials.is_some() {
                " (with a username and password; control allowed)"
            } else {
                ""
            }
        ));
    }

    /// A reload changed (or removed, or added) `<http-server>`: credentials
    /// are taken at once; a new address is bound before the old one is let
    /// go, and if it cannot be, the old page stays and the error is logged.
    pub(super) fn reload_http(&mut self, new: Option<&Spec>) {
        if self.http.as_ref().map(|h| &h.spec) == new {
            return;
        }
        let Some(new) = new else {
            if let Some(old) = self.http.take() {
                old.close();
                self.log
                    .info("status page closed (removed from the configuration)");
            }
            return;
        };
        if let Some(w) = new.exposure_warning() {
            self.log.warning(&w);
        }
        if let Some(h) = &mut self.http
            && new.listen().is_ok_and(|l| l == h.listen)
        {
            h.spec = new.clone();
            h.credentials = new.credentials();
            // Pages shown with the old credentials cannot post any more.
            if let Ok(t) = random_token() {
                h.csrf = t;
            }
            self.log.info("status page credentials changed");
            return;
        }
        let bound = match HttpServer::new(new) {
            Ok(server) => Ok(server),
            Err(e) => match self.http.take() {
                None => Err(e),
                Some(old) => {
                    // The old listener may hold the port (127.0.0.1 and
                    // 0.0.0.0 share it): let it go and try again, and take
                    // it back if that fails too.
                    let spec = old.spec.clone();
                    old.close();
                    drop(old);
                    HttpServer::new(new).map_err(|_| {
                        self.http = HttpServer::new(&spec).ok();
                        e
                    })
                }
            },
        };
        match bound {
            Ok(mut server) => {
                if let Some(old) = self.http.take() {
                    old.close();
                    // Requests under way are answered on their sockets.
                    server.conns = old.conns;
                }
                self.http = Some(server);
                self.log
                    .info(&format!("status page now on {}", new.address));
            }
            Err(e) => self.log.error(&format!(
                "{e}; the status page {}",
                if self.http.is_some() {
                    "stays where it was"
                } else {
                    "is off"
                }
            )),
        }
    }

    /// One turn: `ready` in the order of [`HttpServer::poll_fds`].
    pub(super) fn http_turn(&mut self, ready: &[bool]) {
        let Some(mut h) = self.http.take() else {
            return;
        };
        let now = Instant::now();
        let mut ready = ready.iter().copied();
        let listener_ready = if h.paused_until.is_none() {
            ready.next().unwrap_or(false)
        } else {
            if h.paused_until.is_some_and(|t| t <= now) {
                h.paused_until = None;
            }
            false
        };
        let mut conns = std::mem::take(&mut h.conns);
        for (c, r) in conns.iter_mut().zip(ready) {
            if r {
                self.http_service(&h, c, now);
            }
        }
        for c in &mut conns {
            if c.deadline <= now && !c.done() {
                c.expire();
            }
        }
        conns.retain(|c| !c.done());
        h.conns = conns;
        if listener_ready {
            self.http_accept(&mut h, now);
        }
        self.http = Some(h);
    }

    fn http_accept(&mut self, h: &mut HttpServer, now: Instant) {
        // A bounded batch: a flood of connections waits for the next turn
        // rather than holding the loop.
        for _ in 0..ACCEPTS_PER_TURN {
            match h.listener.accept() {
                Accepted::None => break,
                Accepted::OutOfDescriptors => {
                    h.paused_until = Some(now + PAUSE);
                    break;
                }
                Accepted::Stream(s) if h.conns.len() >= http_conn::MAX_CONNECTIONS => {
                    http_conn::turn_away(s);
                    h.turned_away += 1;
                }
                Accepted::Stream(s) => {
                    let mut c = Conn::new(s, now);
                    // Its request is often in already.
                    self.http_service(h, &mut c, now);
                    if !c.done() {
                        h.conns.push(c);
                    }
                }
            }
        }
        if h.turned_away > 0 && h.reported.is_none_or(|t| now >= t + REPORT_EVERY) {
            self.log.warning(&format!(
                "status page: turned away {} connection{} (more than {} open)",
                h.turned_away,
                if h.turned_away == 1 { "" } else { "s" },
                http_conn::MAX_CONNECTIONS
            ));
            h.turned_away = 0;
            h.reported = Some(now);
        }
    }

    fn http_service(&mut self, h: &HttpServer, c: &mut Conn, now: Instant) {
        if c.wants_write() {
            c.write();
        }
        let (resp, head) = match c.read() {
            Parsed::Incomplete => return,
            Parsed::Refused(status) => (Response::plain(status), false),
            Parsed::Request(req) => (self.http_respond(h, &req), req.method == "HEAD"),
        };
        c.answer(resp.bytes(head), now);
    }

    fn http_respond(&mut self, h: &HttpServer, req: &Request) -> Response {
        if !h.host_allowed(req) {
            return Response::plain(421);
        }
        if !h.authorized(req) {
            return Response::plain(401).with("WWW-Authenticate", "Basic realm=\"zdrun\"");
        }
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        match req.path.as_str() {
            "/" | "/status.json" | "/metrics" if !get => {
                Response::plain(405).with("Allow", "GET, HEAD")
            }
            "/" => {
                let doc = self.status_document();
                let csrf = h.credentials.as_ref().map(|_| h.csrf.as_str());
                let page = super::http_page::render(&doc, &h.host, csrf);
                Response::new(200, "text/html; charset=utf-8", page).with(
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                     frame-ancestors 'none'; base-uri 'none'",
                )
            }
            "/status.json" => {
                let mut text = self.status_document().to_string();
                text.push('\n');
                Response::new(200, "application/json", text)
            }
            "/metrics" => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::report::exposition(Some(&self.status_document())),
            ),
            // Without credentials there is no control, whatever is asked.
            "/control" if h.credentials.is_none() => Response::plain(403),
            "/control" if req.method != "POST" => Response::plain(405).with("Allow", "POST"),
            "/control" => self.http_control(h, req),
            _ => Response::plain(404),
        }
    }

    /// The document `zdctl status --json` prints.
    fn status_document(&self) -> serde_json::Value {
        let info = serde_json::from_str(&self.info_json()).unwrap_or_default();
        crate::report::status_document(info, None)
    }

    /// `POST /control`: start, stop or restart one node.
    fn http_control(&mut self, h: &HttpServer, req: &Request) -> Response {
        if h.credentials.is_none() {
            return Response::plain(403);
        }
        let fields = form(&req.body);
        let field = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        if !field("csrf").is_some_and(|t| same(t.as_bytes(), h.csrf.as_bytes())) {
            return Response::plain(403);
        }
        let action = field("action").unwrap_or_default();
        if !matches!(action, "start" | "stop" | "restart") {
            return Response::plain(400);
        }
        let node = field("node").unwrap_or_default().to_string();
        // A zdaemon runner config's one program is "program" on the page.
        let target = if self.s.is_site() {
            if self.index(&node).is_none() {
                return Response::plain(404);
            }
            Some(&node)
        } else if node == "program" {
            None
        } else {
            return Response::plain(404);
        };
        let reply = match action {
            "start" => self.cmd_start(target),
            "stop" => self.cmd_stop(target),
            _ => self.cmd_restart(target),
        };
        self.log.info(&format!(
            "status page: {action} {node}: {}",
            reply.trim_end()
        ));
        Response::new(303, "text/plain; charset=utf-8", "See /\n").with("Location", "/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:9001",
            "127.0.0.1:9001",
            "127.1.2.3",
            "[::1]:80",
            "a.localhost",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:9001",
            "10.0.0.1",
            "localhost.evil.example",
            "[::2]:80",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(base64_decode("YWRtaW46c2VjcmV0").unwrap(), b"admin:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("a*b").is_none());
        assert_eq!(
            form(b"node=web+1&csrf=a%2Fb&action=restart&x"),
            vec![
                ("node".into(), "web 1".into()),
                ("csrf".into(), "a/b".into()),
                ("action".into(), "restart".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(form(b"a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }

    proptest::proptest! {
        #[test]
        fn any_form_or_credentials_decode_without_panic(text in "\\PC{0,60}") {
            let _ = form(text.as_bytes());
            let _ = base64_decode(&text);
        }
    }
}
