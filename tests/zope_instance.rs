//! A Zope instance made by Zope's own `mkwsgiinstance` (in the oracle
//! venv), driven by our zopectl with nothing but `-C etc/zope.conf`: no
//! `<runner>`, no flags, the venv's bin on PATH as an admin's activated
//! virtualenv has it. zopectl finds the program, socket, directory,
//! environment and event log as bin/instance does, and runs bin/instance's
//! `run` and `adduser` in the instance's Python. Then the same instance and
//! a ZEO server as one site, under one zdrun. Every wait has a deadline;
//! whatever a test starts is killed when it ends, pass or fail.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::oracle_python;
use common::site::{alive, free_port, kill, request, stderr, stdout, undot, wait_for};

/// A Zope instance in a temporary directory, with a `zopectl` link to our
/// zdctl beside it. Managers and programs seen are killed on drop.
struct Instance {
    dir: tempfile::TempDir,
    /// The instance home, relative to `dir`.
    rel: &'static str,
    bin: PathBuf,
    port: u16,
    /// Control sockets of the managers this test may have started.
    sockets: RefCell<Vec<PathBuf>>,
    /// Whether commands run with the venv's bin on PATH.
    venv_on_path: std::cell::Cell<bool>,
}

impl Instance {
    fn new() -> Instance {
        Instance::at("instance")
    }

    /// The instance made at `rel` in the temporary directory.
    fn at(rel: &'static str) -> Instance {
        let python = oracle_python();
        let bin = python.parent().expect("venv bin").to_path_buf();
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join(rel);
        let o = Command::new(bin.join("mkwsgiinstance"))
            .arg("-d")
            .arg(&home)
            .args(["-u", "admin:admin"])
            .output()
            .expect("mkwsgiinstance runs");
        assert!(o.status.success(), "mkwsgiinstance: {}", stderr(&o));
        // mkwsgiinstance serves on 8080; this test on a free port.
        let port = free_port();
        let ini = home.join("etc").join("zope.ini");
        let text = std::fs::read_to_string(&ini).expect("zope.ini");
        assert!(text.contains("port = 8080"), "{text}");
        std::fs::write(&ini, text.replace("port = 8080", &format!("port = {port}"))).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zdctl"), dir.path().join("zopectl"))
            .expect("link");
        let instance = Instance {
            dir,
            rel,
            bin,
            port,
            sockets: RefCell::new(Vec::new()),
            venv_on_path: std::cell::Cell::new(true),
        };
        instance.track(&instance.home().join("var").join("zopectlsock"));
        instance
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join(self.rel)
    }

    fn track(&self, sock: &Path) {
        self.sockets.borrow_mut().push(sock.to_path_buf());
    }

    /// `PATH` with the venv's bin first, as `source bin/activate` leaves it.
    fn path_var(&self) -> String {
        if !self.venv_on_path.get() {
            return "/usr/bin:/bin".into();
        }
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Run `zopectl ARGS` (or another personality) in the instance's
    /// directory.
    fn ctl(&self, name: &str, args: &[&str]) -> Output {
        let exe = match name {
            "zopectl" => self.dir.path().join("zopectl"),
            _ => PathBuf::from(env!("CARGO_BIN_EXE_zdctl")),
        };
        Command::new(exe)
            .current_dir(self.home())
            .env("PATH", self.path_var())
            .env_remove("PYTHON")
            .env_remove("INSTANCE_HOME")
            .env_remove("CONFIG_FILE")
            .env_remove("ZEO_TMP")
            .args(args)
            .output()
            .expect("zopectl runs")
    }

    fn zopectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-C", "etc/zope.conf"];
        all.extend_from_slice(args);
        self.ctl("zopectl", &all)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for sock in self.sockets.borrow().iter() {
            let status = String::from_utf8_lossy(&request(sock, b"status\n")).into_owned();
            let info: serde_json::Value =
                serde_json::from_slice(&request(sock, b"info\n")).unwrap_or_default();
            let nodes = info["nodes"].as_array().cloned().unwrap_or_default();
            let pids = status
                .lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| *k == "manager" || *k == "application")
                .filter_map(|(_, v)| v.parse::<i32>().ok())
                .chain(
                    nodes
                        .iter()
                        .filter_map(|n| n["pid"].as_i64())
                        .map(|p| p as i32),
                );
            for pid in pids.filter(|p| *p > 0) {
                kill(pid, 9);
            }
        }
    }
}

/// `GET path` (with basic auth `user`, already base64); the status code
/// and the body.
fn get(port: u16, path: &str, auth: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let code = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A child killed if the test ends before it does.
struct Bg(Option<std::process::Child>);

impl Bg {
    fn wait(mut self) -> Output {
        let child = self.0.take().expect("a child");
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn pid_in(out: &str) -> i32 {
    out.rsplit("pid=")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

/// What the program of `pid` was started with, as `NAME=VALUE` words.
fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A script for `run`: adds a file object and commits, then says its
/// arguments and exits 3.
const WRITE: &str = "import sys, transaction\n\
from OFS.Image import manage_addFile\n\
manage_addFile(app, 'note', file=b'written by run', content_type='text/plain')\n\
transaction.commit()\n\
print('argv', sys.argv)\n\
sys.exit(3)\n";

const READ: &str = "print('note:', bytes(app.note.data).decode())\n";

#[test]
fn zopectl_runs_a_mkwsgiinstance_instance_from_its_zope_conf_alone() {
    let z = Instance::new();
    let home = z.home();
    let o = z.zopectl(&["status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(3));

    let o = z.zopectl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = pid_in(&stdout(&o));
    assert!(pid > 0, "{}", stdout(&o));
    // The socket is the client home's, as bin/instance puts it.
    assert!(home.join("var/zopectlsock").exists());
    wait_for("Zope to answer", || {
        get(z.port, "/", None).is_some_and(|(code, _)| code == 200)
    });

    let o = z.zopectl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    assert_eq!(o.status.code(), Some(0));
    // The instance's Python serving zope.ini, in the instance home, with
    // bin/instance's environment.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("Zope2.Startup.serve") && cmdline.contains("etc/zope.ini"),
        "{cmdline}"
    );
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, home);
    let env = environ(pid);
    let home_s = home.display().to_string();
    assert!(env.contains(&format!("INSTANCE_HOME={home_s}")), "{env:?}");
    assert!(
        env.contains(&format!("CLIENT_HOME={home_s}/var")),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e.starts_with("ZEO_TMP=")), "{env:?}");

    // logtail's default is the event log zope.ini's root logger writes.
    wait_for("the event log", || {
        std::fs::read_to_string(home.join("var/log/event.log"))
            .is_ok_and(|l| l.contains("Serving on"))
    });
    let o = z.zopectl(&["logtail"]);
    assert!(stdout(&o).contains("Serving on"), "{}", stdout(&o));

    let o = z.zopectl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    assert_eq!(o.status.code(), Some(0));
    wait_for("Zope gone", || !alive(pid));

    // `run`: the script gets sys.argv as bin/instance gives it, writes to
    // the database, and its exit status is ours.
    let script = z.write("write.py", WRITE);
    let script = script.to_str().unwrap();
    let o = z.zopectl(&["run", script, "x", "two words"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("argv ['{script}', 'x', 'two words']")),
        "{}",
        stdout(&o)
    );
    let read = z.write("read.py", READ);
    let o = z.zopectl(&["run", read.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("note: written by run"),
        "{}",
        stdout(&o)
    );
    // At the prompt, `run` comes back to the prompt.
    let mut child = Command::new(z.dir.path().join("zopectl"))
        .current_dir(z.home())
        .env("PATH", z.path_var())
        .env_remove("PYTHON")
        .env_remove("INSTANCE_HOME")
        .env_remove("CONFIG_FILE")
        .env_remove("ZEO_TMP")
        .args(["-C", "etc/zope.conf"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("zopectl runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "run {}\nstatus", read.display()).expect("write to the prompt");
    }
    let o = child.wait_with_output().expect("the prompt ends");
    let text = stdout(&o);
    let ran = text.find("note: written by run");
    // status answered after it, whatever the state at this point.
    let status = text
        .rfind("program running; pid=")
        .or_else(|| text.rfind("daemon manager not running"));
    assert!(
        matches!((ran, status), (Some(r), Some(s)) if r < s),
        "{text}{}",
        stderr(&o)
    );
    // A failing script fails the command (a cron job sees it).
    let bad = z.write("bad.py", "raise RuntimeError('no')\n");
    let o = z.zopectl(&["run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let o = z.zopectl(&["run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "usage: run <script> [args]\n");
    // help lists bin/instance's commands for a zope.conf.
    let o = z.zopectl(&["help"]);
    let listed = stdout(&o);
    let words: Vec<&str> = listed.split_whitespace().collect();
    for name in ["run", "debug", "console", "adduser"] {
        assert!(words.contains(&name), "{name}: {listed}");
    }
    // show prints the runner zopectl works out.
    let o = z.zopectl(&["show"]);
    let shown = stdout(&o);
    for want in [
        "zopectlsock'",
        "exitcodes:",
        "[0, 2]",
        "Zope2.Startup.serve",
        "zope.ini'",
    ] {
        assert!(shown.contains(want), "{want}: {shown}");
    }

    let o = z.zopectl(&["adduser", "bob", "secret"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("User bob created."), "{}", stdout(&o));
    let o = z.zopectl(&["adduser", "bob"]);
    assert_eq!(o.status.code(), Some(2));

    // `debug`: an interactive Python with `app`, here reading stdin.
    let mut debug = Command::new(z.dir.path().join("zopectl"))
        .current_dir(&home)
        .env("PATH", z.path_var())
        .args(["-C", "etc/zope.conf", "debug"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = debug.stdin.take().unwrap();
    stdin
        .write_all(b"print('debug sees', bytes(app.note.data).decode())\n")
        .unwrap();
    drop(stdin);
    let o = Bg(Some(debug)).wait();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("debug sees written by run"),
        "{}",
        stdout(&o)
    );

    // `console`: the program itself in the foreground, in zopectl's place.
    let console = Command::new(z.dir.path().join("zopectl"))
        .current_dir(&home)
        .env("PATH", z.path_var())
        .args(["-C", "etc/zope.conf", "console"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let console_pid = console.id() as i32;
    let console = Bg(Some(console));
    wait_for("the console's Zope to answer", || {
        get(z.port, "/", None).is_some_and(|(code, _)| code == 200)
    });
    let cmdline = std::fs::read(format!("/proc/{console_pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("Zope2.Startup.serve"),
        "zopectl was replaced by the program"
    );
    kill(console_pid, 15);
    let o = console.wait();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(15));

    // Started again, Zope serves what `run` wrote, and knows bob.
    let o = z.zopectl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = pid_in(&stdout(&o));
    wait_for("Zope to answer again", || get(z.port, "/", None).is_some());
    let (code, body) = get(z.port, "/note", None).expect("GET /note");
    assert_eq!((code, body.as_str()), (200, "written by run"));
    // "bob:secret"
    let (code, _) = get(z.port, "/manage_main", Some("Ym9iOnNlY3JldA==")).unwrap();
    assert_eq!(code, 200);
    let (code, _) = get(z.port, "/manage_main", Some("Ym9iOndyb25n")).unwrap();
    assert_eq!(code, 401);
    let o = z.zopectl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
    wait_for("Zope gone again", || !alive(pid));
}

#[test]
fn a_zeo_server_and_the_instance_run_as_one_site() {
    let z = Instance::new();
    let home = z.home();
    let zeo_port = free_port();
    std::fs::create_dir(z.dir.path().join("zeo")).unwrap();
    // The instance stores in ZEO, with `var $(ZEO_TMP)` as the recipe
    // writes it: it loads without ZEO_TMP exported. (No `client`: a
    // persistent cache would be locked by the running instance, and
    // `run` beside it could not open it.)
    let conf = home.join("etc/zope.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let start = text.find("<zodb_db main>").expect("zodb_db");
    let end = text.find("</zodb_db>").expect("zodb_db end") + "</zodb_db>".len();
    let zeoclient = format!(
        "<zodb_db main>\n  <zeoclient>\n    server 127.0.0.1:{zeo_port}\n    storage 1\n    \
         name zeostorage\n    var $(ZEO_TMP)\n  </zeoclient>\n  \
         mount-point /\n</zodb_db>"
    );
    std::fs::write(
        &conf,
        format!("{}{zeoclient}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    let d = z.dir.path().display();
    z.write(
        "zeo.conf",
        &format!(
            "<zeo>\n  address 127.0.0.1:{zeo_port}\n</zeo>\n\
             <filestorage 1>\n  path {d}/zeo/Data.fs\n</filestorage>\n"
        ),
    );
    let site = z.write(
        "site.conf",
        &format!(
            "<runner>\n  socket-name {d}/site.sock\n</runner>\n\
             <program zeo>\n  config {d}/zeo.conf\n  program {bin}/runzeo -C {d}/zeo.conf\n</program>\n\
             <program zope>\n  config {home}/etc/zope.conf\n</program>\n",
            bin = z.bin.display(),
            home = home.display(),
        ),
    );
    z.track(&z.dir.path().join("site.sock"));
    let site = site.to_str().unwrap();
    let o = z.ctl("zdctl", &["-C", site, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    let o = z.ctl("zdctl", &["-C", site, "start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("Zope over ZEO to answer", || {
        get(z.port, "/", None).is_some_and(|(code, _)| code == 200)
    });
    // One manager runs both.
    let info: serde_json::Value =
        serde_json::from_slice(&request(&z.dir.path().join("site.sock"), b"info\n")).expect("info");
    let nodes = info["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{info}");
    assert!(
        nodes.iter().all(|n| n["pid"].as_i64().unwrap_or(0) > 0),
        "{info}"
    );
    let zope = nodes.iter().find(|n| n["name"] == "zope").unwrap();
    let env = environ(zope["pid"].as_i64().unwrap() as i32);
    assert!(
        env.contains(&format!("INSTANCE_HOME={}", home.display())),
        "{env:?}"
    );

    // With ZEO, `run` works beside the running instance, which sees the
    // commit.
    let script = z.write("write.py", WRITE);
    let o = z.zopectl(&["run", script.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    wait_for("the instance to see the note", || {
        get(z.port, "/note", None)
            .is_some_and(|(code, body)| code == 200 && body == "written by run")
    });

    let o = z.ctl("zdctl", &["-C", site, "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = z.ctl("zdctl", &["-C", site, "status"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
}

/// A buildout part's layout (plone.recipe.zope2instance): `etc/wsgi.ini`
/// and a `bin/interpreter` written from zc.buildout's own template, no
/// virtualenv on PATH. zopectl serves wsgi.ini through the interpreter, as
/// bin/instance does, and `run` uses it too.
#[test]
fn a_buildout_parts_interpreter_and_wsgi_ini_are_found() {
    let z = Instance::at("parts/instance");
    let home = z.home();
    // bin/instance loads the buildout's .env: the program gets what
    // python-dotenv reads from it.
    let dotenv = z.write(
        ".env",
        "# site settings\nexport ZDRS_A=1\nZDRS_B = 'one ${ZDRS_A}'\n\
         ZDRS_C=\"two\\nlines\"\nZDRS_D=${ZDRS_A}/x #note\nZDRS_E=${ZDRS_UNSET:-dflt}\n",
    );
    std::fs::rename(home.join("etc/zope.ini"), home.join("etc/wsgi.ini")).unwrap();
    let python = z.bin.join("python");
    let o = Command::new(&python)
        .arg("-c")
        .arg(
            "import sys, os, zc.buildout.easy_install as ei\n\
             home = sys.argv[1]\n\
             path = ',\\n  '.join(repr(p) for p in sys.path if p)\n\
             text = ei.py_script_template % dict(python=sys.executable, path=path,\n\
                 initialization='', relative_paths_setup='')\n\
             os.makedirs(home + '/bin')\n\
             open(home + '/bin/interpreter', 'w').write(text)\n\
             os.chmod(home + '/bin/interpreter', 0o755)\n",
        )
        .arg(&home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    z.venv_on_path.set(false);

    let o = z.zopectl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = pid_in(&stdout(&o));
    wait_for("Zope to answer", || {
        get(z.port, "/", None).is_some_and(|(code, _)| code == 200)
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains(&format!(
            "{}/bin/interpreter -m Zope2.Startup.serve {}/etc/wsgi.ini",
            home.display(),
            home.display()
        )),
        "{cmdline}"
    );
    let o = Command::new(&python)
        .arg("-c")
        .arg(
            "import sys, dotenv\n\
             for k, v in dotenv.dotenv_values(sys.argv[1]).items(): print(f'{k}={v!r}')\n",
        )
        .arg(&dotenv)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let theirs = stdout(&o);
    let ours: String = environ(pid)
        .iter()
        .filter(|e| e.starts_with("ZDRS_"))
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            let v = v.replace('\n', "\\n");
            format!("{k}='{v}'\n")
        })
        .collect();
    assert_eq!(ours, theirs);
    let o = z.zopectl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
    wait_for("Zope gone", || !alive(pid));
    let script = z.write("write.py", WRITE);
    let script = script.to_str().unwrap();
    let o = z.zopectl(&["run", script, "one"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("argv ['{script}', 'one']")),
        "{}",
        stdout(&o)
    );
}

/// zdrun's records go to the runner's own `<eventlog>` only. A zope.conf
/// cannot hold one of its own any more (Zope's WSGI schema has none): an
/// old-style file is refused before anything starts.
#[test]
fn zdrun_keeps_out_of_zopes_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let old = dir.path().join("old.conf");
    std::fs::write(
        &old,
        format!(
            "instancehome {d}\n\
             <eventlog>\n  <logfile>\n    path {d}/event.log\n  </logfile>\n</eventlog>\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("zope.conf"), format!("instancehome {d}\n")).unwrap();
    let conf = dir.path().join("runner.conf");
    std::fs::write(
        &conf,
        format!(
            "%include zope.conf\n\
             <runner>\n  program sleep 100\n  \
             <eventlog>\n    <logfile>\n      path {d}/zdrun.log\n    </logfile>\n  </eventlog>\n\
             </runner>\n"
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let sock = dir.path().join("var/zopectlsock");
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let status = String::from_utf8_lossy(&request(&self.0, b"status\n")).into_owned();
            for (_, v) in status
                .lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| *k == "manager" || *k == "application")
            {
                if let Ok(pid) = v.parse::<i32>() {
                    kill(pid, 9);
                }
            }
        }
    }
    let _stop = Stop(sock.clone());
    let zdctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(dir.path())
            .arg("-C")
            .arg(&conf)
            .args(args)
            .output()
            .unwrap()
    };
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(dir.path())
        .arg("-C")
        .arg(&old)
        .arg("start")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("old.conf:2:"), "{}", stderr(&o));
    assert!(!sock.exists(), "nothing started for the old file");
    assert!(!dir.path().join("event.log").exists());
    let o = zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(sock.exists(), "the socket is $CLIENTHOME/zopectlsock");
    let o = zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let log = std::fs::read_to_string(dir.path().join("zdrun.log")).unwrap_or_default();
    assert!(log.contains("spawned process pid="), "{log}");
}
