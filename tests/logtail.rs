//! `zdctl logtail`, and `logtail -f` under writers that keep writing while
//! the file is rotated again and again (by rename and by copytruncate), cut
//! lines in two, or make the file come and go: every complete line comes
//! out once, in order, and no piece of a line comes out as a line.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::site::*;

/// zdaemon's notice, printed when the followed file was truncated.
const TRUNCATED: &str = "==> File truncated <==";

/// A running `zdctl logtail -f FILE`, its output line by line; killed on
/// drop.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

impl Tail {
    /// Start following `file`; its output is the test's to read.
    fn spawn(site: &Site, file: &Path) -> Tail {
        let child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(site.dir.path())
            .arg("-C")
            .arg(site.path("zd.conf"))
            .args(["logtail", "-f"])
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zdctl runs");
        Tail {
            child,
            lines: mpsc::channel().1,
            errors: mpsc::channel().1,
        }
    }

    /// Start following `file`, its output read line by line.
    fn start(site: &Site, file: &Path) -> Tail {
        let mut tail = Tail::spawn(site, file);
        let out = tail.child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            loop {
                let mut line = Vec::new();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // An unterminated last piece is shown as such.
                if line.pop() != Some(b'\n') {
                    line.extend_from_slice(b"<no newline>");
                }
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        tail.lines = lines;
        let err = tail.child.stderr.take().expect("piped");
        let (tx, errors) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        tail.errors = errors;
        tail
    }

    /// The next line printed; panics after [`DEADLINE`].
    fn line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("a line within the deadline")
    }

    /// Every line printed up to and including `last`.
    fn until(&self, last: &str) -> Vec<String> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line == last;
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!(
                    "{last:?} not printed; {} lines were, the last: {:?}",
                    seen.len(),
                    &seen[seen.len().saturating_sub(3)..]
                ),
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line on standard error; panics after [`DEADLINE`].
    fn error(&self) -> String {
        self.errors
            .recv_timeout(DEADLINE)
            .expect("an error line within the deadline")
    }

    /// Wait for zdctl to end; its exit status and (the rest of its)
    /// standard error.
    fn ended(&mut self) -> (Option<i32>, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                while let Ok(line) = self.errors.recv_timeout(DEADLINE) {
                    err.push_str(&line);
                    err.push('\n');
                }
                return (status.code(), err);
            }
            assert!(start.elapsed() < DEADLINE, "zdctl logtail -f did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site (for zdctl's `-C`) and a log file in it holding `ready`, with a
/// follower that has printed it.
fn follow(name: &str) -> (Site, std::path::PathBuf, Tail) {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let log = site.path(name);
    std::fs::write(&log, "ready\n").unwrap();
    let tail = Tail::start(&site, &log);
    assert_eq!(tail.line(), "ready", "the tail starts");
    (site, log, tail)
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
}

/// Write `line` and its newline in one write, as a logger does.
fn put(file: &mut File, line: &str) {
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The first difference between what was printed and what was written.
fn compare(seen: &[String], expected: &[String]) {
    if seen != expected {
        let first_bad = seen
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        panic!(
            "{} lines seen of {}; first difference at {first_bad}: seen {:?}, expected {:?}",
            seen.len(),
            expected.len(),
            &seen[first_bad.saturating_sub(2)..(first_bad + 3).min(seen.len())],
            &expected[first_bad.saturating_sub(2)..(first_bad + 3).min(expected.len())],
        );
    }
}

/// Copy the file aside, then empty it, as logrotate's copytruncate does.
fn copytruncate(log: &Path, copy: &Path) {
    std::fs::copy(log, copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn follows_a_busy_file_through_rotations_without_loss_or_repeats() {
    let (site, log, tail) = follow("busy.log");
    // The writer: numbered lines; every 200 lines the file is renamed away
    // and the writer goes on in a new file of the same name, after a few
    // more lines into the old one (as a program that reopens late does).
    const LINES: usize = 1000;
    let mut file = append(&log);
    let mut late = None;
    for i in 0..LINES {
        if i % 200 == 199 {
            std::fs::rename(&log, site.path(&format!("busy.log.{i}"))).unwrap();
            late = Some(5);
        }
        writeln!(file, "line {i}").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        if let Some(n) = late.as_mut() {
            *n -= 1;
            if *n == 0 {
                late = None;
                file = append(&log);
            }
        }
    }
    let expected: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    compare(&tail.until(&format!("line {}", LINES - 1)), &expected);
}

/// The files `pid` has open, by device and inode.
fn open_files(pid: i32) -> Vec<(u64, u64)> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::metadata(fd.ok()?.path()).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

fn id(file: &File) -> (u64, u64) {
    let m = file.metadata().unwrap();
    (m.dev(), m.ino())
}

#[test]
fn a_thousand_renames_without_a_pause_lose_no_line() {
    let (_site, log, tail) = follow("fast.log");
    let rotated = log.with_extension("log.1");
    // As Python's RotatingFileHandler does: a hundred lines, close, rename
    // over the previous backup, open a new file, with no pause. The rename
    // removes the previous backup: had the follower not opened that file
    // yet (it was not scheduled during two files' lifetimes), its lines
    // would be gone for anyone. Only in that case the writer waits until
    // the follower has it open (seen in /proc), so that the test counts
    // what the follower answers for: every line, once, in order.
    const ROTATIONS: usize = 1000;
    const PER_FILE: usize = 100;
    let mut n = 0;
    let mut file = append(&log);
    // The file at the backup name, and whether the follower has it.
    let mut backup: Option<((u64, u64), bool)> = None;
    let mut waits = 0;
    for _ in 0..ROTATIONS {
        for _ in 0..PER_FILE {
            put(&mut file, &format!("line {n}"));
            n += 1;
        }
        let this = id(&file);
        drop(file);
        let mut this_held = false;
        if let Some((old, false)) = backup {
            let start = Instant::now();
            for check in 0.. {
                let held = open_files(tail.pid());
                this_held = held.contains(&this);
                if held.contains(&old) {
                    break;
                }
                if check == 0 {
                    waits += 1;
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "the follower never opened {old:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::fs::rename(&log, &rotated).unwrap();
        backup = Some((this, this_held));
        file = append(&log);
    }
    for _ in 0..PER_FILE {
        put(&mut file, &format!("line {n}"));
        n += 1;
    }
    let expected: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    compare(&tail.until(&format!("line {}", n - 1)), &expected);
    eprintln!("the writer waited for the follower at {waits} of {ROTATIONS} rotations");
}

#[test]
fn a_thousand_renames_to_new_names_lose_no_line_without_any_wait() {
    let (site, log, tail) = follow("dated.log");
    // Each file renamed to a name of its own (as logrotate's dateext or
    // savelog do): every file stays somewhere, and the follower finds
    // those it was too late to see at the name where they went.
    const ROTATIONS: usize = 1000;
    const PER_FILE: usize = 100;
    let mut n = 0;
    let mut file = append(&log);
    for r in 0..ROTATIONS {
        for _ in 0..PER_FILE {
            put(&mut file, &format!("line {n}"));
            n += 1;
        }
        drop(file);
        std::fs::rename(&log, site.path(&format!("dated.log.{r}"))).unwrap();
        file = append(&log);
    }
    for _ in 0..PER_FILE {
        put(&mut file, &format!("line {n}"));
        n += 1;
    }
    let expected: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    compare(&tail.until(&format!("line {}", n - 1)), &expected);
}

#[test]
fn a_symbolic_link_is_followed_to_the_file_it_leads_to() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let real = site.path("real");
    std::fs::create_dir(&real).unwrap();
    let log = real.join("app.log");
    std::fs::write(&log, "ready\n").unwrap();
    let link = site.path("app.log");
    std::os::unix::fs::symlink(&log, &link).unwrap();
    let tail = Tail::start(&site, &link);
    assert_eq!(tail.line(), "ready");
    // The file is rotated where it is, not where the link is.
    let mut n = 0;
    let mut file = append(&log);
    for r in 0..200 {
        for _ in 0..10 {
            put(&mut file, &format!("line {n}"));
            n += 1;
        }
        drop(file);
        std::fs::rename(&log, real.join(format!("app.log.{r}"))).unwrap();
        file = append(&log);
    }
    put(&mut file, "last");
    let expected: Vec<String> = (0..n)
        .map(|i| format!("line {i}"))
        .chain(["last".to_string()])
        .collect();
    compare(&tail.until("last"), &expected);
    // The link pointed at another file: that one is followed.
    let other = real.join("other.log");
    std::fs::write(&other, "other\n").unwrap();
    let new_link = site.path("app.log.new");
    std::os::unix::fs::symlink(&other, &new_link).unwrap();
    std::fs::rename(&new_link, &link).unwrap();
    assert_eq!(tail.line(), "other");
}

#[test]
fn copytruncates_lose_no_line_the_follower_could_read() {
    let (site, log, tail) = follow("copied.log");
    // Before each copytruncate the follower has printed all there is: the
    // lines it could not have read (written after its last read, emptied
    // away by the truncation) are then none, and every line must come out.
    const ROUNDS: usize = 50;
    const PER_ROUND: usize = 100;
    let mut file = append(&log);
    let mut n = 0;
    let mut seen = Vec::new();
    for round in 0..=ROUNDS {
        for _ in 0..PER_ROUND {
            put(&mut file, &format!("line {n}"));
            n += 1;
        }
        seen.extend(tail.until(&format!("line {}", n - 1)));
        if round < ROUNDS {
            copytruncate(&log, &site.path("copied.log.1"));
        }
    }
    let markers = seen.iter().filter(|l| *l == TRUNCATED).count();
    assert_eq!(markers, ROUNDS, "one notice per truncation");
    seen.retain(|l| l != TRUNCATED);
    let expected: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    compare(&seen, &expected);
}

#[test]
fn fast_copytruncates_print_whole_lines_in_order() {
    let (site, log, tail) = follow("rapid.log");
    // No pause: what the writer adds between the follower's last read and
    // a truncation is only in the copy. What is printed must still be
    // whole lines, in order, none twice, and all after the last truncation.
    // Lines of 16 bytes from offset 0 never straddle a page, so the
    // follower never reads half of one (a half line read just before a
    // truncation cannot be told from a line the truncation cut).
    const ROUNDS: usize = 50;
    const PER_ROUND: usize = 100;
    let line = |n: usize| format!("line {n:07} ok");
    assert_eq!(line(0).len() + 1, 16);
    copytruncate(&log, &site.path("rapid.log.0"));
    assert_eq!(tail.line(), TRUNCATED);
    let mut file = append(&log);
    let mut n = 0;
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            put(&mut file, &line(n));
            n += 1;
        }
        copytruncate(&log, &site.path("rapid.log.1"));
    }
    let after = n;
    for _ in 0..PER_ROUND {
        put(&mut file, &line(n));
        n += 1;
    }
    let seen = tail.until(&line(n - 1));
    let mut numbers = Vec::new();
    for line in seen.iter().filter(|l| *l != TRUNCATED) {
        let number = line
            .strip_prefix("line ")
            .and_then(|l| l.strip_suffix(" ok"))
            .filter(|d| d.len() == 7)
            .and_then(|d| d.parse::<usize>().ok());
        numbers.push(number.unwrap_or_else(|| panic!("not a whole line: {line:?}")));
    }
    if let Some(w) = numbers.windows(2).find(|w| w[0] >= w[1]) {
        panic!("line {} printed after line {}", w[1], w[0]);
    }
    eprintln!(
        "{} of {n} lines printed, {} truncations noticed",
        numbers.len(),
        seen.iter().filter(|l| *l == TRUNCATED).count()
    );
    let tail_end: Vec<usize> = numbers.iter().copied().filter(|&i| i >= after).collect();
    assert_eq!(
        tail_end,
        (after..n).collect::<Vec<_>>(),
        "every line after the last truncation ({} lines printed of {n})",
        numbers.len()
    );
}

#[test]
fn a_line_written_in_pieces_comes_out_whole() {
    let (site, log, tail) = follow("torn.log");
    let mut file = append(&log);
    // The follower has read the first piece once the line written with it
    // is printed; the piece alone must not be.
    file.write_all(b"one\nthe first ").unwrap();
    assert_eq!(tail.line(), "one");
    file.write_all(b"line, whole\n").unwrap();
    assert_eq!(tail.line(), "the first line, whole");

    // Rotated by rename between the pieces: the writer ends the line in
    // the old file, then opens the new one.
    file.write_all(b"two\nthe second ").unwrap();
    assert_eq!(tail.line(), "two");
    std::fs::rename(&log, site.path("torn.log.1")).unwrap();
    file.write_all(b"line, whole\n").unwrap();
    let mut file = append(&log);
    put(&mut file, "in the new file");
    assert_eq!(tail.line(), "the second line, whole");
    assert_eq!(tail.line(), "in the new file");

    // Copied and truncated between the pieces: the rest starts the file.
    file.write_all(b"three\nthe third ").unwrap();
    assert_eq!(tail.line(), "three");
    copytruncate(&log, &site.path("torn.log.2"));
    file.write_all(b"line, whole\n").unwrap();
    assert_eq!(tail.line(), TRUNCATED);
    assert_eq!(tail.line(), "the third line, whole");

    // A last line without its newline, in a file then removed and
    // replaced: it is that file's end, printed before the new file.
    file.write_all(b"four\nno newline at the end").unwrap();
    assert_eq!(tail.line(), "four");
    drop(file);
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "five\n").unwrap();
    assert_eq!(tail.line(), "five");
    assert_eq!(tail.line(), "no newline at the end");
}

#[test]
fn a_file_that_is_not_there_yet_or_goes_away_is_waited_for() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let log = site.path("later.log");
    let tail = Tail::start(&site, &log);
    // The wait is announced on standard error, not in the log's output.
    let err = tail.error();
    assert!(
        err.contains("No such file or directory") && err.contains("later.log"),
        "{err}"
    );
    std::fs::write(&log, "first\nsecond\n").unwrap();
    assert_eq!(tail.line(), "first");
    assert_eq!(tail.line(), "second");
    // Removed, then created anew: read from its start.
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "third\n").unwrap();
    assert_eq!(tail.line(), "third");
    // Renamed away, another file there for a while, then renamed back:
    // read on from where it was, not again from its start.
    let kept = site.path("later.log.kept");
    std::fs::rename(&log, &kept).unwrap();
    std::fs::write(&log, "fourth\n").unwrap();
    assert_eq!(tail.line(), "fourth");
    std::fs::rename(&kept, &log).unwrap();
    put(&mut append(&log), "fifth");
    assert_eq!(tail.line(), "fifth");
    // Removed with its directory, which comes back: followed again.
    let dir = site.path("sub");
    std::fs::create_dir(&dir).unwrap();
    let nested = dir.join("app.log");
    std::fs::write(&nested, "a\n").unwrap();
    let nested_tail = Tail::start(&site, &nested);
    assert_eq!(nested_tail.line(), "a");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(&nested, "b\n").unwrap();
    assert_eq!(nested_tail.line(), "b");
    // And a directory replaced by another one.
    std::fs::rename(&dir, site.path("sub.old")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(&nested, "c\n").unwrap();
    assert_eq!(nested_tail.line(), "c");
}

#[test]
fn without_f_the_last_lines_are_printed_and_zdctl_returns() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let log = site.path("short.log");
    let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, format!("{text}unfinished")).unwrap();
    let o = site.zdctl(&["logtail", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let expected: String = (21..30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stdout(&o), format!("{expected}unfinished"));
    // With -f the unfinished line waits for its end.
    let tail = Tail::start(&site, &log);
    for i in 21..30 {
        assert_eq!(tail.line(), format!("line {i}"));
    }
    append(&log).write_all(b" now\n").unwrap();
    assert_eq!(tail.line(), "unfinished now");
}

#[test]
fn closing_the_output_or_sigint_ends_the_follower_quietly() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let log = site.path("quiet.log");
    std::fs::write(&log, "ready\n").unwrap();

    // The reader goes away while nothing is written: noticed at once.
    let mut tail = Tail::spawn(&site, &log);
    let mut out = tail.child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    out.read_exact(&mut ready).unwrap();
    drop(out);
    let (code, err) = tail.ended();
    assert_eq!((code, err.as_str()), (Some(0), ""));

    // The reader goes away while lines keep coming.
    let mut tail = Tail::spawn(&site, &log);
    let mut out = tail.child.stdout.take().unwrap();
    out.read_exact(&mut ready).unwrap();
    drop(out);
    let mut file = append(&log);
    for i in 0..1000 {
        put(&mut file, &format!("line {i}"));
    }
    let (code, err) = tail.ended();
    assert_eq!((code, err.as_str()), (Some(0), ""));

    // Ctrl-C: a newline, as zdaemon prints, and status 0.
    let mut tail = Tail::start(&site, &log);
    assert_eq!(tail.until("line 999").len(), 10);
    assert!(kill(tail.pid(), 2));
    assert_eq!(tail.line(), "");
    let (code, err) = tail.ended();
    assert_eq!((code, err.as_str()), (Some(0), ""));
}

/// Times `pid` went to sleep of its own accord.
fn wake_ups(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process exists");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a count of context switches")
}

#[test]
fn an_idle_follower_sleeps() {
    let (_site, log, tail) = follow("idle.log");
    // Nothing happens for two seconds: the follower wakes up for its
    // once-a-second re-check only, where a poller would wake ten times.
    let before = wake_ups(tail.pid());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let woke = wake_ups(tail.pid()) - before;
    let seconds = t0.elapsed().as_secs_f64();
    assert!(
        (woke as f64) <= seconds + 2.0,
        "{woke} wake-ups in {seconds:.1} s"
    );
    // And it is still there when something does happen.
    put(&mut append(&log), "still here");
    assert_eq!(tail.line(), "still here");
}
