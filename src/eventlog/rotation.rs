//! When a log file rolls over and what its backups are called.
//!
//! The policies are the Python handlers ZConfig builds for `<logfile>`:
//! `max-size` + `old-files` is `RotatingFileHandler` (`path` → `path.1` →
//! … → `path.N` when a record would reach the size), `when` + `interval` +
//! `old-files` is `TimedRotatingFileHandler` (`path` → `path.2024-05-01`
//! etc., named for the period that ended; only the newest `old-files` are
//! kept). Rotation is checked when a record is written, never on a timer;
//! the file handler asks [`Rotation::due`] before each record and, when it
//! is, has [`Rotation::roll_over`] move the files before it opens `path`
//! again.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::format::{Timestamp, local_time};
use crate::config::LogFile;

/// A `<logfile>`'s rotation policy.
pub(super) enum Rotation {
    Never,
    /// `RotatingFileHandler(maxBytes=max, backupCount=backups)`.
    Size {
        max: u64,
        backups: u32,
    },
    /// `TimedRotatingFileHandler(when, interval, backupCount)`.
    Time(Timed),
}

impl Rotation {
    pub(super) fn new(f: &LogFile) -> Result<Rotation, String> {
        let backups = f.old_files.clamp(0, u32::MAX as i64) as u32;
        if !f.when.is_empty() {
            let when = When::parse(&f.when)?;
            return Ok(Rotation::Time(Timed {
                when,
                interval: f.interval.max(1),
                backups,
                rollover_at: 0,
            }));
        }
        if f.max_size > 0 {
            return Ok(Rotation::Size {
                max: f.max_size as u64,
                backups,
            });
        }
        Ok(Rotation::Never)
    }

    /// Start the first period of a time rotation for the file at `path`.
    pub(super) fn start(&mut self, path: &Path, now: i64) {
        if let Rotation::Time(t) = self {
            // As Python: the first period started when the file was last
            // written, so a stale file rolls over at the first record.
            let start = std::fs::metadata(path)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_secs() as i64);
            t.rollover_at = t.next_rollover(start);
        }
    }

    pub(super) fn rotates(&self) -> bool {
        !matches!(self, Rotation::Never)
    }

    /// Should `file` roll over before a record of `len` bytes is written?
    pub(super) fn due(&mut self, file: Option<&File>, len: u64, now: i64) -> bool {
        // Never a device or pipe (Python's bpo-45401), never an empty file.
        // The size is the file's, not ours: other writers may share it.
        let regular_size = || {
            file.and_then(|f| f.metadata().ok())
                .filter(|m| m.file_type().is_file())
                .map(|m| m.len())
        };
        match self {
            Rotation::Never => false,
            Rotation::Size { max, .. } => {
                regular_size().is_some_and(|size| size > 0 && size + len >= *max)
            }
            Rotation::Time(t) if now >= t.rollover_at => {
                let regular = regular_size().is_some();
                if !regular {
                    t.rollover_at = t.next_rollover(now);
                }
                regular
            }
            Rotation::Time(_) => false,
        }
    }

    /// Move `path` to its backup and drop the backups beyond the count;
    /// the caller then opens a new file at `path`.
    pub(super) fn roll_over(&mut self, path: &Path, now: i64) -> std::io::Result<()> {
        match self {
            Rotation::Never => {}
            Rotation::Size { backups, .. } => {
                rotate_numbered(path, *backups)?;
            }
            Rotation::Time(t) => {
                let to = t.backup_name(path, now);
                t.rollover_at = t.next_rollover(now);
                while t.rollover_at <= now {
                    t.rollover_at += t.period();
                }
                // A backup of that name is kept, not overwritten (two
                // rollovers in one period: a reopen, or a second writer).
                if !to.exists() && path.exists() {
                    std::fs::rename(path, &to)?;
                }
                t.remove_old_backups(path)?;
            }
        }
        Ok(())
    }
}

/// `path` with `suffix` appended to its last component.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `path.N-1` → `path.N`, …, `path` → `path.1` (the oldest is replaced).
fn rotate_numbered(path: &Path, backups: u32) -> std::io::Result<()> {
    if backups == 0 {
        // Python's handler then just reopens the same file.
        return Ok(());
    }
    let numbered = |i: u32| suffixed(path, &format!(".{i}"));
    for i in (1..backups).rev() {
        let from = numbered(i);
        if from.exists() {
            std::fs::rename(&from, numbered(i + 1))?;
        }
    }
    if path.exists() {
        std::fs::rename(path, numbered(1))?;
    }
    Ok(())
}

/// TimedRotatingFileHandler's `when`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum When {
    Seconds,
    Minutes,
    Hours,
    Days,
    Midnight,
    /// Monday is 0, as in Python.
    Weekday(u8),
}

impl When {
    fn parse(s: &str) -> Result<When, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "S" => When::Seconds,
            "M" => When::Minutes,
            "H" => When::Hours,
            "D" => When::Days,
            "MIDNIGHT" => When::Midnight,
            w if w.len() == 2 && w.starts_with('W') => match w.as_bytes()[1] {
                d @ b'0'..=b'6' => When::Weekday(d - b'0'),
                _ => return Err(format!("Invalid day specified for weekly rollover: {s}")),
            },
            _ => return Err(format!("Invalid rollover interval specified: {s}")),
        })
    }

    fn unit(self) -> i64 {
        match self {
            When::Seconds => 1,
            When::Minutes => 60,
            When::Hours => 3600,
            When::Days | When::Midnight => 86400,
            When::Weekday(_) => 7 * 86400,
        }
    }

    /// The backup suffix, as a strftime format and as a shape (`d` is a
    /// digit) to recognise backups by.
    fn suffix(self) -> (&'static str, &'static str) {
        match self {
            When::Seconds => ("%Y-%m-%d_%H-%M-%S", "dddd-dd-dd_dd-dd-dd"),
            When::Minutes => ("%Y-%m-%d_%H-%M", "dddd-dd-dd_dd-dd"),
            When::Hours => ("%Y-%m-%d_%H", "dddd-dd-dd_dd"),
            _ => ("%Y-%m-%d", "dddd-dd-dd"),
        }
    }
}

/// A time rotation and the end of its current period.
pub(super) struct Timed {
    when: When,
    interval: i64,
    backups: u32,
    /// When the current period ends (seconds since the epoch).
    rollover_at: i64,
}

impl Timed {
    fn period(&self) -> i64 {
        self.when.unit() * self.interval
    }

    /// The end of the period that contains `t`: `t + period`, or for
    /// `midnight`/`W0`–`W6` the local midnight(s) after `t`.
    fn next_rollover(&self, t: i64) -> i64 {
        let days = match self.when {
            When::Midnight => self.interval,
            When::Weekday(day) => {
                let today = (local_time(t).tm_wday + 6) % 7; // Monday is 0
                let wait = (i64::from(day) - i64::from(today)).rem_euclid(7);
                1 + wait + 7 * (self.interval - 1)
            }
            _ => return t + self.period(),
        };
        local_midnight_after(t, days)
    }

    /// `path.SUFFIX` naming the period that ends at `rollover_at`.
    fn backup_name(&self, path: &Path, now: i64) -> PathBuf {
        let mut start = self.rollover_at - self.period();
        // Python's correction when daylight saving time changed since.
        let dst_now = local_time(now).tm_isdst > 0;
        if dst_now != (local_time(start).tm_isdst > 0) {
            start += if dst_now { 3600 } else { -3600 };
        }
        let suffix = Timestamp::at(start, 0).strftime(self.when.suffix().0);
        suffixed(path, &format!(".{suffix}"))
    }

    /// Delete all but the newest `backups` backups of `path`.
    fn remove_old_backups(&self, path: &Path) -> std::io::Result<()> {
        if self.backups == 0 {
            return Ok(());
        }
        let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.", base.to_string_lossy());
        let shape = self.when.suffix().1;
        let mut found: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.strip_prefix(&prefix).is_some_and(|s| is_backup(s, shape)))
            .collect();
        found.sort();
        let excess = found.len().saturating_sub(self.backups as usize);
        for name in &found[..excess] {
            std::fs::remove_file(dir.join(name))?;
        }
        Ok(())
    }
}

/// Does `suffix` have `shape` (`d` a digit, other characters themselves),
/// optionally followed by `.ext` (a compressed backup)?
fn is_backup(suffix: &str, shape: &str) -> bool {
    let (stamp, rest) = suffix.split_at(shape.len().min(suffix.len()));
    stamp.len() == shape.len()
        && stamp.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
        && (rest.is_empty() || rest.starts_with('.'))
}

/// Local midnight `days` days after the day of `t` (DST-aware).
fn local_midnight_after(t: i64, days: i64) -> i64 {
    let mut tm = local_time(t);
    tm.tm_mday += days as nix::libc::c_int;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, initialised struct that mktime normalises.
    let at = unsafe { nix::libc::mktime(&mut tm) } as i64;
    if at > t { at } else { t + days * 86400 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::handlers::LogFileOut;
    use crate::eventlog::tests::{events_log, read, with_suffix};

    #[test]
    fn size_rotation_numbers_backups_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut logger) = events_log(
            dir.path(),
            serde_json::json!({"format": "%(message)s", "max-size": 100, "old-files": 3}),
        );
        // 10-byte records: 9 fit below 100 bytes, the 10th rolls over.
        for i in 0..30 {
            logger.info(&format!("record {i:02}"));
        }
        let files = [".3", ".2", ".1", ""].map(|s| with_suffix(&path, s));
        let mut all = String::new();
        for (f, len) in files.iter().zip([90, 90, 90, 30]) {
            let text = read(f);
            assert_eq!(text.len(), len, "{}: {text:?}", f.display());
            all.push_str(&text);
        }
        assert!(!with_suffix(&path, ".4").exists());
        let expected: String = (0..30).map(|i| format!("record {i:02}\n")).collect();
        assert_eq!(all, expected);
        // The oldest backup is dropped at the next rollover.
        for i in 30..40 {
            logger.info(&format!("record {i:02}"));
        }
        assert!(read(&files[0]).starts_with("record 09\n"));
        assert!(!with_suffix(&path, ".4").exists());
    }

    #[test]
    fn size_rotation_reopen_rolls_over_unless_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut logger) = events_log(
            dir.path(),
            serde_json::json!({"format": "%(message)s", "max-size": 1000, "old-files": 2}),
        );
        assert!(logger.reopen().is_empty());
        assert!(!with_suffix(&path, ".1").exists());
        logger.info("a");
        assert!(logger.reopen().is_empty());
        logger.info("b");
        assert_eq!(read(&with_suffix(&path, ".1")), "a\n");
        assert_eq!(read(&path), "b\n");
    }

    #[test]
    fn size_rotation_skips_devices() {
        let mut out = LogFileOut::new(
            PathBuf::from("/dev/null"),
            false,
            Rotation::Size { max: 1, backups: 1 },
            0,
        );
        out.write(b"x\n", 0).unwrap();
        let dev_null = File::options().append(true).open("/dev/null").unwrap();
        let mut rotation = Rotation::Size { max: 1, backups: 1 };
        assert!(!rotation.due(Some(&dev_null), 10, 0));
    }

    fn timed(when: When, interval: i64, backups: u32) -> Timed {
        Timed {
            when,
            interval,
            backups,
            rollover_at: 0,
        }
    }

    /// An open file at `path` rotated every `interval` `when`s, keeping
    /// `backups`, its first period starting at `start`.
    fn timed_file(path: &Path, when: When, interval: i64, backups: u32, start: i64) -> LogFileOut {
        let rotation = Rotation::Time(timed(when, interval, backups));
        let mut out = LogFileOut::new(path.to_path_buf(), false, rotation, start);
        out.open().unwrap();
        out
    }

    #[test]
    fn when_values() {
        assert_eq!(When::parse("s"), Ok(When::Seconds));
        assert_eq!(When::parse("midnight"), Ok(When::Midnight));
        assert_eq!(When::parse("W6"), Ok(When::Weekday(6)));
        assert_eq!(
            When::parse("W7"),
            Err("Invalid day specified for weekly rollover: W7".into())
        );
        assert_eq!(
            When::parse("X"),
            Err("Invalid rollover interval specified: X".into())
        );
    }

    #[test]
    fn next_rollover_times() {
        let t = 1_700_000_000;
        assert_eq!(timed(When::Seconds, 5, 1).next_rollover(t), t + 5);
        assert_eq!(timed(When::Minutes, 2, 1).next_rollover(t), t + 120);
        assert_eq!(timed(When::Hours, 1, 1).next_rollover(t), t + 3600);
        assert_eq!(timed(When::Days, 1, 1).next_rollover(t), t + 86400);
        for interval in [1, 3] {
            let at = timed(When::Midnight, interval, 1).next_rollover(t);
            let tm = local_time(at);
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
            let days = (at - t) as f64 / 86400.0;
            assert!(days > (interval - 1) as f64 && days <= interval as f64 + 0.05);
        }
        for day in 0..7u8 {
            let at = timed(When::Weekday(day), 1, 1).next_rollover(t);
            let tm = local_time(at);
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
            // The midnight that ends the named day (Monday is 0).
            assert_eq!((tm.tm_wday + 6) % 7, (i32::from(day) + 1) % 7);
            assert!(at > t && at - t <= 7 * 86400 + 3600);
        }
    }

    #[test]
    fn backups_are_recognised_by_shape() {
        let (_, shape) = When::Seconds.suffix();
        assert!(is_backup("2024-05-01_13-04-05", shape));
        assert!(is_backup("2024-05-01_13-04-05.gz", shape));
        assert!(!is_backup("2024-05-01_13-04", shape));
        assert!(!is_backup("2024-05-01_13-04-05x", shape));
        assert!(!is_backup("1", shape));
        assert!(is_backup("2024-05-01", When::Midnight.suffix().1));
    }

    #[test]
    fn time_rotation_names_the_ended_period_and_keeps_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let start = 1_700_000_000;
        let mut out = timed_file(&path, When::Seconds, 10, 2, start);
        // The backup of the period that started at `t`.
        let backup = |t: i64| {
            let stamp = Timestamp::at(t, 0).strftime("%Y-%m-%d_%H-%M-%S");
            with_suffix(&path, &format!(".{stamp}"))
        };
        // Four periods of 10 s, two records in each.
        for period in 0..4 {
            for k in 0..2 {
                let now = start + period * 10 + k * 4;
                out.write(format!("{period}.{k}\n").as_bytes(), now)
                    .unwrap();
            }
        }
        assert_eq!(read(&path), "3.0\n3.1\n");
        // Periods 1 and 2 are kept, named for their starts; period 0 is gone.
        assert_eq!(read(&backup(start + 10)), "1.0\n1.1\n");
        assert_eq!(read(&backup(start + 20)), "2.0\n2.1\n");
        assert!(!backup(start).exists());
        let names = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(names, 3);
    }

    #[test]
    fn time_rotation_after_a_gap_and_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let start = 1_700_000_000;
        let mut out = timed_file(&path, When::Hours, 1, 5, start);
        let backup = |t: i64| {
            let stamp = Timestamp::at(t, 0).strftime("%Y-%m-%d_%H");
            with_suffix(&path, &format!(".{stamp}"))
        };
        out.write(b"a\n", start).unwrap();
        // Hours later: one rollover, named for the first period.
        let later = start + 5 * 3600 + 7;
        out.write(b"b\n", later).unwrap();
        assert_eq!(read(&backup(start)), "a\n");
        assert_eq!(rollover_at(&out), later + 3600);
        // A reopen in the same period rolls over to the period's name;
        // another one in the same period keeps that backup intact.
        out.reopen(later + 1).unwrap();
        out.write(b"c\n", later + 2).unwrap();
        out.reopen(later + 3).unwrap();
        out.write(b"d\n", later + 4).unwrap();
        assert_eq!(read(&backup(later)), "b\n");
        assert_eq!(read(&path), "c\nd\n");
    }

    fn rollover_at(out: &LogFileOut) -> i64 {
        match out.rotation() {
            Rotation::Time(t) => t.rollover_at,
            _ => 0,
        }
    }
}
