//! Running in containers, without a container engine: `zdctl ready` (the
//! answer a readiness probe wants), `after HOST:PORT` (a node that waits
//! for a server another zdrun runs), and examples/container's configs run
//! as three zdruns, each PID 1 of a PID namespace of its own (`unshare
//! --pid --fork --mount-proc`, as a container engine would), on localhost,
//! with the probe commands of its Kubernetes manifest and Compose file run
//! against them. Every wait has a deadline; every zdrun a test starts is
//! stopped when it ends, pass or fail.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::site::{Site, alive, free_port, info, kill, launch, node, stderr, stdout, wait_for};

/// The longest the example's steps may take (runzeo and Python start).
const STEP: Duration = Duration::from_secs(60);

/// Write a site config (runner socket and event log in the site, then
/// `programs`) as the site's `zd.conf`.
fn site_config(site: &Site, programs: &str) {
    let text = format!(
        "<runner>\n  socket-name {}\n</runner>\n\
         <eventlog>\n  <logfile>\n    path {}\n  </logfile>\n</eventlog>\n{programs}",
        site.sock().display(),
        site.path("zdrun.log").display()
    );
    fs::write(site.path("zd.conf"), text).expect("write zd.conf");
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn log_has(site: &Site, text: &str) -> bool {
    fs::read_to_string(site.path("zdrun.log")).is_ok_and(|l| l.contains(text))
}

#[test]
fn ready_says_whether_nodes_are_running_and_ready() {
    let site = Site::new();
    let flag = site.path("flag");
    site_config(
        &site,
        &format!(
            "<program db>\n  program sleep 1000\n  start-test-program test -e {}\n</program>\n\
             <program web>\n  program sleep 1000\n  after db\n</program>\n",
            flag.display()
        ),
    );

    // No manager: 3, as status; --wait waits that long for one.
    let o = site.zdctl(&["ready"]);
    assert_eq!(code(&o), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "daemon manager not running\n");
    let t0 = Instant::now();
    let o = site.zdctl(&["ready", "--wait", "0.3"]);
    assert_eq!(code(&o), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(t0.elapsed() >= Duration::from_millis(300));

    launch(&site);
    wait_for("db to run", || node(&info(&site), "db")["pid"].is_i64());
    let o = site.zdctl(&["ready", "db"]);
    assert_eq!(code(&o), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "db: not ready; starting: start test not passing yet\n"
    );
    let o = site.zdctl(&["ready", "web"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(stdout(&o), "web: not ready; waiting for db\n");
    let o = site.zdctl(&["ready"]);
    assert_eq!(code(&o), Some(1));
    assert!(stdout(&o).starts_with("db: not ready; "), "{}", stdout(&o));
    assert!(stdout(&o).ends_with(" (and 1 more not ready)\n"));

    // A name not in the file is a usage error.
    let o = site.zdctl(&["ready", "nope"]);
    assert_eq!(code(&o), Some(2));
    assert_eq!(stderr(&o), "ready: unknown node 'nope'\n");
    assert_eq!(stdout(&o), "");

    // --wait returns as soon as it is ready.
    fs::write(&flag, "").expect("write the flag");
    let o = site.zdctl(&["ready", "--wait", "20"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "ready: 2 of 2 programs\n");
    let o = site.zdctl(&["ready", "db"]);
    assert_eq!(code(&o), Some(0));
    let pid = node(&info(&site), "db")["pid"].clone();
    assert_eq!(stdout(&o), format!("db: ready; pid={pid}\n"));

    // A node stopped on purpose does not count; NAME still answers for it.
    let o = site.zdctl(&["stop", "web"]);
    assert_eq!(code(&o), Some(0), "{}", stdout(&o));
    let o = site.zdctl(&["ready"]);
    assert_eq!(code(&o), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "ready: 1 of 2 programs\n");
    let o = site.zdctl(&["ready", "web"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(stdout(&o), "web: not ready; stopped\n");

    // A not-ready answer after --wait ran out.
    let t0 = Instant::now();
    let o = site.zdctl(&["ready", "web", "--wait", "0.3"]);
    assert_eq!(code(&o), Some(1));
    assert!(t0.elapsed() >= Duration::from_millis(300));

    // --wait takes seconds, nothing else.
    for bad in ["nan", "-1", "inf", "soon"] {
        let o = site.zdctl(&["ready", "--wait", bad]);
        assert_eq!(code(&o), Some(2), "--wait {bad}: {}", stderr(&o));
    }

    // The help knows it.
    let o = site.zdctl(&["help", "ready"]);
    assert!(stdout(&o).starts_with("ready [NAME] [--wait SECONDS]"));
}

#[test]
fn ready_answers_for_a_single_program() {
    let site = Site::new();
    site.config("sleep 1000", "", "");
    launch(&site);
    let o = site.zdctl(&["ready", "--wait", "20"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), format!("ready; pid={}\n", site.program_pid()));
}

#[test]
fn a_node_after_an_address_starts_once_the_port_accepts_connections() {
    let site = Site::new();
    let port = free_port();
    // A host name, resolved off the loop; localhost may be ::1 first.
    let address = format!("localhost:{port}");
    site_config(
        &site,
        &format!(
            "<program local>\n  program sleep 1000\n</program>\n\
             <program web>\n  program sleep 1000\n  after local {address}\n</program>\n"
        ),
    );
    let o = site.zdctl(&["check"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));

    launch(&site);
    // The first check failed: web is held back, and says why.
    wait_for("the failed check", || {
        log_has(&site, &format!("waiting for {address}: "))
    });
    wait_for("local to run", || {
        node(&info(&site), "local")["state"] == "running"
    });
    let web = node(&info(&site), "web");
    assert_eq!(web["state"], "waiting", "{web}");
    assert!(web["pid"].is_null());
    assert_eq!(web["reason"], format!("waiting for {address}"));
    assert_eq!(web["after"], serde_json::json!(["local", address]));
    let o = site.zdctl(&["status", "web"]);
    assert_eq!(
        stdout(&o),
        format!("web: daemon process not running; waiting for {address}\n")
    );
    let o = site.zdctl(&["ready", "web"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(
        stdout(&o),
        format!("web: not ready; waiting for {address}\n")
    );

    // The server comes up: web starts.
    let _server = TcpListener::bind(("127.0.0.1", port)).expect("listen on the port");
    let o = site.zdctl(&["ready", "web", "--wait", "20"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(log_has(&site, &format!("{address} accepts connections")));
    assert!(log_has(&site, "web: spawned process"));
}

/// A listener whose queue is full: a connection to it is neither accepted
/// nor refused, and a connect hangs until its timeout (as to a host that
/// drops packets). The listener and the connection filling its queue.
fn black_hole() -> (TcpListener, std::net::TcpStream) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    listen(&fd, Backlog::new(0).expect("backlog")).expect("listen");
    let listener = TcpListener::from(fd);
    let filler =
        std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    (listener, filler)
}

#[test]
fn a_check_that_hangs_does_not_hold_up_zdrun() {
    let site = Site::new();
    let (listener, _filler) = black_hole();
    let address = listener.local_addr().expect("address").to_string();
    site_config(
        &site,
        &format!(
            "<program local>\n  program sleep 1000\n</program>\n\
             <program web>\n  program sleep 1000\n  after {address}\n</program>\n"
        ),
    );
    launch(&site);
    // The first check is under way (it waits 2 s for its connect); the
    // socket answers at once all the while.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        let asked = Instant::now();
        let web = node(&info(&site), "web");
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "info took {:?}",
            asked.elapsed()
        );
        assert_eq!(web["reason"], format!("waiting for {address}"), "{web}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("the check to time out", || {
        log_has(&site, &format!("waiting for {address}: "))
    });
    assert!(log_has(&site, "timed out"));
    assert!(node(&info(&site), "web")["pid"].is_null());
}

#[test]
fn start_waits_for_an_address_no_longer_than_the_start_timeout() {
    let site = Site::new();
    let address = format!("127.0.0.1:{}", free_port());
    site_config(
        &site,
        &format!(
            "<program db>\n  program sleep 1000\n</program>\n\
             <program web>\n  program sleep 1000\n  after {address}\n  start-timeout 1\n</program>\n"
        ),
    );
    let o = site.zdctl(&["start"]);
    assert_eq!(code(&o), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = common::site::undot(&stdout(&o));
    assert!(out.contains("db: daemon process started, pid="), "{out}");
    assert!(
        out.contains(&format!("web: waiting for {address}\n")),
        "{out}"
    );
    // zdrun goes on waiting.
    assert_eq!(node(&info(&site), "web")["state"], "waiting");
}

#[test]
fn an_after_address_without_host_or_port_is_refused_with_its_line() {
    let site = Site::new();
    for (after, why) in [
        (
            "zeo:99999",
            "after zeo:99999: 99999 is above upper bound (65535)",
        ),
        (":8100", "after :8100: an address needs a host (HOST:PORT)"),
        (
            "zeo:0",
            "after zeo:0: an address needs a port from 1 to 65535",
        ),
    ] {
        site_config(
            &site,
            &format!("<program web>\n  program sleep 1\n  after {after}\n</program>\n"),
        );
        let o = site.zdctl(&["check"]);
        assert_eq!(code(&o), Some(1), "{after}: {}", stdout(&o));
        let conf = site.path("zd.conf");
        let err = stderr(&o);
        // Line 11: the `after` line, under the runner and event log.
        assert!(
            err.contains(&format!("{}:11: {why}", conf.display())),
            "{after}: {err}"
        );
    }
    // TOML: the same check, from the same model.
    site_config(
        &site,
        "<program web>\n  program sleep 1\n  after zeo:8100\n</program>\n",
    );
    let o = site.zdctl(&["show", "--format", "toml"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let toml = stdout(&o);
    assert!(toml.contains("\"zeo:8100\""), "{toml}");
    let bad = site.path("site.toml");
    fs::write(&bad, toml.replace("\"zeo:8100\"", "\"zeo:0\"")).expect("write TOML");
    let o = common::run_zdctl(&["-C", &bad.display().to_string(), "check"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("after zeo:0: an address needs a port"),
        "{}",
        stderr(&o)
    );
}

/// A zdrun run as PID 1 of a new PID namespace, its output in a file.
/// Stopped (SIGTERM, then SIGKILL) when dropped.
struct Pid1 {
    unshare: Child,
    out: PathBuf,
}

impl Pid1 {
    fn start(config: &Path, env: &[(String, String)], out: PathBuf) -> Pid1 {
        let file = fs::File::create(&out).expect("output file");
        let err = file.try_clone().expect("output file");
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(env!("CARGO_BIN_EXE_zdrun"))
            .arg("-C")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("unshare runs (util-linux: apt-get install util-linux)");
        Pid1 { unshare, out }
    }

    /// zdrun's pid outside its namespace: unshare's one child.
    fn zdrun(&self) -> Option<i32> {
        let pid = self.unshare.id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGTERM to zdrun, as `docker stop` sends; its exit status.
    fn stop(&mut self) -> Option<i32> {
        if let Some(pid) = self.zdrun() {
            kill(pid, 15);
        }
        let end = Instant::now() + STEP;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        if let Ok(None) = self.unshare.try_wait() {
            if let Some(pid) = self.zdrun() {
                kill(pid, 15);
                let end = Instant::now() + Duration::from_secs(30);
                while alive(pid) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // --kill-child: zdrun goes with unshare, and the namespace
            // with its PID 1.
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

/// The flow-style arrays after `key:` in a YAML file (`command: [...]`),
/// as JSON: how the example's files write their probe commands.
fn yaml_arrays(path: &Path, key: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).expect("read the YAML file");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix(':'))
        .filter(|rest| rest.trim().starts_with('['))
        .map(|rest| serde_json::from_str(rest.trim()).expect("a JSON-compatible array"))
        .collect()
}

/// Run a probe command of the example (`zdctl -C /site/...`) here: our
/// zdctl, `/site/` the example's copy, the container's environment.
fn probe(words: &[String], site: &Path, env: &[(String, String)]) -> Output {
    assert_eq!(words[0], "zdctl", "{words:?}");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| match w.strip_prefix("/site/") {
            Some(rest) => site.join(rest).display().to_string(),
            None => w.clone(),
        })
        .collect();
    common::zdctl()
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("zdctl runs")
}

#[test]
fn the_container_example_runs_as_three_pid1_zdruns_with_its_probes() {
    let unshare = Command::new("unshare").arg("--version").output();
    assert!(
        unshare.is_ok_and(|o| o.status.success()),
        "unshare is missing: install util-linux (apt-get install util-linux)"
    );
    let python = common::oracle_python();
    let bin = python.parent().expect("python's directory").to_path_buf();
    assert!(
        bin.join("runzeo").exists(),
        "no runzeo next to {}",
        python.display()
    );

    // The image's layout: /site/container/*.conf, /site/zeo/client.py.
    let dir = tempfile::tempdir().expect("temp dir");
    let site = dir.path().join("site");
    let example = common::repo().join("examples");
    fs::create_dir_all(site.join("container")).expect("mkdir");
    fs::create_dir_all(site.join("zeo")).expect("mkdir");
    for entry in fs::read_dir(example.join("container")).expect("examples/container") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "conf") {
            let to = site.join("container").join(p.file_name().expect("name"));
            fs::copy(&p, to).expect("copy a config");
        }
    }
    for f in ["client.py", "check.py"] {
        fs::copy(example.join("zeo").join(f), site.join("zeo").join(f)).expect("copy");
    }

    // Each container's environment, as the image and the manifests set it.
    let zeo_port = free_port();
    let server_address = format!("127.0.0.1:{zeo_port}");
    let env = |var: &str, name: &str| -> Vec<(String, String)> {
        let var_dir = dir.path().join("var").join(var);
        fs::create_dir_all(&var_dir).expect("var dir");
        [
            ("ZEO_BIN", bin.display().to_string()),
            ("ZEO_VAR", var_dir.display().to_string()),
            ("ZEO_LISTEN", server_address.clone()),
            ("ZEO_SERVER", server_address.clone()),
            ("CLIENT_NAME", name.to_string()),
            ("CLIENT_STATUS", format!("127.0.0.1:{}", free_port())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let server_env = env("zeo", "client");
    let client_envs = [env("client1", "client1"), env("client2", "client2")];
    let server_conf = site.join("container/server.conf");
    let client_conf = site.join("container/client.conf");
    let zdctl = |conf: &Path, env: &[(String, String)], args: &[&str]| {
        common::zdctl()
            .arg("-C")
            .arg(conf)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("zdctl runs")
    };

    // The clients first: they wait for the server's address.
    let mut clients: Vec<Pid1> = client_envs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let out = dir.path().join(format!("client{}.out", i + 1));
            Pid1::start(&client_conf, e, out)
        })
        .collect();
    for (c, e) in clients.iter().zip(&client_envs) {
        let waiting = format!("client: daemon process not running; waiting for {server_address}\n");
        let end = Instant::now() + STEP;
        loop {
            let o = zdctl(&client_conf, e, &["status"]);
            if stdout(&o) == waiting {
                break;
            }
            assert!(
                Instant::now() < end,
                "client not waiting: {}\n{}",
                stdout(&o),
                c.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = zdctl(&client_conf, e, &["ready", "client"]);
        assert_eq!(code(&o), Some(1));
        assert_eq!(
            stdout(&o),
            format!("client: not ready; waiting for {server_address}\n")
        );
        // zdrun is PID 1 of its namespace.
        let o = zdctl(&client_conf, e, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status JSON");
        assert_eq!(v["manager_pid"], 1, "{v}");
    }

    let mut server = Pid1::start(&server_conf, &server_env, dir.path().join("zeo.out"));
    let o = zdctl(&server_conf, &server_env, &["ready", "zeo", "--wait", "60"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), server.output());
    for (c, e) in clients.iter().zip(&client_envs) {
        let o = zdctl(&client_conf, e, &["ready", "client", "--wait", "60"]);
        assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), c.output());
    }

    // The probes of the Kubernetes manifest and of the Compose file, run
    // in each container they are for.
    let k8s = yaml_arrays(&example.join("container/kubernetes.yaml"), "command");
    let compose: Vec<Vec<String>> = yaml_arrays(&example.join("container/compose.yaml"), "test")
        .into_iter()
        .map(|t| {
            assert_eq!(t[0], "CMD", "{t:?}");
            t[1..].to_vec()
        })
        .collect();
    assert_eq!(k8s.len(), 4, "{k8s:?}");
    assert!(
        k8s.iter()
            .any(|c| c.ends_with(&["ready".into(), "zeo".into()]))
    );
    assert!(
        k8s.iter()
            .any(|c| c.ends_with(&["ready".into(), "client".into()]))
    );
    assert!(k8s.iter().any(|c| c.contains(&"--json".to_string())));
    assert_eq!(compose.len(), 3, "{compose:?}");
    for words in k8s.iter().chain(&compose) {
        let envs: Vec<&Vec<(String, String)>> = if words.iter().any(|w| w.ends_with("server.conf"))
        {
            vec![&server_env]
        } else {
            client_envs.iter().collect()
        };
        for e in envs {
            let o = probe(words, &site, e);
            assert_eq!(code(&o), Some(0), "{words:?}: {}{}", stdout(&o), stderr(&o));
        }
    }

    // Every zdrun's event log and its program's output are its stdout.
    for c in &clients {
        let out = c.output();
        assert!(
            out.contains(&format!("{server_address} accepts connections")),
            "{out}"
        );
        assert!(out.contains("client: spawned process"), "{out}");
    }
    assert!(
        server.output().contains("zeo: ready: "),
        "{}",
        server.output()
    );

    // docker stop: clients, then the server; each stops cleanly.
    for c in &mut clients {
        assert_eq!(c.stop(), Some(0), "{}", c.output());
    }
    assert_eq!(server.stop(), Some(0), "{}", server.output());

    // Every commit a client saw acknowledged is in Data.fs.
    let acks: Vec<PathBuf> = ["client1", "client2"]
        .iter()
        .map(|n| dir.path().join("var").join(n).join(format!("{n}.acks")))
        .collect();
    for a in &acks {
        let text = fs::read_to_string(a).unwrap_or_default();
        assert!(!text.is_empty(), "no commit in {}", a.display());
    }
    let o = Command::new(&python)
        .arg(site.join("zeo/check.py"))
        .arg(dir.path().join("var/zeo/Data.fs"))
        .args(&acks)
        .output()
        .expect("check.py runs");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
