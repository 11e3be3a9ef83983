//! The status page in a real browser: headless Chromium is refused `/`
//! without credentials (401), loads it with HTTP Basic credentials and
//! takes a screenshot; every node must be on the page, and the restart
//! button of one node must give it a new pid (seen by `zdctl status
//! --json` and on the page the browser is sent back to).
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages, NUL-terminated, written to
//! its fd 3 and read from its fd 4), so no WebDriver or websocket client
//! is needed. Chromium is Debian's `chromium` package at /usr/bin/chromium
//! (`ZDRS_CHROMIUM` names another binary); `.ci/run` installs it. Without
//! it the test fails and says how to get it.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::site::*;
use serde_json::{Value, json};

const USER: &str = "admin";
const PASSWORD: &str = "secret";
/// `printf secret | sha256sum`
const PASSWORD_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
const NODES: [&str; 3] = ["zeo", "web1", "web2"];
/// The viewport, so the screenshot's size is known.
const WIDTH: u64 = 1024;
const HEIGHT: u64 = 768;

// ------------------------------------------------------------ the site

/// A site of three nodes with the status page on a free loopback port,
/// stopped with SIGTERM (so its nodes stop too) when dropped.
struct StatusSite {
    site: Site,
    port: u16,
    manager: i32,
}

impl StatusSite {
    fn start() -> StatusSite {
        let site = Site::new();
        let port = free_port();
        let mut programs = String::new();
        for (i, name) in NODES.iter().enumerate() {
            programs.push_str(&format!(
                "<program {name}>\n  program sleep {}\n</program>\n",
                1000 + i
            ));
        }
        let text = format!(
            "<runner>\n  socket-name {}\n  <http-server>\n    address 127.0.0.1:{port}\n    \
             username {USER}\n    password {{SHA256}}{PASSWORD_SHA256}\n  </http-server>\n\
             </runner>\n{programs}",
            site.sock().display()
        );
        std::fs::write(site.path("zd.conf"), text).expect("write site config");
        launch(&site);
        let manager = site.manager_pid();
        let s = StatusSite {
            site,
            port,
            manager,
        };
        wait_for("the status page's port", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        wait_for("every node running", || NODES.iter().all(|n| s.pid(n) != 0));
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `zdctl status --json`'s document.
    fn status(&self) -> Value {
        let o = self.site.zdctl(&["status", "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    /// NAME's pid per `zdctl status --json`, 0 when it is not running.
    fn pid(&self, name: &str) -> i64 {
        let node = node(&self.status(), name);
        if node["state"] == "running" {
            node["pid"].as_i64().unwrap_or(0)
        } else {
            0
        }
    }
}

impl Drop for StatusSite {
    fn drop(&mut self) {
        if self.manager != 0 {
            stop_managers(&[self.manager]);
        }
    }
}

// ------------------------------------------------------------ Chromium

/// Headless Chromium with the DevTools protocol on a pipe. Dropping it
/// kills its whole process group (the browser and its renderers).
struct Chromium {
    child: Child,
    to: File,
    from: Receiver<Value>,
    /// Events that arrived while waiting for a reply.
    events: Vec<Value>,
    next_id: u64,
    stderr: PathBuf,
}

fn chromium_binary() -> PathBuf {
    let bin = std::env::var_os("ZDRS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        bin.exists(),
        "this test needs headless Chromium at {} (none there): install Debian's \
         package with `apt-get install chromium` (.ci/run does), or set \
         ZDRS_CHROMIUM to a Chromium binary",
        bin.display()
    );
    bin
}

/// A pipe whose two ends are at fds >= 10 and close on exec, so the child
/// can dup2 them onto 3 and 4 without clobbering either.
fn high_pipe() -> (OwnedFd, OwnedFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let high = |fd: OwnedFd| -> OwnedFd {
        let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10)).expect("dup a pipe end");
        // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
    };
    (high(r), high(w))
}

impl Chromium {
    fn launch(dir: &Path) -> Chromium {
        let bin = chromium_binary();
        // Our requests go into Chromium's fd 3, its replies come out of fd 4.
        let (cmd_r, cmd_w) = high_pipe();
        let (reply_r, reply_w) = high_pipe();
        let stderr = dir.join("chromium.stderr");
        let mut command = Command::new(&bin);
        command
            .args([
                "--headless",
                // The sandbox needs user namespaces or a setuid helper and
                // refuses to run as root; the browser only loads our page.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("chromium's stderr file"))
            .process_group(0);
        let (cr, rw) = (cmd_r.as_raw_fd(), reply_w.as_raw_fd());
        // SAFETY: dup2 is async-signal-safe and the two descriptors are
        // open in the child (inherited); the copies on 3 and 4 lose
        // close-on-exec, as Chromium expects.
        unsafe {
            command.pre_exec(move || {
                if nix::libc::dup2(cr, 3) < 0 || nix::libc::dup2(rw, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        drop(cmd_r);
        drop(reply_w);

        // Replies and events are read by a thread, so every wait here can
        // have a deadline; it ends when Chromium closes the pipe.
        let (tx, rx) = channel();
        let mut reader = File::from(reply_r);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    let Ok(v) = serde_json::from_slice::<Value>(&msg[..end]) else {
                        continue;
                    };
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Chromium {
            child,
            to: File::from(cmd_w),
            from: rx,
            events: Vec::new(),
            next_id: 1,
            stderr,
        }
    }

    /// Chromium's stderr so far, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn next(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!("Chromium: timed out waiting for {what}\n{}", self.log())
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "Chromium closed its pipe waiting for {what}\n{}",
                    self.log()
                )
            }
        }
    }

    /// Send METHOD (to the page's SESSION, or the browser) and wait for its
    /// reply: its `result`, or its `error` message.
    fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("a JSON value serializes");
        bytes.push(0);
        if let Err(e) = self.to.write_all(&bytes) {
            panic!("writing {method} to Chromium: {e}\n{}", self.log());
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.next(deadline, method);
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(format!("{method}: {e}")),
                    None => Ok(v["result"].clone()),
                };
            }
            self.events.push(v);
        }
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("Chromium refused {e}\n{}", self.log()),
        }
    }

    /// Forget the events seen so far.
    fn clear_events(&mut self) {
        self.events.clear();
        while self.from.try_recv().is_ok() {}
    }

    /// Wait for the event METHOD on SESSION; its params.
    fn event(&mut self, session: &str, method: &str) -> Value {
        self.event_where(session, method, |_| true)
    }

    /// Wait for the first event METHOD on SESSION whose params satisfy
    /// CHECK; its params. Events before it are forgotten, so the next
    /// wait sees only what came after.
    fn event_where(
        &mut self,
        session: &str,
        method: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.events.iter().position(|e| {
                e["method"] == method && e["sessionId"] == session && check(&e["params"])
            }) {
                let found = self.events.remove(i);
                self.events.drain(..i);
                return found["params"].clone();
            }
            let v = self.next(deadline, method);
            self.events.push(v);
        }
    }

    /// Attach to the page Chromium opened; the session id.
    fn page(&mut self) -> String {
        let targets = self.call(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string);
        let target = match page {
            Some(t) => t,
            None => {
                self.call(None, "Target.createTarget", json!({"url": "about:blank"}))["targetId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from attachToTarget: {attached}"))
            .to_string();
        let s = Some(session.as_str());
        self.call(s, "Page.enable", json!({}));
        self.call(s, "Network.enable", json!({}));
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        );
        session
    }

    /// Load URL in the page and wait until it has loaded.
    fn navigate(&mut self, session: &str, url: &str) {
        self.clear_events();
        let r = self.call(Some(session), "Page.navigate", json!({"url": url}));
        if let Some(e) = r.get("errorText") {
            panic!("Chromium could not load {url}: {e}");
        }
        self.event(session, "Page.loadEventFired");
    }

    /// Evaluate EXPR in the page; its value (JSON), or why not (the page
    /// may be between two loads).
    fn eval(&mut self, session: &str, expr: &str) -> Result<Value, String> {
        let r = self.try_call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluate EXPR until CHECK accepts its value; that value.
    fn eval_until(
        &mut self,
        session: &str,
        what: &str,
        expr: &str,
        mut check: impl FnMut(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let last = match self.eval(session, expr) {
                Ok(v) if check(&v) => return v,
                Ok(v) => v.to_string(),
                Err(e) => e,
            };
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what} in the page; last: {last}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the viewport.
    fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let r = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        let data = r["data"].as_str().unwrap_or_default();
        base64_decode(data).unwrap_or_else(|| panic!("screenshot is not base64: {data:.80}"))
    }

    /// Click at the middle of the element SELECTOR with the mouse, as a
    /// user would (it must be visible and not covered to be hit).
    fn click(&mut self, session: &str, selector: &str) {
        let sel = serde_json::to_string(selector).expect("a string serializes");
        let expr = format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let at = self.eval_until(session, selector, &expr, |v| v.is_array());
        let (x, y) = (at[0].as_f64().unwrap_or(0.0), at[1].as_f64().unwrap_or(0.0));
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                Some(session),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.try_close();
        // The browser was started as the leader of its own group, with
        // its renderers and helpers in it. (killpg, not `kill -9 -PGID`:
        // procps-ng 4.0.2's kill reads a negative pid as kill(-1).)
        if let Ok(pid) = i32::try_from(self.child.id())
            && pid > 1
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }
}

impl Chromium {
    /// Ask the browser to quit, waiting a little for it.
    fn try_close(&mut self) -> Option<()> {
        let mut bytes = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).ok()?;
        bytes.push(0);
        self.to.write_all(&bytes).ok()?;
        let give_up = Instant::now() + Duration::from_secs(3);
        while Instant::now() < give_up {
            if self.child.try_wait().ok()?.is_some() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

// ------------------------------------------------------------ encodings

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u64, u64)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x));
    Some((be(&png[16..20]), be(&png[20..24])))
}

// ------------------------------------------------------------ the test

/// The page's rows as `[{node, state, pid, cells: [classes]}]`.
const ROWS: &str = "JSON.stringify([...document.querySelectorAll('tr[data-node]')].map(r => ({\
    node: r.dataset.node, \
    text: r.innerText, \
    state: (r.querySelector('.state') || {}).textContent, \
    pid: ((r.querySelector('.pid') || {}).textContent || '').trim(), \
    cells: [...r.querySelectorAll('[class]')].flatMap(c => [...c.classList]), \
    restart: !!r.querySelector('form[method=post][action=\"/control\"] button[name=action][value=restart]')\
    })))";

fn rows(value: &Value) -> Vec<Value> {
    value
        .as_str()
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["node"] == name)
}

#[test]
fn status_page_in_chromium_shows_the_site_and_restarts_a_node() {
    // Fail before starting anything when there is no browser.
    chromium_binary();
    let site = StatusSite::start();
    let mut browser = Chromium::launch(site.site.dir.path());
    let page = browser.page();

    // A blank page's screenshot, to tell the status page's from nothing.
    let blank = browser.screenshot(&page);

    // Without credentials the browser gets the 401 and no table.
    browser.clear_events();
    browser.call(Some(&page), "Page.navigate", json!({"url": site.url("/")}));
    let url = site.url("/");
    let refused = browser.event_where(&page, "Network.responseReceived", |p| {
        p["type"] == "Document" && p["response"]["url"] == url.as_str()
    });
    assert_eq!(
        refused["response"]["status"], 401,
        "the page without credentials: {refused}"
    );
    let rows_shown = browser.eval(&page, "document.querySelectorAll('tr[data-node]').length");
    assert_eq!(rows_shown, Ok(json!(0)), "rows shown without credentials");

    // Every request the page makes carries the credentials.
    let auth = format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()));
    browser.call(
        Some(&page),
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": auth}}),
    );
    browser.navigate(&page, &site.url("/"));

    let pids: Vec<i64> = NODES.iter().map(|n| site.pid(n)).collect();
    let shown = rows(&browser.eval_until(&page, "every node's row", ROWS, |v| {
        let r = rows(v);
        NODES.iter().all(|n| row(&r, n).is_some())
    }));
    for (name, pid) in NODES.iter().zip(&pids) {
        let r = row(&shown, name).expect("checked above");
        assert!(
            r["text"].as_str().is_some_and(|t| t.contains(name)),
            "{name}'s row does not show its name: {r}"
        );
        assert_eq!(r["pid"], pid.to_string(), "{name}'s pid on the page: {r}");
        for class in [
            "state",
            "pid",
            "uptime",
            "restarts",
            "last-exit",
            "health",
            "memory",
        ] {
            assert!(
                r["cells"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == class)),
                "{name}'s row has no `{class}` cell: {r}"
            );
        }
        assert_eq!(
            r["restart"], true,
            "{name}'s row has no restart button: {r}"
        );
    }

    let png = browser.screenshot(&page);
    let shot = site.site.path("status-page.png");
    std::fs::write(&shot, &png).expect("save the screenshot");
    assert_eq!(
        png_size(&png),
        Some((WIDTH, HEIGHT)),
        "{} is not a {WIDTH}x{HEIGHT} PNG",
        shot.display()
    );
    assert!(
        png.len() > 2 * blank.len() && png.len() > 4096,
        "{} ({} bytes) looks empty next to a blank page's ({} bytes)",
        shot.display(),
        png.len(),
        blank.len()
    );

    // Restart web1 from the page.
    let (target, old) = (NODES[1], pids[1]);
    let button = format!("tr[data-node=\"{target}\"] button[name=action][value=restart]");
    let start = Instant::now();
    browser.clear_events();
    let new = 'clicked: loop {
        // A click that lands while the page reloads itself is lost: click
        // again after a while without a new pid.
        browser.click(&page, &button);
        let again = Instant::now() + Duration::from_secs(5);
        while Instant::now() < again {
            let p = site.pid(target);
            if p != 0 && p != old {
                break 'clicked p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{target} kept pid {old} after clicking its restart button"
        );
    };
    for (name, pid) in NODES.iter().zip(&pids) {
        if *name != target {
            assert_eq!(site.pid(name), *pid, "{name} was not to be restarted");
        }
    }

    // The browser followed the 303 back to the page.
    let url = site.url("/");
    browser.event_where(&page, "Network.requestWillBeSent", |p| {
        p["redirectResponse"]["status"] == 303 && p["request"]["url"] == url.as_str()
    });
    browser.event(&page, "Page.loadEventFired");
    let new = new.to_string();
    let shows_new = |v: &Value| {
        rows(v)
            .iter()
            .any(|r| r["node"] == target && r["pid"] == new.as_str())
    };
    // The page answering the redirect may have been made before the new
    // process was up (it reloads itself every few seconds); reload it now
    // rather than wait for that.
    if !browser.eval(&page, ROWS).is_ok_and(|v| shows_new(&v)) {
        browser.navigate(&page, &url);
    }
    let shown = rows(&browser.eval_until(&page, "the new pid", ROWS, shows_new));
    for (name, pid) in NODES.iter().zip(&pids) {
        if *name != target {
            let r = row(&shown, name).map(|r| r["pid"].clone());
            assert_eq!(r, Some(json!(pid.to_string())), "{name}'s pid on the page");
        }
    }
}
