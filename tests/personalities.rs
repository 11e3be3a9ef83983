//! zeoctl and zopectl: the classic ZEO instance layout driven by zeoctl
//! against the real runzeo, a zope.conf read by zopectl, and actions
//! defined by the configuration.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::oracle_python;
use common::site::*;

/// `name` as a link to our zdctl inside the site, as packages install it.
fn personality(site: &Site, name: &str) -> PathBuf {
    let link = site.path(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zdctl"), &link).expect("link");
    link
}

fn run(site: &Site, prog: &Path, args: &[&str]) -> Output {
    Command::new(prog)
        .current_dir(site.dir.path())
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn zeoctl_runs_a_classic_zeo_instance_with_runzeo() {
    let python = oracle_python();
    let bin = python.parent().expect("venv bin").to_path_buf();
    assert!(bin.join("runzeo").exists(), "runzeo next to {python:?}");
    let site = Site::new();
    std::fs::create_dir(site.path("var")).unwrap();
    std::fs::create_dir(site.path("log")).unwrap();
    let port = free_port();
    let conf = site.path("zd.conf");
    std::fs::write(
        &conf,
        format!(
            "%define INSTANCE {instance}\n\
             %define BIN {bin}\n\
             \n\
             <zeo>\n  address 127.0.0.1:{port}\n  read-only false\n</zeo>\n\
             \n\
             <filestorage 1>\n  path $INSTANCE/var/Data.fs\n</filestorage>\n\
             \n\
             <eventlog>\n  level info\n  <logfile>\n    path $INSTANCE/log/zeo.log\n  </logfile>\n</eventlog>\n\
             \n\
             <runner>\n  program $BIN/runzeo -C $INSTANCE/zd.conf\n  socket-name {sock}\n  \
             backoff-limit 10\n  exit-codes 0, 2\n  logfile $INSTANCE/log/zeo.log\n  \
             transcript $INSTANCE/log/transcript.log\n</runner>\n",
            instance = site.dir.path().display(),
            bin = bin.display(),
            sock = site.sock().display(),
        ),
    )
    .unwrap();
    let zeoctl = personality(&site, "zeoctl");
    let conf = conf.to_str().unwrap();

    let o = run(&site, &zeoctl, &["-C", conf, "status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(3));

    let o = run(&site, &zeoctl, &["-C", conf, "start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = site.program_pid();
    assert!(pid != 0);
    assert_eq!(
        undot(&stdout(&o)),
        format!("\ndaemon process started, pid={pid}\n")
    );
    let o = run(&site, &zeoctl, &["-C", conf, "status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    // It is runzeo, and it serves the storage.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("runzeo"));
    wait_for("runzeo to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // The runner's logfile is runzeo's log: logtail reads it.
    wait_for("zeo.log", || {
        std::fs::read_to_string(site.path("log/zeo.log")).is_ok_and(|l| l.contains("listening"))
    });
    // Its last lines are runzeo's: the connections that tested it ready
    // (zdrun's and ours above) come after "listening".
    let o = run(&site, &zeoctl, &["-C", conf, "logtail"]);
    assert!(stdout(&o).contains(" INFO ZEO."), "{}", stdout(&o));

    let o = run(&site, &zeoctl, &["-C", conf, "stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    wait_for("runzeo gone", || !alive(pid));
    wait_for("manager gone", || site.manager_pid() == 0);
    let o = run(&site, &zeoctl, &["-C", conf, "status"]);
    assert_eq!(o.status.code(), Some(3));
    // Usage errors speak of zeoctl.
    let o = run(&site, &zeoctl, &["-C", conf, "-b", "x", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).ends_with("For help, use zeoctl -h\n"),
        "{}",
        stderr(&o)
    );
}

fn zope_conf(site: &Site) -> PathBuf {
    let conf = site.path("zope.conf");
    std::fs::write(
        &conf,
        format!(
            "%define INSTANCE {instance}\n\
             instancehome $INSTANCE\n\
             debug-mode off\n\
             <environment>\n  ZOPE_HOME $INSTANCE\n</environment>\n\
             <zodb_db main>\n  <zeoclient>\n    server localhost:8100\n    storage 1\n    \
             name zeostorage\n    var $INSTANCE\n    cache-size 20MB\n  </zeoclient>\n  \
             mount-point /\n</zodb_db>\n",
            instance = site.dir.path().display(),
        ),
    )
    .unwrap();
    conf
}

/// A runner config with a site-specific command: Zope refuses `<command>`
/// in its zope.conf, so such commands live beside it.
fn command_conf(site: &Site) -> PathBuf {
    let conf = site.path("commands.conf");
    std::fs::write(
        &conf,
        format!(
            "<runner>\n  program sleep 100\n</runner>\n\
             <environment>\n  ZOPE_HOME {instance}\n</environment>\n\
             <command debug>\n  program sh {instance}/debug.sh\n  \
             description Run the instance's interactive shell.\n  \
             <environment>\n    DEBUG_MODE on\n  </environment>\n</command>\n",
            instance = site.dir.path().display(),
        ),
    )
    .unwrap();
    conf
}

#[test]
fn zopectl_reads_a_zope_conf() {
    let site = Site::new();
    let conf = zope_conf(&site);
    let zopectl = personality(&site, "zopectl");
    let conf = conf.to_str().unwrap();
    let o = run(&site, &zopectl, &["-C", conf, "check"]);
    assert_eq!(stdout(&o), format!("{conf}: OK (zope configuration)\n"));
    let o = run(&site, &zopectl, &["-C", conf, "show", "--json", "--all"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let db = &v["databases"][0];
    assert_eq!(db["mount-points"][0], "/", "{v}");
    let storage = &db["storage"];
    assert_eq!(storage["type"], "zeoclient", "{v}");
    assert_eq!(storage["server"][0], "localhost:8100");
    assert_eq!(storage["cache-size"], 20 << 20);
    // zopectl finds the instance's config as Zope's does.
    let o = Command::new(&zopectl)
        .current_dir(site.dir.path())
        .env("CONFIG_FILE", conf)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), format!("{conf}: OK (zope configuration)\n"));
}

#[test]
fn a_user_defined_command_runs_with_its_arguments() {
    let site = Site::new();
    let conf = command_conf(&site);
    std::fs::write(
        site.path("debug.sh"),
        format!(
            "echo \"args: $*\" > {out}\necho \"env: $ZOPE_HOME $DEBUG_MODE\" >> {out}\nexit 3\n",
            out = site.path("debug.out").display()
        ),
    )
    .unwrap();
    let zopectl = personality(&site, "zopectl");
    let conf = conf.to_str().unwrap();
    let o = run(&site, &zopectl, &["-C", conf, "debug", "-x", "two words"]);
    assert_eq!(o.status.code(), Some(3), "the command's status is ours");
    let out = std::fs::read_to_string(site.path("debug.out")).unwrap();
    assert_eq!(
        out,
        format!(
            "args: -x two words\nenv: {} on\n",
            site.dir.path().display()
        )
    );
    let o = run(&site, &zopectl, &["-C", conf, "help", "debug"]);
    assert_eq!(
        stdout(&o),
        "debug -- Run the instance's interactive shell.\n"
    );
    let o = run(&site, &zopectl, &["-C", conf, "help"]);
    assert!(stdout(&o).split_whitespace().any(|w| w == "debug"));
}
