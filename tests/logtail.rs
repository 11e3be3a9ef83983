//! `zdctl logtail -f` under a writer that keeps writing while the file is
//! rotated again and again: every line comes out once, in order.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::site::*;

#[test]
fn follows_a_busy_file_through_rotations_without_loss_or_repeats() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let log = site.path("busy.log");
    std::fs::write(&log, "ready\n").unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .args(["logtail", "-f"])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("zdctl runs");
    let out = tail.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(rx.recv_timeout(DEADLINE).expect("the tail starts"), "ready");
    // The writer: numbered lines; every 200 lines the file is renamed away
    // and the writer goes on in a new file of the same name, after a few
    // more lines into the old one (as a program that reopens late does).
    // Paced so that rotations are a second apart: a follower polls, and
    // like tail -F it cannot see a file that came and went between polls.
    const LINES: usize = 1000;
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut late = None;
    for i in 0..LINES {
        if i % 200 == 199 {
            std::fs::rename(&log, site.path(&format!("busy.log.{i}"))).unwrap();
            late = Some(5);
        }
        writeln!(file, "line {i}").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        if let Some(n) = late.as_mut() {
            *n -= 1;
            if *n == 0 {
                late = None;
                file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)
                    .unwrap();
            }
        }
    }
    let start = Instant::now();
    let mut seen = Vec::with_capacity(LINES);
    while seen.len() < LINES {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let expected: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    if seen != expected {
        let first_bad = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        panic!(
            "{} lines seen of {LINES}; first difference at {first_bad}: {:?}",
            seen.len(),
            &seen[first_bad.saturating_sub(2)..(first_bad + 3).min(seen.len())]
        );
    }
}
