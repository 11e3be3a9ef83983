//! A large site: zdrun keeps answering while it starts thousands of
//! programs, and zdctl waits for them all without taking a busy manager
//! for a dead one. (How fast is bench/site's business; this checks the
//! behaviour, with bounds loose enough for a loaded machine.)

mod common;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::site::*;
use serde_json::Value;

const NODES: usize = 2000;

/// A zdctl in the background, killed when dropped.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn running(info: &Value) -> Vec<i64> {
    info["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|n| n["state"] == "running")
                .filter_map(|n| n["pid"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_site_of_thousands_answers_while_it_starts_and_stops() {
    let site = Site::new();
    let mut text = format!(
        "<runner>\n  socket-name {}\n</runner>\n",
        site.sock().display()
    );
    for i in 0..NODES {
        text.push_str(&format!(
            "<program n{i:04}>\n  program sleep 1000\n</program>\n"
        ));
    }
    fs::write(site.path("zd.conf"), text).expect("write config");
    let out = site.path("start.out");
    let start = Bg(Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .args(["-C", "zd.conf", "start"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("start.out"))
        .stderr(Stdio::null())
        .spawn()
        .expect("zdctl runs"));
    let mut start = start;
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());

    // While the programs start, every status request is answered, and
    // soon.
    let mut worst = Duration::ZERO;
    let mut answers = 0;
    let t0 = Instant::now();
    let code = loop {
        let asked = Instant::now();
        let reply = site.request(b"status\n");
        worst = worst.max(asked.elapsed());
        assert!(
            String::from_utf8_lossy(&reply).contains("manager="),
            "no answer after {answers}: {reply:?}"
        );
        answers += 1;
        if let Some(s) = start.0.try_wait().expect("try_wait") {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "zdctl start hangs");
        std::thread::sleep(Duration::from_millis(5));
    };
    let printed = fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        worst < Duration::from_millis(500),
        "a status took {worst:?} while the site started ({answers} answers)"
    );
    assert_eq!(
        printed.matches(": daemon process started, pid=").count(),
        NODES,
        "{}",
        &printed[printed.len().saturating_sub(500)..]
    );
    assert!(!printed.contains("not running"), "{printed}");
    let pids = running(&info(&site));
    assert_eq!(pids.len(), NODES);
    // Nothing is on its way up or down any more.
    assert_eq!(site.request(b"unsettled\n"), b"0\n");
    // Whichever of zdrun's threads started a program, it runs with no
    // signal blocked or ignored (zdrun's own mask and defaults).
    for &p in &pids {
        let status = fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        for field in ["SigBlk:", "SigIgn:"] {
            let value = status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .map(str::trim);
            assert!(
                matches!(value, Some(v) if v.bytes().all(|b| b == b'0')),
                "pid {p}: {field} {value:?}"
            );
        }
    }

    // Status of them all, and a reload that changes nothing.
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o).lines().count(), NODES);
    let o = site.zdctl(&["reload"]);
    assert_eq!(
        stdout(&o),
        "Reloaded: added none; removed none; changed none\n"
    );
    assert_eq!(running(&info(&site)), pids);

    let manager = site.manager_pid();
    let o = site.zdctl(&["stop"]);
    assert!(
        stdout(&o).ends_with("daemon process stopped\n"),
        "{}",
        stdout(&o)
    );
    wait_for("zdrun gone", || !alive(manager));
    assert!(pids.iter().all(|&p| !alive(p as i32)));
}
