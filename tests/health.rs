//! Health checks (`<health>` in a `<program>`): a hung HTTP server is
//! restarted, a node after an HTTP-checked one waits until it answers, a
//! command check with `action none` only reports, and `check` / `show`
//! know the section in both file formats.
//!
//! The HTTP server is Python's http.server (single-threaded, so one hung
//! request leaves it running but answering nothing), driven by files in
//! the site: it listens once `open` exists and hangs its requests while
//! `hang` exists.

mod common;

use std::fs;
use std::process::{Command, Output};

use common::site::*;
use serde_json::Value;

const SERVER: &str = r#"
import http.server, os, sys, time
port, d = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while os.path.exists(os.path.join(d, "hang")):
            time.sleep(0.05)
        body = b"status: healthy\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
while not os.path.exists(os.path.join(d, "open")):
    time.sleep(0.02)
with open(os.path.join(d, "listen.at"), "a") as f:
    f.write("%r\n" % time.time())
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn read(site: &Site, name: &str) -> String {
    fs::read_to_string(site.path(name)).unwrap_or_default()
}

/// The `program` words of the HTTP server on `port`.
fn server(site: &Site, port: u16) -> String {
    fs::write(site.path("server.py"), SERVER).expect("write server");
    format!(
        "python3 {} {port} {}",
        site.path("server.py").display(),
        site.dir.path().display()
    )
}

/// Write `zd.conf`: the site's runner, an event log, then `programs`.
fn site_config(site: &Site, programs: &str) {
    let text = format!(
        "<runner>\n  socket-name {}\n</runner>\n\
         <eventlog>\n  level debug\n  <logfile>\n    path {}\n    \
         format %(created)s %(levelname)s %(message)s\n  </logfile>\n</eventlog>\n{programs}\n",
        site.sock().display(),
        site.path("events.log").display()
    );
    fs::write(site.path("zd.conf"), text).expect("write site config");
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

fn pid(site: &Site, name: &str) -> i64 {
    node(&info(site), name)["pid"].as_i64().unwrap_or(0)
}

fn events(site: &Site, needle: &str) -> usize {
    read(site, "events.log").matches(needle).count()
}

#[test]
fn a_hung_http_server_is_restarted_after_the_configured_failures() {
    let site = Site::new();
    let port = free_port();
    fs::write(site.path("open"), "").expect("open");
    site_config(
        &site,
        &format!(
            "<program web>\n  program {}\n  stop-timeout 2\n  <health>\n    \
             url http://127.0.0.1:{port}/ok\n    body healthy\n    interval 1\n    \
             timeout 1\n    grace 0\n    failures 2\n  </health>\n</program>\n",
            server(&site, port)
        ),
    );
    ok(&site.zdctl(&["start"]));
    let web = node(&info(&site), "web");
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(web["health_failures"], 0, "{web}");
    assert_eq!(web["health_restarts"], 0, "{web}");
    assert!(web["health_latency_seconds"].as_f64().is_some(), "{web}");
    assert_eq!(
        events(
            &site,
            &format!("web: ready: health check passes (http://127.0.0.1:{port}/ok)")
        ),
        1
    );
    let old = pid(&site, "web");

    // Hung: the process lives on, its answers stop.
    fs::write(site.path("hang"), "").expect("hang");
    wait_for("a new server", || {
        let p = pid(&site, "web");
        p != 0 && p != old
    });
    fs::remove_file(site.path("hang")).expect("unhang");
    assert!(!alive(old as i32), "the hung server was stopped");
    let log = read(&site, "events.log");
    assert!(
        log.contains("web: health check failed (1 of 2): no answer within 1 seconds"),
        "{log}"
    );
    assert!(
        log.contains("web: health check failed (2 of 2): no answer within 1 seconds"),
        "{log}"
    );
    assert_eq!(
        log.matches("health check failed 2 times in a row; restarting")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("(3 of 2)"), "{log}");
    wait_for("web running again", || {
        node(&info(&site), "web")["state"] == "running"
    });
    let web = node(&info(&site), "web");
    assert_eq!(web["health_restarts"], 1, "{web}");
    assert_eq!(web["health_failures"], 2, "{web}");
    assert_eq!(web["restarts"], 1, "{web}");
}

#[test]
fn a_node_after_an_http_checked_instance_starts_once_it_answers() {
    let site = Site::new();
    let port = free_port();
    let stamp = script(
        &site,
        "stamp.sh",
        &format!(
            "python3 -c 'import time; print(repr(time.time()))' >> {}/$1.started\nexec sleep 100",
            site.dir.path().display()
        ),
    );
    site_config(
        &site,
        &format!(
            "<program instance>\n  program {}\n  <health>\n    \
             url http://127.0.0.1:{port}/\n    interval 60\n  </health>\n</program>\n\
             <program web>\n  program {stamp} web\n  after instance\n</program>\n",
            server(&site, port)
        ),
    );
    launch(&site);
    wait_for("the instance spawned", || pid(&site, "instance") != 0);
    let status = ok(&site.zdctl(&["status"]));
    let instance = pid(&site, "instance");
    assert!(
        status.starts_with(&format!(
            "instance: program running; pid={instance}; starting: health check not passing yet"
        )),
        "{status}"
    );
    assert!(
        status.contains("web: daemon process not running; waiting for instance"),
        "{status}"
    );
    // Well within the grace period: failures before it do not count.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(read(&site, "web.started"), "");
    assert_eq!(node(&info(&site), "instance")["health_failing"], 0);

    fs::write(site.path("open"), "").expect("open");
    wait_for("web started", || {
        !read(&site, "web.started").trim().is_empty()
    });
    let listen: f64 = read(&site, "listen.at")
        .trim()
        .parse()
        .expect("listen time");
    let web: f64 = read(&site, "web.started").trim().parse().expect("web time");
    assert!(
        web > listen,
        "web started at {web}, the instance listened at {listen}"
    );
    assert_eq!(pid(&site, "instance"), instance);
    let info = info(&site);
    assert_eq!(node(&info, "instance")["state"], "running");
    assert!(
        node(&info, "web").get("health_failures").is_none(),
        "no check, no figures"
    );
}

#[test]
fn a_command_check_with_action_none_only_reports() {
    let site = Site::new();
    let check = script(
        &site,
        "check.sh",
        &format!("test ! -e {}/sick", site.dir.path().display()),
    );
    site_config(
        &site,
        &format!(
            "<program app>\n  program sleep 100\n  <health>\n    command {check}\n    \
             interval 1\n    grace 0\n    failures 2\n    action none\n  </health>\n</program>\n"
        ),
    );
    ok(&site.zdctl(&["start"]));
    let first = pid(&site, "app");
    wait_for("a passing check", || {
        node(&info(&site), "app")["health_latency_seconds"].is_f64()
    });
    fs::write(site.path("sick"), "").expect("sick");
    wait_for("three failures", || {
        node(&info(&site), "app")["health_failing"].as_u64() >= Some(3)
    });
    assert_eq!(pid(&site, "app"), first, "action none does not restart");
    let log = read(&site, "events.log");
    assert!(
        log.contains("app: health check failed (2 of 2): exit status 1"),
        "{log}"
    );
    assert!(!log.contains("restarting"), "{log}");
    fs::remove_file(site.path("sick")).expect("well");
    wait_for("passing again", || {
        events(&site, "app: health check passes again") == 1
    });
    assert_eq!(node(&info(&site), "app")["health_failing"], 0);
}

#[test]
fn a_tcp_checked_node_is_ready_once_its_address_accepts() {
    let site = Site::new();
    let port = free_port();
    fs::write(site.path("open"), "").expect("open");
    site_config(
        &site,
        &format!(
            "<program store>\n  program {}\n  <health>\n    address 127.0.0.1:{port}\n  \
             </health>\n</program>\n<program app>\n  program sleep 100\n  after store\n\
             </program>\n",
            server(&site, port)
        ),
    );
    ok(&site.zdctl(&["start"]));
    let info = info(&site);
    assert_eq!(node(&info, "store")["state"], "running");
    assert_eq!(node(&info, "app")["state"], "running");
    assert!(read(&site, "listen.at").trim().parse::<f64>().is_ok());
    assert_eq!(
        events(
            &site,
            &format!("store: ready: health check passes (127.0.0.1:{port})")
        ),
        1
    );
}

#[test]
fn check_names_the_file_and_line_of_a_bad_health_section() {
    let site = Site::new();
    let cases = [
        (
            "  <health>\n    interval 5\n  </health>\n",
            "needs exactly one of url, address or command",
        ),
        (
            "  <health>\n    url https://127.0.0.1/\n  </health>\n",
            "only http:// URLs are checked",
        ),
        (
            "  <health>\n    url http://example.org/\n  </health>\n",
            "must be an IP address or localhost",
        ),
        (
            "  <health>\n    address 127.0.0.1:80\n    action reboot\n  </health>\n",
            "action must be restart or none",
        ),
        (
            "  <health>\n    address 127.0.0.1:80\n    failures 0\n  </health>\n",
            "failures must be 1 or more",
        ),
        (
            "  <health>\n    address 127.0.0.1:80\n    body x\n  </health>\n",
            "body is only checked with a url",
        ),
    ];
    for (health, want) in cases {
        site_config(
            &site,
            &format!("<program a>\n  program sleep 1\n{health}</program>\n"),
        );
        let o = site.zdctl(&["check"]);
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert_ne!(o.status.code(), Some(0), "{out}");
        assert!(out.contains(want), "{want}: {out}");
        // The <health> line: after the runner (3 lines), the event log (7),
        // `<program a>` and `program`.
        assert!(out.contains("zd.conf:13"), "{want}: {out}");
    }
    site_config(
        &site,
        "<program a>\n  program sleep 1\n  <health>\n    url http://127.0.0.1/\n    \
         colour blue\n  </health>\n</program>\n",
    );
    let o = site.zdctl(&["check"]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("colour") && out.contains("zd.conf:15"),
        "{out}"
    );
}

#[test]
fn show_json_has_the_check_in_effect_from_zconfig_and_toml() {
    let site = Site::new();
    site_config(
        &site,
        "<program a>\n  program sleep 1\n  <health>\n    url http://localhost:8080/ok\n    \
         interval 2m\n  </health>\n</program>\n",
    );
    let want = serde_json::json!({
        "url": "http://localhost:8080/ok", "status": 200, "interval": 120, "timeout": 10,
        "grace": 60, "failures": 3, "action": "restart"
    });
    let shown: Value = serde_json::from_str(&ok(&site.zdctl(&["show", "--json"]))).expect("json");
    let nodes = shown["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes[0]["health"], want, "{shown}");

    // The same site saved as TOML reads back the same.
    let toml = ok(&site.zdctl(&["show", "--format", "toml"]));
    assert!(toml.contains("[programs.health]"), "{toml}");
    let path = site.path("zd.toml");
    fs::write(&path, toml).expect("write toml");
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(&path)
        .args(["show", "--json"])
        .output()
        .expect("zdctl runs");
    let shown: Value = serde_json::from_str(&ok(&o)).expect("json");
    let nodes = shown["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes[0]["health"], want, "{shown}");
}

#[test]
fn a_reload_that_changes_only_a_check_keeps_the_program_running() {
    let site = Site::new();
    let check = script(
        &site,
        "check.sh",
        &format!("test ! -e {}/sick", site.dir.path().display()),
    );
    let programs = |health: &str| {
        format!(
            "<program app>\n  program sleep 100\n{health}</program>\n\
             <program other>\n  program sleep 101\n  after app\n</program>\n"
        )
    };
    site_config(&site, &programs(""));
    ok(&site.zdctl(&["start"]));
    let (app, other) = (pid(&site, "app"), pid(&site, "other"));
    fs::write(site.path("sick"), "").expect("sick");
    site_config(
        &site,
        &programs(&format!(
            "  <health>\n    command {check}\n    interval 1\n    grace 0\n    \
             failures 2\n    action none\n  </health>\n"
        )),
    );
    let out = ok(&site.zdctl(&["reload"]));
    assert!(out.contains("changed app"), "{out}");
    wait_for("the new check failing", || {
        node(&info(&site), "app")["health_failing"].as_u64() >= Some(2)
    });
    let info = info(&site);
    assert_eq!(node(&info, "app")["state"], "running", "{info}");
    assert_eq!((pid(&site, "app"), pid(&site, "other")), (app, other));
}

/// zdrun in the foreground as a systemd `Type=notify` unit would run it,
/// with a test-owned NOTIFY_SOCKET; killed on drop.
struct Unit {
    child: std::process::Child,
    sock: std::os::unix::net::UnixDatagram,
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn systemd_hears_ready_only_once_the_http_check_passes() {
    let site = Site::new();
    let port = free_port();
    site_config(
        &site,
        &format!(
            "<program instance>\n  program {}\n  <health>\n    \
             url http://127.0.0.1:{port}/\n  </health>\n</program>\n",
            server(&site, port)
        ),
    );
    let path = site.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    let child = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .env("NOTIFY_SOCKET", &path)
        .spawn()
        .expect("zdrun runs");
    site.track(child.id() as i32);
    let unit = Unit { child, sock };
    wait_for("the instance spawned", || pid(&site, "instance") != 0);
    // Running, not answering: nothing says READY.
    unit.sock
        .set_read_timeout(Some(std::time::Duration::from_millis(1200)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while let Ok(n) = unit.sock.recv(&mut buf) {
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!m.contains("READY=1"), "READY before the check passed: {m}");
    }
    fs::write(site.path("open"), "").expect("open");
    unit.sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
    loop {
        let n = unit.sock.recv(&mut buf).expect("a notification in time");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.contains("READY=1") {
            assert_eq!(m, "READY=1\nSTATUS=1 of 1 programs ready");
            break;
        }
    }
    assert!(!read(&site, "listen.at").is_empty());
}

#[test]
fn a_refused_connection_is_a_failure_with_its_reason() {
    let site = Site::new();
    let port = free_port();
    site_config(
        &site,
        &format!(
            "<program app>\n  program sleep 100\n  <health>\n    address 127.0.0.1:{port}\n    \
             interval 1\n    grace 0\n    failures 1\n    action none\n  </health>\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("a counted failure", || {
        events(
            &site,
            "app: health check failed (1 of 1): cannot connect: Connection refused",
        ) > 0
    });
    let app = node(&info(&site), "app");
    assert_eq!(app["state"], "starting", "{app}");
    assert!(
        app["reason"].as_str().is_some_and(
            |r| r.ends_with("health check not passing yet: cannot connect: Connection refused")
        ),
        "{app}"
    );
}
