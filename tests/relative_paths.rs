//! Relative paths in a file are taken from the file's directory: the
//! shipped examples run the same from `/`, from another directory and
//! from their own. Each runs from a copy in a temporary directory, so the
//! checkout's `var/` stays clean.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `examples/quickstart` under a temporary directory (as
/// `TMP/qs`), with a sibling directory `TMP/elsewhere` to run from. The
/// managers it sees are stopped on drop.
struct Copy {
    root: tempfile::TempDir,
    managers: std::cell::RefCell<Vec<i32>>,
}

impl Copy {
    fn quickstart() -> Copy {
        let root = tempfile::tempdir().expect("temp dir");
        let qs = root.path().join("qs");
        std::fs::create_dir_all(qs.join("var")).expect("mkdir");
        std::fs::create_dir(root.path().join("elsewhere")).expect("mkdir");
        let example = repo().join("examples/quickstart");
        for f in ["site.conf", "zdaemon.conf", "node", "ticker"] {
            std::fs::copy(example.join(f), qs.join(f)).expect("copy the example");
        }
        Copy {
            root,
            managers: Default::default(),
        }
    }

    fn qs(&self, name: &str) -> PathBuf {
        self.root.path().join("qs").join(name)
    }

    /// zdctl -C CONFIG ARGS, run in `cwd`.
    fn zdctl(&self, cwd: &Path, config: &str, args: &[&str], sock: &Path) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(cwd)
            .arg("-C")
            .arg(config)
            .args(args)
            .output()
            .expect("zdctl runs");
        let m = manager(sock);
        if m != 0 && !self.managers.borrow().contains(&m) {
            self.managers.borrow_mut().push(m);
        }
        out
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        common::site::stop_managers(&self.managers.borrow());
    }
}

fn manager(sock: &Path) -> i32 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(DEADLINE));
    let _ = s.write_all(b"status\n");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix("manager="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn said(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_quickstart_site_runs_from_any_directory() {
    let c = Copy::quickstart();
    let sock = c.qs("var/site.sock");
    let config = c.qs("site.conf").display().to_string();
    // Started from /, looked at from a sibling directory with a relative
    // path, stopped from the site's own directory.
    let o = c.zdctl(Path::new("/"), &config, &["start"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    for node in ["store", "web1", "web2"] {
        assert!(
            stdout(&o).contains(&format!("{node}: daemon process started")),
            "{}",
            said(&o)
        );
    }
    let elsewhere = c.root.path().join("elsewhere");
    let o = c.zdctl(&elsewhere, "../qs/site.conf", &["status"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(
        stdout(&o).matches("program running").count(),
        3,
        "{}",
        said(&o)
    );
    // The files the site names are in its own var/: transcripts, the
    // event log, and what the store's relative argument made.
    wait_for("the web1 transcript", || {
        std::fs::read_to_string(c.qs("var/web1.log"))
            .is_ok_and(|t| t.contains("web1") && t.contains("hello from zdaemon-rs"))
    });
    assert!(c.qs("var/store.ready").exists(), "the store's ready file");
    assert!(c.qs("var/site.log").exists(), "the event log");
    let o = c.zdctl(&c.qs(""), "site.conf", &["stop"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let o = c.zdctl(Path::new("/"), &config, &["status"], &sock);
    assert_eq!(o.status.code(), Some(3), "{}", said(&o));
}

#[test]
fn the_quickstart_single_program_runs_from_any_directory() {
    let c = Copy::quickstart();
    let sock = c.qs("zdsock");
    let config = c.qs("zdaemon.conf").display().to_string();
    let o = c.zdctl(Path::new("/"), &config, &["start"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        stdout(&o).contains("daemon process started"),
        "{}",
        said(&o)
    );
    let elsewhere = c.root.path().join("elsewhere");
    let o = c.zdctl(&elsewhere, "../qs/zdaemon.conf", &["status"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        stdout(&o).starts_with("program running; pid="),
        "{}",
        said(&o)
    );
    wait_for("the transcript", || {
        std::fs::read_to_string(c.qs("transcript.log")).is_ok_and(|t| t.contains("ticker"))
    });
    assert!(c.qs("zdrun.log").exists(), "the event log");
    let o = c.zdctl(&elsewhere, "../qs/zdaemon.conf", &["stop"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        stdout(&o).contains("daemon process stopped"),
        "{}",
        said(&o)
    );
}

#[test]
fn every_shipped_config_loads_from_the_root_directory() {
    // `show` reads the whole model, whose path checks are made from the
    // file's directory; the quickstart also passes `check` (the ZEO
    // example's programs need its venv, see examples/zeo/setup).
    let files = [
        "examples/quickstart/site.conf",
        "examples/quickstart/zdaemon.conf",
        "examples/zeo/site.conf",
        "examples/zeo/zeo.conf",
        "examples/zeo/client.conf",
        "etc/zdaemon.conf",
        "etc/zeo.conf",
        "etc/zope.conf",
        "packaging/site.conf",
    ];
    for f in files {
        let path = repo().join(f);
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_zdctl"))
                .current_dir("/")
                .arg("-C")
                .arg(&path)
                .args(args)
                .output()
                .expect("zdctl runs")
        };
        let o = run(&["show"]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", said(&o));
        if f.starts_with("examples/quickstart") {
            let o = run(&["check"]);
            assert_eq!(o.status.code(), Some(0), "{f}: {}", said(&o));
        }
    }
}

#[test]
fn paths_from_the_command_line_stay_with_the_current_directory() {
    // -t is the caller's: relative to where zdctl runs, as in zdaemon.
    let c = Copy::quickstart();
    let sock = c.qs("zdsock");
    let elsewhere = c.root.path().join("elsewhere");
    let o = c.zdctl(
        &elsewhere,
        "../qs/zdaemon.conf",
        &["-t", "mine.log", "start"],
        &sock,
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    wait_for("the transcript named by -t", || {
        std::fs::read_to_string(elsewhere.join("mine.log")).is_ok_and(|t| t.contains("ticker"))
    });
    let o = c.zdctl(&elsewhere, "../qs/zdaemon.conf", &["stop"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
}

#[test]
fn the_zeo_example_runs_from_the_root_directory() {
    // A copy of examples/zeo as its README sets it up (venv linked to a
    // Python with ZEO), on a free port, started and stopped from /.
    let python = common::oracle_python();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .expect("the venv of the oracle's python");
    assert!(
        venv.join("bin/runzeo").exists(),
        "no runzeo in {}",
        venv.display()
    );
    let c = Copy::quickstart();
    let zeo = c.root.path().join("zeo");
    std::fs::create_dir_all(zeo.join("var")).expect("mkdir");
    let example = repo().join("examples/zeo");
    for f in [
        "site.conf",
        "zeo.conf",
        "client.conf",
        "client.py",
        "check.py",
    ] {
        std::fs::copy(example.join(f), zeo.join(f)).expect("copy the example");
    }
    std::os::unix::fs::symlink(venv, zeo.join("venv")).expect("link the venv");
    let port = common::site::free_port();
    let status = common::site::free_port();
    let instance = std::fs::read_to_string(example.join("instance.conf"))
        .expect("instance.conf")
        .replace(
            "%define ADDRESS 127.0.0.1:8100",
            &format!("%define ADDRESS 127.0.0.1:{port}"),
        )
        .replace("%define INTERVAL 1", "%define INTERVAL 0.05")
        .replace(
            "%define STATUS1 127.0.0.1:8101",
            &format!("%define STATUS1 127.0.0.1:{status}"),
        );
    assert!(instance.contains(&format!(":{port}")), "{instance}");
    std::fs::write(zeo.join("instance.conf"), instance).expect("write instance.conf");
    let sock = zeo.join("var/zdsock");
    let config = zeo.join("site.conf").display().to_string();
    let o = c.zdctl(Path::new("/"), &config, &["start"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(
        stdout(&o).matches("daemon process started").count(),
        3,
        "{}",
        said(&o)
    );
    // The clients commit through the server: every path they and runzeo
    // use is the example's own.
    wait_for("a client's acknowledged commits", || {
        std::fs::read_to_string(zeo.join("var/client1.acks")).is_ok_and(|a| a.lines().count() >= 2)
    });
    assert!(zeo.join("var/Data.fs").exists());
    let o = c.zdctl(Path::new("/"), &config, &["stop"], &sock);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let check = Command::new(&python)
        .current_dir("/")
        .arg(zeo.join("check.py"))
        .arg(zeo.join("var/Data.fs"))
        .arg(zeo.join("var/client1.acks"))
        .output()
        .expect("check.py runs");
    assert!(check.status.success(), "{}", said(&check));
}

/// The ZEO example's zeo.conf names its storage and pid file relative to
/// itself: `check` of the site reads them from there, whatever the
/// current directory (here one with no `var` of its own, and the
/// repository's root).
#[test]
fn the_zeo_example_checks_from_any_directory() {
    let python = common::oracle_python();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .expect("the venv of the oracle's python");
    let root = tempfile::tempdir().expect("tempdir");
    let zeo = root.path().join("zeo");
    std::fs::create_dir_all(zeo.join("var")).expect("mkdir");
    let example = repo().join("examples/zeo");
    for f in [
        "site.conf",
        "zeo.conf",
        "client.conf",
        "instance.conf",
        "client.py",
    ] {
        std::fs::copy(example.join(f), zeo.join(f)).expect("copy the example");
    }
    std::os::unix::fs::symlink(venv, zeo.join("venv")).expect("link the venv");
    let site = zeo.join("site.conf");
    for cwd in [root.path(), repo().as_path()] {
        let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(cwd)
            .arg("-C")
            .arg(&site)
            .arg("check")
            .output()
            .expect("zdctl runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "from {}: {}{}",
            cwd.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
