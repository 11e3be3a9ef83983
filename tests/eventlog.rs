//! zdrun's event log under load: size and time rotation, and reopen after
//! an external rename (`zdctl reopen_transcript`, `zdctl logreopen`,
//! SIGUSR2 to zdrun), with no record lost or torn.
//!
//! The write loop is zdrun itself: a program that exits at once with
//! `backoff-limit 0` is restarted immediately, and every round logs
//! `spawned process pid=N` then `pid N: exit status 1`. When the test
//! creates `halt`, the next run stays up instead, ending the loop. Reading
//! every file in order, those lines must alternate with matching pids (a
//! lost line breaks the alternation) and there must be one spawn per run
//! counted by zdrun's `info` (a lost pair changes the count).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::site::*;

/// zdrun in the foreground (`daemon off` in the config); it and its
/// program are killed and reaped when dropped.
struct Zdrun {
    child: Child,
    sock: PathBuf,
}

impl Zdrun {
    fn start(site: &Site) -> Zdrun {
        let out = fs::File::create(site.path("zdrun.out")).expect("zdrun.out");
        let child = Command::new(env!("CARGO_BIN_EXE_zdrun"))
            .current_dir(site.dir.path())
            .arg("-C")
            .arg(site.path("zd.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("zdrun runs");
        let pid = child.id() as i32;
        site.track(pid);
        let zdrun = Zdrun {
            child,
            sock: site.sock(),
        };
        wait_for("zdrun to answer", || site.manager_pid() == pid);
        zdrun
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Zdrun {
    fn drop(&mut self) {
        let status = String::from_utf8_lossy(&request(&self.sock, b"status\n")).into_owned();
        let program = status
            .lines()
            .find_map(|l| l.strip_prefix("application="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if program > 0 {
            kill(program, 9);
        }
    }
}

/// A config whose program exits 1 after 20 ms (until `halt` exists) and
/// is restarted at once, with one `<logfile>` at `events.log` and
/// `logfile_keys` (indented lines). The pause keeps the loop from burning
/// through process ids, which other tests running at the same time use to
/// tell whether their processes are gone.
fn write_loop_config(site: &Site, logfile_keys: &str) -> PathBuf {
    let script = site.path("run.sh");
    let body = format!(
        "#!/bin/sh\n[ -e {} ] && exec sleep 1000\nsleep 0.02\nexit 1\n",
        site.path("halt").display()
    );
    fs::write(&script, body).expect("write script");
    let log = site.path("events.log");
    site.config(
        &format!("sh {}", script.display()),
        "  daemon off\n  backoff-limit 0",
        &format!(
            "<eventlog>\n  <logfile>\n    path {}\n{logfile_keys}\n  </logfile>\n</eventlog>",
            log.display()
        ),
    );
    log
}

/// End the write loop; the pid of the program left running and the
/// number of restarts zdrun counted.
fn halt(site: &Site) -> (String, u64) {
    fs::write(site.path("halt"), "").expect("create halt");
    let mut last = None;
    wait_for("a run that stays up", || {
        let info = site.request(b"info\n");
        let v: serde_json::Value = serde_json::from_slice(&info).unwrap_or_default();
        let pid = v["pid"].as_i64().unwrap_or(0);
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        last = Some((pid.to_string(), v["restarts"].as_u64().unwrap_or(0)));
        pid > 0 && comm.trim() == "sleep"
    });
    last.expect("info")
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", p.display()))
}

/// The messages of every record in `files` (oldest first), checking that
/// each record is whole: `------` then `DATE TIME LEVEL root message`.
fn messages(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let text = String::from_utf8(bytes).expect("UTF-8 log");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{}: torn last line",
            f.display()
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len().is_multiple_of(2),
            "{}: odd line count",
            f.display()
        );
        for pair in lines.chunks(2) {
            assert_eq!(pair[0], "------", "{}: {pair:?}", f.display());
            let words: Vec<&str> = pair[1].splitn(4, ' ').collect();
            let stamp_ok = words[0].len() == 19 && words[0].as_bytes()[10] == b'T';
            assert!(
                stamp_ok && words.len() == 4 && words[2] == "root",
                "{}: bad record {:?}",
                f.display(),
                pair[1]
            );
            assert!(["INFO", "DEBUG", "WARNING", "ERROR"].contains(&words[1]));
            out.push(words[3].to_string());
        }
    }
    out
}

/// Spawn and exit records alternate with matching pids, and there is
/// one spawn per run counted by zdrun; `last` is still running.
fn assert_no_record_lost(messages: &[String], (last, restarts): (String, u64)) {
    let mut running: Option<&str> = None;
    let mut spawns = 0u64;
    for (i, m) in messages.iter().enumerate() {
        if let Some(pid) = m.strip_prefix("spawned process pid=") {
            assert!(
                running.is_none(),
                "record {i}: {m:?} before {running:?} exited"
            );
            running = Some(pid);
            spawns += 1;
        } else if let Some((pid, _)) = m.strip_prefix("pid ").and_then(|r| r.split_once(':')) {
            assert_eq!(running.take(), Some(pid), "record {i}: {m:?}");
        }
    }
    assert_eq!(
        running,
        Some(last.as_str()),
        "the last spawn is the one running"
    );
    assert!(spawns > 10, "too few records to mean anything: {spawns}");
    assert_eq!(
        spawns,
        restarts + 1,
        "spawn records vs runs counted by zdrun"
    );
}

#[test]
fn size_rotation_numbers_backups_and_loses_no_line() {
    let site = Site::new();
    let log = write_loop_config(&site, "    max-size 4000\n    old-files 1000");
    let zdrun = Zdrun::start(&site);
    wait_for("five rollovers", || with_suffix(&log, ".5").exists());
    let end = halt(&site);
    let mut files = Vec::new();
    let mut n = 1;
    while with_suffix(&log, &format!(".{n}")).exists() {
        files.push(with_suffix(&log, &format!(".{n}")));
        n += 1;
    }
    for f in &files {
        let len = fs::metadata(f).expect("backup").len();
        assert!(len < 4000 && len > 3000, "{}: {len} bytes", f.display());
    }
    files.reverse();
    files.push(log);
    assert_no_record_lost(&messages(&files), end);
    drop(zdrun);
}

#[test]
fn size_rotation_keeps_old_files_backups() {
    let site = Site::new();
    let log = write_loop_config(&site, "    max-size 1000\n    old-files 2");
    let zdrun = Zdrun::start(&site);
    // Once `.2` is there, the next rollovers replace it.
    wait_for("a full set of backups", || with_suffix(&log, ".2").exists());
    let first = fs::read(with_suffix(&log, ".2")).unwrap_or_default();
    wait_for("the oldest backup to be replaced", || {
        fs::read(with_suffix(&log, ".2")).is_ok_and(|b| b != first)
    });
    halt(&site);
    assert!(!with_suffix(&log, ".3").exists());
    drop(zdrun);
}

#[test]
fn time_rotation_names_backups_by_period_and_loses_no_line() {
    let site = Site::new();
    let log = write_loop_config(&site, "    when S\n    old-files 1000");
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    let backups = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(site.dir.path())
            .expect("site dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().len() > log.to_string_lossy().len())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
            .collect();
        v.sort();
        v
    };
    let zdrun = Zdrun::start(&site);
    wait_for("three rollovers", || backups().len() >= 3);
    let end = halt(&site);
    let mut files = backups();
    for f in &files {
        let suffix = f.to_string_lossy()[log.to_string_lossy().len()..].to_string();
        let shape_ok = suffix.len() == ".YYYY-MM-DD_HH-MM-SS".len()
            && suffix
                .bytes()
                .zip(".dddd-dd-dd_dd-dd-dd".bytes())
                .all(|(c, s)| {
                    if s == b'd' {
                        c.is_ascii_digit()
                    } else {
                        c == s
                    }
                });
        assert!(shape_ok, "backup name {suffix:?}");
    }
    files.push(log);
    assert_no_record_lost(&messages(&files), end);
    drop(zdrun);
}

#[test]
fn reopen_after_rename_under_a_write_loop_loses_no_line() {
    let site = Site::new();
    let log = write_loop_config(&site, "");
    let zdrun = Zdrun::start(&site);
    let mut files = Vec::new();
    for round in 0..30 {
        wait_for("records in the log", || {
            fs::metadata(&log).is_ok_and(|m| m.len() > 0)
        });
        let moved = with_suffix(&log, &format!(".moved.{round:03}"));
        fs::rename(&log, &moved).expect("rename the log away");
        files.push(moved);
        match round % 3 {
            0 => {
                site.zdctl(&["reopen_transcript"]);
            }
            1 => {
                site.zdctl(&["logreopen"]);
            }
            _ => assert!(kill(zdrun.pid(), 12), "SIGUSR2 to zdrun"),
        }
        // The reopen creates the file again.
        wait_for("the log to be reopened", || log.exists());
    }
    let end = halt(&site);
    files.push(log);
    assert_no_record_lost(&messages(&files), end);
    drop(zdrun);
}
