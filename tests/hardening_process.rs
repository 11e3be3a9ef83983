//! What a program starts does not escape, and zdrun does not hang: orphans
//! come to zdrun, nothing outlives a stop or a SIGKILLed zdrun, a caller's
//! descriptors stay with the caller, SIGKILL after stop-timeout is not put
//! off by later commands, and neither a configuration file that cannot be
//! read nor a name server that never answers stalls the event loop.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::site::*;

/// The pid a script wrote to `name` in the site, once it is there.
fn pid_file(site: &Site, name: &str) -> i32 {
    let mut pid = 0;
    wait_for(name, || {
        pid = fs::read_to_string(site.path(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

fn ppid(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Kills the pids on drop, so a failing test leaves nothing behind.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &p in &self.0 {
            if p > 0 {
                kill(p, 9);
            }
        }
    }
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let t0 = Instant::now();
    while alive(pid) {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn orphans_of_a_daemonized_program_come_to_zdrun() {
    let site = Site::new();
    let program = script(
        &site,
        "orphan.sh",
        &format!(
            "(sleep 3100 & echo $! > {dir}/orphan.pid)\nexec sleep 3101",
            dir = site.dir.path().display()
        ),
    );
    site.config(&program, "", "");
    start(&site);
    let orphan = pid_file(&site, "orphan.pid");
    let _reap = Reap(vec![orphan]);
    let manager = site.manager_pid();
    wait_for("the orphan to be re-parented", || ppid(orphan) == manager);
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        gone_within(orphan, Duration::from_secs(5)),
        "orphan {orphan} outlived its program's stop"
    );
}

#[test]
fn a_setsid_grandchild_does_not_outlive_stop() {
    let site = Site::new();
    let program = script(
        &site,
        "setsid.sh",
        &format!(
            "setsid sleep 3102 & echo $! > {dir}/escaped.pid\nexec sleep 3103",
            dir = site.dir.path().display()
        ),
    );
    site.config(&program, "", "");
    start(&site);
    let escaped = pid_file(&site, "escaped.pid");
    let _reap = Reap(vec![escaped]);
    // It really left the program's session.
    wait_for("setsid to take effect", || {
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(escaped)))
            .is_ok_and(|s| s.as_raw() == escaped)
    });
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        gone_within(escaped, Duration::from_secs(5)),
        "setsid grandchild {escaped} outlived stop"
    );
}

#[test]
fn nothing_outlives_a_sigkilled_zdrun() {
    let site = Site::new();
    let dir = site.dir.path().display().to_string();
    let program = script(
        &site,
        "family.sh",
        &format!(
            "sleep 3001 & echo $! > {dir}/a.pid\n\
             sleep 3002 & echo $! > {dir}/b.pid\n\
             setsid sleep 3004 & echo $! > {dir}/c.pid\n\
             exec sleep 3003"
        ),
    );
    site.config(&program, "", "");
    let main = start(&site);
    let family: Vec<i32> = ["a.pid", "b.pid", "c.pid"]
        .iter()
        .map(|f| pid_file(&site, f))
        .chain([main])
        .collect();
    let _reap = Reap(family.clone());
    let manager = site.manager_pid();
    assert!(kill(manager, 9));
    for pid in family {
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "pid {pid} outlived the SIGKILLed zdrun"
        );
    }
}

#[test]
fn a_callers_open_descriptors_are_not_inherited() {
    let site = Site::new();
    site.config("sleep 3105", "", "");
    let conf = site.path("zd.conf");
    let held = site.path("held");
    // The caller leaves descriptor 7 open on a file, as `zdctl start 7>f`.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7>{held}; exec {zdctl} -C {conf} start",
            held = held.display(),
            zdctl = env!("CARGO_BIN_EXE_zdctl"),
            conf = conf.display()
        ))
        .output()
        .expect("sh runs");
    site.track(site.manager_pid());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = site.program_pid();
    let manager = site.manager_pid();
    let fds = |p: i32| -> Vec<(String, String)> {
        fs::read_dir(format!("/proc/{p}/fd"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let target = fs::read_link(e.path())
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        (e.file_name().to_string_lossy().into_owned(), target)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let program_fds = fds(pid);
    let mut numbers: Vec<&str> = program_fds.iter().map(|(n, _)| n.as_str()).collect();
    numbers.sort();
    assert_eq!(numbers, ["0", "1", "2"], "program fds: {program_fds:?}");
    let held_name = held.display().to_string();
    for (who, p) in [("zdrun", manager), ("program", pid)] {
        assert!(
            !fds(p).iter().any(|(_, t)| *t == held_name),
            "{who} holds the caller's descriptor: {:?}",
            fds(p)
        );
    }
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn restarts_do_not_put_off_the_sigkill_of_a_stop() {
    let site = Site::new();
    // A program that ignores SIGTERM (ignored signals stay so across exec).
    let program = script(&site, "deaf.sh", "trap '' TERM\nexec sleep 3106");
    site.config(&program, "  stop-timeout 2", "");
    let first = start(&site);
    let t0 = Instant::now();
    // A restart every 300 ms would push a re-armed SIGKILL off forever.
    while alive(first) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "pid {first} ignored SIGTERM and was never SIGKILLed"
        );
        site.request(b"restart\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "killed before stop-timeout"
    );
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_reload_that_cannot_read_its_files_leaves_zdrun_working() {
    let site = Site::new();
    site.config("sleep 3107", "", "%include extra.conf");
    fs::write(site.path("extra.conf"), "# nothing\n").expect("write include");
    let first = start(&site);
    // The include becomes a FIFO nobody writes: reading it would block.
    fs::remove_file(site.path("extra.conf")).expect("remove include");
    nix::unistd::mkfifo(
        &site.path("extra.conf"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let t0 = Instant::now();
    let reply = String::from_utf8_lossy(&site.request(b"reload\n")).into_owned();
    assert!(
        reply.starts_with("Reload failed"),
        "reload replied {reply:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Supervision carries on: status answers and a killed program returns.
    let t1 = Instant::now();
    assert_eq!(site.program_pid(), first);
    assert!(t1.elapsed() < Duration::from_millis(500), "status was slow");
    assert!(kill(first, 9));
    wait_for("a restart after the failed reload", || {
        let p = site.program_pid();
        p != 0 && p != first
    });
    fs::remove_file(site.path("extra.conf")).expect("remove fifo");
    fs::write(site.path("extra.conf"), "# nothing\n").expect("write include");
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A site whose storage server's address names a host that a name server
/// which never answers is asked about, in a mount and network namespace
/// of its own; zdrun runs in the foreground there.
#[test]
fn a_name_server_that_never_answers_does_not_stall_zdrun() {
    let site = Site::new();
    let dir = site.dir.path().display().to_string();
    fs::write(
        site.path("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:30 attempts:3\n",
    )
    .expect("write resolv.conf");
    fs::write(
        site.path("sink.py"),
        "import socket, os, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', 53))\n\
         open(sys.argv[1], 'w').write(str(os.getpid()))\n\
         while True:\n    s.recv(4096)\n",
    )
    .expect("write sink");
    fs::write(
        site.path("zeo.conf"),
        format!(
            "<zeo>\n  address zeo.never-answers.invalid:8100\n</zeo>\n\
             <filestorage 1>\n  path {dir}/Data.fs\n</filestorage>\n\
             <runner>\n  program sleep 3108\n</runner>\n"
        ),
    )
    .expect("write zeo.conf");
    fs::write(
        site.path("zd.conf"),
        format!(
            "<runner>\n  socket-name {sock}\n  daemon off\n</runner>\n\
             <program zeo>\n  config {dir}/zeo.conf\n</program>\n\
             <program web>\n  program sleep 3109\n</program>\n",
            sock = site.sock().display()
        ),
    )
    .expect("write site");
    let mut child = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "ip link set lo up && mount --bind {dir}/resolv.conf /etc/resolv.conf && \
             (timeout 120 python3 {dir}/sink.py {dir}/sink.pid &) && \
             exec {zdrun} -C {dir}/zd.conf",
            zdrun = env!("CARGO_BIN_EXE_zdrun"),
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare runs");
    site.track(child.id() as i32);
    let sink = pid_file(&site, "sink.pid");
    let _reap = Reap(vec![sink]);
    wait_for("the web node", || {
        info(&site)["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == "web" && n["pid"].is_i64()))
    });
    // For longer than the resolver's give-up, every status is quick.
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        let reply = site.request(b"status\n");
        worst = worst.max(t.elapsed());
        assert!(!reply.is_empty(), "no status reply");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worst < Duration::from_millis(500), "status took {worst:?}");
    let i = info(&site);
    let zeo = node(&i, "zeo");
    assert_eq!(zeo["ready"], false, "{zeo}");
    let reason = zeo["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot resolve"), "reason: {reason:?}");
    // A killed node is restarted at once, resolver or not.
    let web = node(&i, "web")["pid"].as_i64().unwrap_or(0) as i32;
    assert!(web > 0);
    let t = Instant::now();
    assert!(kill(web, 9));
    wait_for("web to be restarted", || {
        let p = node(&info(&site), "web")["pid"].as_i64().unwrap_or(0) as i32;
        p != 0 && p != web
    });
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "restart took {:?}",
        t.elapsed()
    );
    let reply = String::from_utf8_lossy(&site.request(b"stop\n")).into_owned();
    assert!(reply.starts_with("Sent SIGTERM"), "{reply}");
    let t = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        assert!(t.elapsed() < DEADLINE, "zdrun did not exit after stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The guard processes (comm `zdrun-guard`) whose parent is `manager`.
fn guards_of(manager: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| {
                    ppid(p) == manager
                        && fs::read_to_string(format!("/proc/{p}/comm"))
                            .is_ok_and(|c| c.trim() == "zdrun-guard")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_guard_is_replaced_and_supervision_goes_on() {
    let site = Site::new();
    site.config("sleep 3110", "", "");
    let first = start(&site);
    let manager = site.manager_pid();
    let guards = guards_of(manager);
    assert_eq!(guards.len(), 1, "guards: {guards:?}");
    // Signals for zdrun's process group do not reach the guard...
    assert!(kill(guards[0], 15));
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(guards[0]), "SIGTERM killed the guard");
    // ...but SIGKILL does: zdrun starts another.
    assert!(kill(guards[0], 9));
    wait_for("a new guard", || {
        let g = guards_of(manager);
        g.len() == 1 && g[0] != guards[0]
    });
    assert_eq!(site.program_pid(), first);
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("the guard to leave with zdrun", || {
        guards_of(manager).is_empty()
    });
}

#[test]
fn a_restart_right_after_a_spawn_is_not_lost() {
    let site = Site::new();
    // SIGTERM ends `sleep` at once; a stop that waits out stop-timeout
    // means the SIGTERM was lost between fork and exec.
    site.config("sleep 3111", "  stop-timeout 30", "");
    let mut pid = start(&site);
    for cycle in 0..150 {
        let t0 = Instant::now();
        let reply = site.request(b"restart\n");
        assert!(reply.starts_with(b"Sent SIGTERM"), "{reply:?}");
        // Restart again the moment the new pid shows, before it can exec.
        loop {
            let p = site.program_pid();
            if p != 0 && p != pid {
                pid = p;
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "cycle {cycle}: pid {pid} was not restarted (a lost SIGTERM)"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
