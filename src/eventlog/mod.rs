//! zdrun's own event log: the `<eventlog>` of the configuration, written in
//! the ZConfig formats (`------` then `time LEVEL name message` by default).
//!
//! Theory of operation. [`Logger`] is what the supervisor calls; each of its
//! calls becomes one `tracing` event (with the Python level number as the
//! `levelno` field) dispatched to this module's own [`Subscriber`], which
//! formats the record once per handler and writes it synchronously, on the
//! thread that logs. zdrun runs short-lived worker threads (a reload
//! reading the files, name lookups), but all its logging happens on the
//! main thread, so the log needs no thread of its own and has nothing to
//! wake up for while idle. (No `tracing-subscriber` formatter and no
//! `tracing-appender` worker thread: a thread would not survive the
//! daemonizing fork, and the formats are Python's, not tracing's.)
//!
//! One concern a file: this one holds the [`Logger`] API, the levels and
//! the subscriber that hands each record to every handler; `format` turns
//! a record into text (timestamps, local time, Python's `%(name)s`
//! formats); `handlers` writes it (log files, syslog, the last-resort
//! output); `rotation` decides when a log file rolls over and names and
//! prunes its backups.
//!
//! Without an `<eventlog>`, WARNING and above go bare to a fallback (stderr,
//! or the transcript in daemon mode), as Python's last-resort handler does.

mod format;
mod handlers;
mod rotation;

use std::fs::File;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, span};

use crate::config::EventLog;
use format::Timestamp;
use handlers::Sink;

pub const DEBUG: i64 = 10;
pub const INFO: i64 = 20;
pub const WARNING: i64 = 30;
pub const ERROR: i64 = 40;
pub const CRITICAL: i64 = 50;

/// The `tracing` target of zdrun's records.
const TARGET: &str = "zdrun";

pub struct Logger {
    /// The subscriber every record is dispatched to.
    dispatch: Dispatch,
    records: Arc<Records>,
    level: i64,
    has_sinks: bool,
    /// Errors met while opening files, to report once logging works.
    pub open_errors: Vec<String>,
}

impl Logger {
    /// A logger for `log`, or a bare WARNING-and-above logger without one.
    pub fn new(log: Option<&EventLog>) -> Logger {
        let mut open_errors = Vec::new();
        let mut sinks = Vec::new();
        let level = log.map_or(WARNING, |l| l.level.0);
        let now = Timestamp::now().secs;
        for h in log.map(|l| l.handlers.as_slice()).unwrap_or_default() {
            let (sink, error) = Sink::open(h, now);
            sinks.extend(sink);
            open_errors.extend(error);
        }
        let has_sinks = !sinks.is_empty();
        let records = Arc::new(Records(Mutex::new(Inner {
            level,
            sinks,
            fallback: None,
        })));
        Logger {
            dispatch: Dispatch::new(Arc::clone(&records)),
            records,
            level,
            has_sinks,
            open_errors,
        }
    }

    /// Where WARNING+ go when there is no `<eventlog>`; `None` means stderr.
    pub fn set_fallback(&mut self, file: Option<File>) {
        self.records.lock().fallback = file;
    }

    pub fn has_sinks(&self) -> bool {
        self.has_sinks
    }

    pub fn enabled(&self, level: i64) -> bool {
        level >= self.level
    }

    /// The `tracing` dispatcher writing to this log, for code that logs
    /// with `tracing`'s macros (e.g. under `dispatcher::with_default`).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    pub fn log(&mut self, level: i64, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || match level {
            ERROR.. => {
                tracing::event!(target: TARGET, Level::ERROR, levelno = level, message = msg)
            }
            WARNING.. => {
                tracing::event!(target: TARGET, Level::WARN, levelno = level, message = msg)
            }
            INFO.. => tracing::event!(target: TARGET, Level::INFO, levelno = level, message = msg),
            DEBUG.. => {
                tracing::event!(target: TARGET, Level::DEBUG, levelno = level, message = msg)
            }
            _ => tracing::event!(target: TARGET, Level::TRACE, levelno = level, message = msg),
        });
    }

    /// Reopen every file by name (after an external rotation), or roll a
    /// rotating one over; returns the failures.
    pub fn reopen(&mut self) -> Vec<String> {
        let now = Timestamp::now().secs;
        let mut inner = self.records.lock();
        inner
            .sinks
            .iter_mut()
            .filter_map(|sink| sink.reopen(now).err())
            .collect()
    }

    pub fn debug(&mut self, msg: &str) {
        self.log(DEBUG, msg)
    }
    pub fn info(&mut self, msg: &str) {
        self.log(INFO, msg)
    }
    pub fn warning(&mut self, msg: &str) {
        self.log(WARNING, msg)
    }
    pub fn error(&mut self, msg: &str) {
        self.log(ERROR, msg)
    }
    pub fn critical(&mut self, msg: &str) {
        self.log(CRITICAL, msg)
    }
}

/// The subscriber: the handlers and the fallback, behind a lock that is
/// never contended (only zdrun's main thread logs) but makes it `Sync`
/// for tracing.
struct Records(Mutex<Inner>);

struct Inner {
    level: i64,
    sinks: Vec<Sink>,
    fallback: Option<File>,
}

impl Records {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while writing leaves nothing half-done worth refusing.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn emit(&mut self, level: i64, msg: &str) {
        if self.sinks.is_empty() {
            handlers::last_resort(self.fallback.as_mut(), level, msg);
            return;
        }
        if level < self.level {
            return;
        }
        let now = Timestamp::now();
        for sink in &mut self.sinks {
            sink.emit(&now, level, msg);
        }
    }
}

/// The fields of one of our events.
#[derive(Default)]
struct Fields {
    levelno: Option<i64>,
    message: String,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "levelno" {
            self.levelno = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.message, "{value:?}");
        }
    }
}

/// Python's level number for a `tracing` level, for events that do not
/// carry `levelno` (those not sent through [`Logger`]).
fn python_level(level: &Level) -> i64 {
    match *level {
        Level::ERROR => ERROR,
        Level::WARN => WARNING,
        Level::INFO => INFO,
        Level::DEBUG => DEBUG,
        _ => 5,
    }
}

impl Subscriber for Records {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        // Levels are Python's numbers, filtered in `event`.
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = fields
            .levelno
            .unwrap_or_else(|| python_level(event.metadata().level()));
        self.lock().emit(level, &fields.message);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    pub(super) fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    pub(super) fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", p.display()))
    }

    /// An `<eventlog>` at `level` with one `<logfile>` of `handler` keys.
    pub(super) fn eventlog(level: i64, handler: serde_json::Value) -> EventLog {
        let mut h = handler;
        h["type"] = "logfile".into();
        serde_json::from_value(serde_json::json!({"level": level, "handlers": [h]})).unwrap()
    }

    /// A logger at INFO writing `dir/events.log` with the other
    /// `<logfile>` keys in `keys`, and that path.
    pub(super) fn events_log(dir: &Path, mut keys: serde_json::Value) -> (PathBuf, Logger) {
        let path = dir.join("events.log");
        keys["path"] = serde_json::json!(path);
        (path, Logger::new(Some(&eventlog(INFO, keys))))
    }

    #[test]
    fn records_go_through_tracing_with_python_levels() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut logger) = events_log(
            dir.path(),
            serde_json::json!({"format": "%(levelname)s %(message)s"}),
        );
        assert!(logger.open_errors.is_empty());
        assert!(logger.has_sinks());
        assert!(!logger.enabled(DEBUG) && logger.enabled(INFO));
        logger.debug("not written");
        logger.info("started");
        logger.log(25, "between");
        logger.critical("two\nlines");
        // Events from tracing's own macros land here too.
        tracing::dispatcher::with_default(logger.dispatch(), || tracing::warn!("from tracing"));
        assert_eq!(
            read(&path),
            "INFO started\nLevel 25 between\nCRITICAL two\nlines\nWARNING from tracing\n"
        );
    }

    #[test]
    fn without_eventlog_warnings_go_bare_to_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript");
        let mut logger = Logger::new(None);
        assert!(!logger.has_sinks());
        logger.set_fallback(Some(File::create(&path).unwrap()));
        logger.info("daemon manager started");
        logger.warning("Unlinking stale socket /x; sleep 1");
        logger.critical("restarting too frequently; quit");
        assert_eq!(
            read(&path),
            "Unlinking stale socket /x; sleep 1\nrestarting too frequently; quit\n"
        );
    }
}
