//! zdrun's status page (`<http-server>`), through the real binaries and
//! raw HTTP over TCP or a Unix socket: every path, the refusals (auth,
//! CSRF, oversized or malformed requests), slow and many clients, control
//! from the page, and that an idle listener costs zdrun no wake-ups.
//! Every daemon is the `Site`'s, killed when the test ends, pass or fail;
//! every wait has a deadline.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::site::*;
use serde_json::Value;

// ------------------------------------------------------------- helpers

/// The hash of "secret", as `zdctl http-password` would print it.
const SECRET_HASH: &str =
    "{SHA256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

/// Write the site's config: a runner with `http` inside `<http-server>`
/// and the `programs` sections.
fn configure(site: &Site, http: &str, programs: &str) {
    let text = format!(
        "<runner>\n  socket-name {}\n  <http-server>\n{http}\n  </http-server>\n</runner>\n{programs}",
        site.sock().display()
    );
    std::fs::write(site.path("zd.conf"), text).expect("write config");
}

const TWO_NODES: &str = "<program web1>\n  program sleep 1000\n</program>\n\
                         <program web2>\n  program sleep 1001\n  after web1\n</program>\n";

/// A site of two nodes with the page on a fresh port, running and ready;
/// `credentials`: admin/secret configured.
fn page_site(credentials: bool) -> (Site, u16) {
    let site = Site::new();
    let port = free_port();
    let creds = if credentials {
        format!("    username admin\n    password {SECRET_HASH}\n")
    } else {
        String::new()
    };
    configure(
        &site,
        &format!("    address 127.0.0.1:{port}\n{creds}"),
        TWO_NODES,
    );
    launch(&site);
    wait_for("both nodes running", || {
        let i = info(&site);
        ["web1", "web2"]
            .iter()
            .all(|n| node(&i, n)["state"] == "running")
    });
    (site, port)
}

/// An answer: status, head (lower-cased names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Answer {
            status,
            head: head.to_lowercase(),
            body: body.to_string(),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
    }
}

/// Send raw bytes to the page; the whole answer (until the server closes).
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the page");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn auth_header(auth: Option<(&str, &str)>) -> String {
    auth.map(|(u, p)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{u}:{p}").as_bytes())
        )
    })
    .unwrap_or_default()
}

fn request(port: u16, method: &str, path: &str, auth: Option<(&str, &str)>, body: &str) -> Answer {
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        auth_header(auth),
        body.len()
    );
    Answer::parse(&raw(port, text.as_bytes()))
}

fn get(port: u16, path: &str, auth: Option<(&str, &str)>) -> Answer {
    request(port, "GET", path, auth, "")
}

const ADMIN: Option<(&str, &str)> = Some(("admin", "secret"));

/// The CSRF token in the page's forms.
fn token(port: u16) -> String {
    let page = get(port, "/", ADMIN).body;
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("the page has a token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end of the token")].to_string()
}

fn control(port: u16, node: &str, action: &str, csrf: &str) -> Answer {
    request(
        port,
        "POST",
        "/control",
        ADMIN,
        &format!("node={node}&csrf={csrf}&action={action}"),
    )
}

fn pid_of(site: &Site, name: &str) -> i64 {
    node(&info(site), name)["pid"].as_i64().unwrap_or(0)
}

// --------------------------------------------------------------- tests

#[test]
fn every_path_serves_what_zdctl_prints() {
    let (site, port) = page_site(false);
    let page = get(port, "/", None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<meta http-equiv=\"refresh\""));
    for name in ["web1", "web2"] {
        assert!(
            page.body.contains(&format!("<tr data-node=\"{name}\">")),
            "{name} row: {}",
            page.body
        );
        let pid = pid_of(&site, name);
        assert!(page.body.contains(&format!("<td class=\"pid\">{pid}</td>")));
    }
    for class in [
        "state",
        "pid",
        "uptime",
        "restarts",
        "last-exit",
        "health",
        "memory",
    ] {
        assert_eq!(
            page.body.matches(&format!("<td class=\"{class}")).count(),
            2,
            "{class} cells"
        );
    }
    // No credentials: nothing to control with, and no way to control.
    assert!(!page.body.contains("<form"));
    for method in ["POST", "GET"] {
        let a = request(port, method, "/control", None, "node=web1&action=stop");
        assert_eq!(a.status, 403, "{method}");
    }

    let json = get(port, "/status.json", None);
    assert_eq!(json.status, 200);
    assert_eq!(
        json.header("content-type").as_deref(),
        Some("application/json")
    );
    let doc: Value = serde_json::from_str(&json.body).expect("status.json is JSON");
    let o = site.zdctl(&["status", "--json"]);
    let zdctl: Value = serde_json::from_slice(&o.stdout).expect("zdctl's JSON");
    assert_eq!(doc["manager"], "running");
    assert_eq!(doc["manager_pid"], zdctl["manager_pid"]);
    for name in ["web1", "web2"] {
        let (a, b) = (node(&doc, name), node(&zdctl, name));
        for key in ["state", "pid", "restarts", "ready", "program", "after"] {
            assert_eq!(a[key], b[key], "{name} {key}");
        }
    }

    let metrics = get(port, "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let printed = stdout(&site.zdctl(&["metrics"]));
    // The same families and the same samples, but for the times.
    let steady = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("zdrun_node_uptime") && !l.contains("memory_bytes{"))
            .map(String::from)
            .collect()
    };
    assert_eq!(steady(&metrics.body), steady(&printed));
    assert!(metrics.body.contains("zdrun_up 1\n"));

    let head = request(port, "HEAD", "/metrics", None, "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(get(port, "/nope", None).status, 404);
    let post = request(port, "POST", "/", None, "");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("get, head"));
}

#[test]
fn credentials_are_required_on_every_path() {
    let (_site, port) = page_site(true);
    for path in ["/", "/status.json", "/metrics", "/nope"] {
        for auth in [None, Some(("admin", "wrong")), Some(("root", "secret"))] {
            let a = get(port, path, auth);
            assert_eq!(a.status, 401, "{path} {auth:?}");
            assert_eq!(
                a.header("www-authenticate").as_deref(),
                Some("basic realm=\"zdrun\"")
            );
        }
    }
    let a = request(port, "POST", "/control", None, "node=web1&action=stop");
    assert_eq!(a.status, 401);
    let malformed = Answer::parse(&raw(
        port,
        b"GET / HTTP/1.1\r\nAuthorization: Basic !!!\r\n\r\n",
    ));
    assert_eq!(malformed.status, 401);
    for path in ["/", "/status.json", "/metrics"] {
        assert_eq!(get(port, path, ADMIN).status, 200, "{path}");
    }
    let page = get(port, "/", ADMIN).body;
    assert_eq!(
        page.matches("<form method=\"post\" action=\"/control\">")
            .count(),
        2
    );
    for action in ["start", "stop", "restart"] {
        assert_eq!(
            page.matches(&format!("<button name=\"action\" value=\"{action}\">"))
                .count(),
            2
        );
    }
    assert!(page.contains("<input type=\"hidden\" name=\"node\" value=\"web2\">"));
}

#[test]
fn a_control_post_restarts_stops_and_starts_a_node() {
    let (site, port) = page_site(true);
    let csrf = token(port);
    let before = pid_of(&site, "web1");
    let a = control(port, "web1", "restart", &csrf);
    assert_eq!(a.status, 303, "{a:?}");
    assert_eq!(a.header("location").as_deref(), Some("/"));
    wait_for("web1 restarted", || {
        let p = pid_of(&site, "web1");
        p != 0 && p != before
    });
    wait_for("web2 running", || pid_of(&site, "web2") != 0);
    assert_eq!(control(port, "web2", "stop", &csrf).status, 303);
    wait_for("web2 stopped", || {
        node(&info(&site), "web2")["state"] == "stopped"
    });
    assert_eq!(control(port, "web2", "start", &csrf).status, 303);
    wait_for("web2 running again", || {
        node(&info(&site), "web2")["state"] == "running"
    });
}

#[test]
fn control_without_the_right_token_node_or_action_is_refused() {
    let (site, port) = page_site(true);
    let csrf = token(port);
    let pid = pid_of(&site, "web1");
    let body = |b: &str| request(port, "POST", "/control", ADMIN, b).status;
    assert_eq!(body("node=web1&action=stop"), 403);
    assert_eq!(body("node=web1&action=stop&csrf=0123"), 403);
    assert_eq!(body(&format!("node=web1&action=stop&csrf={csrf}x")), 403);
    assert_eq!(body(&format!("node=web1&action=kill&csrf={csrf}")), 400);
    assert_eq!(
        body(&format!("node=web1&action=stop%20now&csrf={csrf}")),
        400
    );
    assert_eq!(body(&format!("node=nope&action=stop&csrf={csrf}")), 404);
    assert_eq!(body(&format!("action=stop&csrf={csrf}")), 404);
    assert_eq!(get(port, "/control", ADMIN).status, 405);
    assert_eq!(pid_of(&site, "web1"), pid, "a refused request changed web1");
    assert_eq!(node(&info(&site), "web1")["state"], "running");
}

#[test]
fn oversized_and_malformed_requests_are_refused() {
    let (_site, port) = page_site(false);
    let big_head = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(Answer::parse(&raw(port, big_head.as_bytes())).status, 431);
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    assert_eq!(Answer::parse(&raw(port, many.as_bytes())).status, 431);
    let big_body = format!(
        "POST /control HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n{}",
        "a".repeat(5000)
    );
    assert_eq!(Answer::parse(&raw(port, big_body.as_bytes())).status, 413);
    let chunked = "POST /control HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(Answer::parse(&raw(port, chunked.as_bytes())).status, 501);
    assert_eq!(Answer::parse(&raw(port, b"HELLO\r\n\r\n")).status, 400);
    assert_eq!(
        Answer::parse(&raw(port, b"GET / HTTP/9\r\n\r\n")).status,
        505
    );
    assert_eq!(
        Answer::parse(&raw(port, b"GET / HTTP/1.1\r\n\xff\xfe: x\r\n\r\n")).status,
        400
    );
    // Endless bytes with no end of head: refused, not buffered for ever.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = s.write_all(&vec![b'a'; 20000]);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(Answer::parse(&out).status, 431);
    assert_eq!(get(port, "/metrics", None).status, 200, "still serving");
}

#[test]
fn a_slow_client_does_not_hold_up_others_and_is_closed() {
    let (_site, port) = page_site(false);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .expect("send part");
    let opened = Instant::now();
    // While it dawdles, byte by byte, others are served at once.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(port, "/status.json", None).status, 200);
        assert!(t.elapsed() < Duration::from_secs(2), "served late");
        let _ = slow.write_all(b"X");
    }
    slow.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "closed after {took:?}"
    );
    let a = Answer::parse(&out);
    assert!(a.status == 408 || out.is_empty(), "{a:?}");
}

#[test]
fn two_hundred_concurrent_clients_are_all_answered() {
    let (_site, port) = page_site(true);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_read_timeout(Some(DEADLINE)).expect("timeout");
                barrier.wait();
                let path = ["/", "/status.json", "/metrics"][i % 3];
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
                    auth_header(ADMIN)
                );
                s.write_all(req.as_bytes()).expect("send");
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                Answer::parse(&out).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let (_site, port) = page_site(false);
    let held: Vec<TcpStream> = (0..512)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // The last of them is accepted once zdrun answers this one.
    wait_for("the extra client turned away", || {
        Answer::parse(&raw(port, b"GET / HTTP/1.1\r\n\r\n")).status == 503
    });
    drop(held);
    wait_for("served again", || get(port, "/metrics", None).status == 200);
}

#[test]
fn a_unix_socket_address_serves_the_page() {
    let site = Site::new();
    configure(
        &site,
        "    address run/page.sock",
        "<program solo>\n  program sleep 1000\n</program>\n",
    );
    std::fs::create_dir(site.path("run")).expect("mkdir");
    launch(&site);
    let path = site.path("run/page.sock");
    wait_for("the page's socket", || path.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "the socket's mode");
    let mut s = UnixStream::connect(&path).expect("connect to the page's socket");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(b"GET /status.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let a = Answer::parse(&out);
    assert_eq!(a.status, 200, "{a:?}");
    let doc: Value = serde_json::from_str(&a.body).expect("JSON");
    assert_eq!(node(&doc, "solo")["name"], "solo");
    let manager = site.manager_pid();
    stop_managers(&[manager]);
    assert!(
        !path.exists(),
        "the socket file is removed when zdrun exits"
    );
}

#[test]
fn a_single_program_is_one_row_named_program() {
    let site = Site::new();
    let port = free_port();
    site.config(
        "sleep 1000",
        &format!(
            "  <http-server>\n    address {port}\n    username admin\n    password {SECRET_HASH}\n  </http-server>"
        ),
        "",
    );
    launch(&site);
    wait_for("the program", || site.program_pid() != 0);
    let page = get(port, "/", ADMIN).body;
    assert_eq!(page.matches("<tr data-node=").count(), 1, "{page}");
    assert!(page.contains("<tr data-node=\"program\">"));
    let before = site.program_pid();
    assert_eq!(
        control(port, "program", "restart", &token(port)).status,
        303
    );
    wait_for("the program restarted", || {
        let p = site.program_pid();
        p != 0 && p != before
    });
}

#[test]
fn an_idle_listener_adds_no_wake_ups() {
    let (site, port) = page_site(false);
    assert_eq!(get(port, "/", None).status, 200);
    let manager = site.manager_pid();
    // The connection's end is seen; then nothing is due.
    std::thread::sleep(Duration::from_millis(300));
    let before = wake_ups(manager);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        wake_ups(manager),
        before,
        "zdrun woke up with the listener idle"
    );
}

#[test]
fn a_reload_takes_new_credentials() {
    let (site, port) = page_site(true);
    let new_hash = stdout(&common::run_zdctl(&["http-password", "other"]));
    let new_hash = new_hash.trim();
    assert!(new_hash.starts_with("{SHA256}"), "{new_hash}");
    configure(
        &site,
        &format!("    address 127.0.0.1:{port}\n    username admin\n    password {new_hash}\n"),
        TWO_NODES,
    );
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("the new password", || {
        get(port, "/", Some(("admin", "other"))).status == 200
    });
    assert_eq!(get(port, "/", ADMIN).status, 401);
    // Removing the section closes the page; programs carry on.
    let pid = pid_of(&site, "web1");
    let text = std::fs::read_to_string(site.path("zd.conf")).expect("read config");
    let start = text.find("  <http-server>").expect("section");
    let end = text.find("</http-server>\n").expect("section end") + "</http-server>\n".len();
    std::fs::write(
        site.path("zd.conf"),
        format!("{}{}", &text[..start], &text[end..]),
    )
    .expect("write config");
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("the page gone", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert_eq!(pid_of(&site, "web1"), pid);
}

#[test]
fn check_refuses_plain_passwords_and_warns_about_open_pages() {
    let site = Site::new();
    configure(
        &site,
        "    address 9001\n    username admin\n    password secret",
        TWO_NODES,
    );
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("zd.conf:6:"), "{err}");
    assert!(err.contains("only a hashed password is accepted"), "{err}");
    assert!(
        !err.contains("secret\n") && !err.contains("'secret'"),
        "{err}"
    );

    configure(&site, "    address 9001\n    username admin", TWO_NODES);
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has a username but no password"));

    configure(&site, "    address example.com:80", TWO_NODES);
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("zd.conf:4:"), "{}", stderr(&o));

    configure(&site, "    address 0.0.0.0:9001", TWO_NODES);
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Warning:") && err.contains("zd.conf:3:"),
        "{err}"
    );
    assert!(err.contains("open to anyone"), "{err}");

    configure(
        &site,
        &format!("    address 0.0.0.0:9001\n    username admin\n    password {SECRET_HASH}"),
        TWO_NODES,
    );
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("Warning"), "{}", stderr(&o));
    let shown = stdout(&site.zdctl(&["show", "--json"]));
    let v: Value = serde_json::from_str(&shown).expect("show --json");
    assert_eq!(v["runner"]["http-server"]["password"], SECRET_HASH);
    assert_eq!(v["runner"]["http-server"]["address"], "0.0.0.0:9001");
    assert!(stdout(&site.zdctl(&["show"])).contains(SECRET_HASH));
}

#[test]
fn the_toml_table_is_the_same_section() {
    let site = Site::new();
    let port = free_port();
    let toml = format!(
        "[runner]\nprogram = [\"sleep\", \"1000\"]\nsocket-name = \"{}\"\n\n\
         [runner.http-server]\naddress = \"127.0.0.1:{port}\"\n\
         username = \"admin\"\npassword = \"{SECRET_HASH}\"\n",
        site.sock().display()
    );
    std::fs::write(site.path("zd.toml"), &toml).expect("write");
    let o = common::zdctl()
        .args(["-C"])
        .arg(site.path("zd.toml"))
        .arg("check")
        .output()
        .expect("zdctl");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(
        site.path("zd.toml"),
        toml.replace(SECRET_HASH, "plain words"),
    )
    .expect("write");
    let o = common::zdctl()
        .args(["-C"])
        .arg(site.path("zd.toml"))
        .arg("check")
        .output()
        .expect("zdctl");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("zd.toml:8:"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("only a hashed password"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_port_in_use_fails_the_start_and_no_section_means_no_listener() {
    let site = Site::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    configure(&site, &format!("    address 127.0.0.1:{port}"), TWO_NODES);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("zdrun runs");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "zd.conf:3: cannot listen for the status page on 127.0.0.1:{port}"
        )),
        "{}",
        stderr(&o)
    );
    assert!(!site.sock().exists(), "the control socket is cleaned up");
    drop(taken);

    // No section: zdrun listens on no TCP port at all.
    std::fs::write(
        site.path("zd.conf"),
        format!(
            "<runner>\n  socket-name {}\n</runner>\n{TWO_NODES}",
            site.sock().display()
        ),
    )
    .expect("write config");
    launch(&site);
    let manager = site.manager_pid();
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{manager}/fd"))
        .expect("zdrun's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    assert!(!inodes.is_empty(), "zdrun has its control socket");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN; the inode is the tenth field.
            if f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.iter().any(|n| n == i)) {
                panic!("zdrun listens on TCP without <http-server>: {line}");
            }
        }
    }
}

/// Bytes of every kind, whole or cut short, never stop the page: each
/// gets an answer or a closed connection, and zdrun serves on.
#[test]
fn garbage_never_stops_the_page() {
    let (site, port) = page_site(true);
    let manager = site.manager_pid();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let prefixes: [&[u8]; 5] = [
        b"",
        b"GET / HTTP/1.1\r\n",
        b"POST /control HTTP/1.1\r\nContent-Length: 30\r\n",
        b"GET /metrics HTTP/1.1\r\nAuthorization: Basic ",
        b"POST /control HTTP/1.1\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\nContent-Length: 12\r\n\r\n",
    ];
    for i in 0..300 {
        let mut bytes = prefixes[i % prefixes.len()].to_vec();
        let len = (next() % 300) as usize;
        bytes.extend((0..len).map(|_| {
            let r = next();
            // Mostly the bytes that matter to the parser.
            match r % 4 {
                0 => b"\r\n:% =&"[(r >> 8) as usize % 7],
                _ => (r >> 16) as u8,
            }
        }));
        if i % 2 == 0 {
            bytes.extend_from_slice(b"\r\n\r\n");
        }
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = s.set_read_timeout(Some(DEADLINE));
        let _ = s.write_all(&bytes);
        // Half a request and the end of it: closed without an answer.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if !out.is_empty() {
            let status = Answer::parse(&out).status;
            assert!(
                (400..=505).contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    assert!(alive(manager));
    assert_eq!(get(port, "/", ADMIN).status, 200);
    assert_eq!(node(&info(&site), "web1")["state"], "running");
}

/// The event log says where the page is, warns when anyone may read it,
/// and records what was done from it.
#[test]
fn the_event_log_tells_where_the_page_is_and_what_was_done_from_it() {
    let site = Site::new();
    let port = free_port();
    let log = site.path("events.log");
    let eventlog = format!(
        "<eventlog>\n  <logfile>\n    path {}\n  </logfile>\n</eventlog>\n",
        log.display()
    );
    configure(
        &site,
        &format!("    address 0.0.0.0:{port}"),
        &format!("{eventlog}{TWO_NODES}"),
    );
    launch(&site);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the page announced", || {
        read().contains(&format!("status page on 0.0.0.0:{port}"))
    });
    assert!(
        read().contains("is open to anyone who can reach it"),
        "{}",
        read()
    );
    assert!(read().contains("zd.conf:3: "), "{}", read());

    configure(
        &site,
        &format!("    address 127.0.0.1:{port}\n    username admin\n    password {SECRET_HASH}"),
        &format!("{eventlog}{TWO_NODES}"),
    );
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("the page moved", || {
        read().contains(&format!("status page now on 127.0.0.1:{port}"))
    });
    wait_for("web1 running", || pid_of(&site, "web1") != 0);
    let before = pid_of(&site, "web1");
    assert_eq!(control(port, "web1", "restart", &token(port)).status, 303);
    wait_for("the restart logged", || {
        read().contains("status page: restart web1: ")
    });
    wait_for("web1 restarted", || {
        let p = pid_of(&site, "web1");
        p != 0 && p != before
    });
}

#[test]
fn a_page_without_credentials_answers_only_loopback_names() {
    // A page on loopback without a password must not be readable by a
    // web page whose own name resolves to 127.0.0.1 (DNS rebinding).
    let (site, port) = page_site(false);
    let ask = |host: &str| {
        Answer::parse(&raw(
            port,
            format!("GET /status.json HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        ))
    };
    for host in ["evil.example", &format!("evil.example:{port}"), "10.1.2.3"] {
        assert_eq!(ask(host).status, 421, "Host: {host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
    ] {
        assert_eq!(ask(&host).status, 200, "Host: {host}");
    }
    // HTTP/1.0 without Host is still answered.
    let old = Answer::parse(&raw(port, b"GET /metrics HTTP/1.0\r\n\r\n"));
    assert_eq!(old.status, 200, "{old:?}");
    drop(site);
}

#[test]
fn a_page_with_credentials_takes_any_host() {
    // Behind a proxy that passes the public name: the password guards it.
    let (site, port) = page_site(true);
    let text = format!(
        "GET /status.json HTTP/1.1\r\nHost: zope.example.org\r\n{}\r\n",
        auth_header(ADMIN)
    );
    assert_eq!(Answer::parse(&raw(port, text.as_bytes())).status, 200);
    drop(site);
}
