//! Restart policies beside zdaemon's backoff: an exponential delay with a
//! cap and jitter, and a start-rate limit that gives up (`fatal`) after
//! too many starts within a window.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::node::{Node, Verdict};
use crate::eventlog::Logger;

/// A node's restart-policy state.
#[derive(Default)]
pub struct PolicyState {
    /// Starts within the start-limit window (only kept with a limit).
    starts: VecDeque<Instant>,
    /// Exponential delays in a row (runs shorter than the cap).
    step: u32,
    /// The exponential delay chosen last, in seconds.
    current_delay: Option<f64>,
    /// Why the node gave up, when the start limit made it.
    pub fatal_reason: Option<String>,
    /// The next start is a restart for memory: not counted.
    pub uncounted: bool,
}

impl PolicyState {
    /// An admin's start or restart: a new count.
    pub fn reset(&mut self) {
        self.starts.clear();
        self.step = 0;
        self.current_delay = None;
        self.fatal_reason = None;
        self.uncounted = false;
    }

    fn prune(&mut self, window: Duration, now: Instant) {
        while self
            .starts
            .front()
            .is_some_and(|&t| now.duration_since(t) >= window)
        {
            self.starts.pop_front();
        }
    }
}

/// Status figures of a node's memory limit and restart policy. Each is
/// left out where it says nothing (no limit; zdaemon's backoff, not
/// backing off), so a node configured as zdaemon's reads as before.
#[derive(serde::Serialize)]
pub struct LimitsInfo {
    /// Absent: zdaemon's backoff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<&'static str>,
    /// The delay before the pending (or last) restart, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_delay: Option<f64>,
    /// Starts within the start-limit window, with a start limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_in_window: Option<usize>,
    /// `[burst, interval seconds]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_limit: Option<(u32, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    /// Resident memory at the last check, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<u64>,
    /// Restarts for memory, with a memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_restarts: Option<u64>,
}

/// A number in [0, 1) that differs from call to call.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Node {
    /// A run was started: count it in the start-limit window.
    pub(super) fn count_start(&mut self, now: Instant) {
        if std::mem::take(&mut self.policy.uncounted) {
            return;
        }
        if let Some((_, secs)) = self.s.restart.start_limit {
            self.policy.prune(Duration::from_secs(secs), now);
            self.policy.starts.push_back(now);
        }
    }

    /// The run ended on its own: give up if restarting it would make more
    /// starts within the window than the limit allows.
    pub(super) fn start_limit_hit(&mut self, msg: &str, log: &mut Logger) -> Option<Verdict> {
        let (burst, secs) = self.s.restart.start_limit?;
        self.policy.prune(Duration::from_secs(secs), Instant::now());
        let n = self.policy.starts.len();
        if n < burst as usize {
            return None;
        }
        let why = format!(
            "started {n} times within {secs} seconds (start-limit-burst {burst}, \
             start-limit-interval {secs})"
        );
        log.info(msg);
        log.critical(&self.tag(&format!("{why}; quit")));
        self.policy.fatal_reason = Some(why);
        self.end("fatal");
        Some(Verdict::End(1))
    }

    /// The exponential policy's delay before the next start: doubled for
    /// each run in a row shorter than the cap, at most the cap, less a
    /// random share (the jitter).
    pub(super) fn exponential_delay(&mut self, log: &mut Logger) {
        let p = &self.s.restart;
        let up = self
            .lasttime
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default()
            .as_secs_f64();
        if up >= p.delay_max {
            self.policy.step = 0;
        }
        self.policy.step = self.policy.step.saturating_add(1);
        let doubled = p.delay * 2f64.powi(self.policy.step.min(64) as i32 - 1);
        let capped = doubled.min(p.delay_max);
        let delay = capped * (1.0 - p.jitter * random_fraction());
        self.policy.current_delay = Some(delay);
        self.backoff = i64::from(self.policy.step);
        log.info(&self.tag(&format!(
            "sleep {delay:.3} to avoid rapid restarts (exponential, step {})",
            self.policy.step
        )));
        self.delay = Some(Instant::now() + Duration::from_secs_f64(delay));
    }

    /// A reload changed this node's memory limit or restart policy (and
    /// at most what else reload applies in place: it has checked that):
    /// switch to them without a restart, the next memory check one new
    /// interval away.
    pub(super) fn retune(&mut self, new: &crate::settings::NodeSettings, log: &mut Logger) {
        self.s.memory = new.memory.clone();
        self.s.restart = new.restart.clone();
        if self.pid.is_some() {
            self.watch_memory(Instant::now());
        }
        log.info(&self.tag("memory limit and restart policy updated; not restarted"));
    }

    pub(super) fn limits_info(&self, now: Instant) -> LimitsInfo {
        let p = &self.s.restart;
        let restart_delay = if p.exponential {
            self.policy.current_delay
        } else {
            (self.backoff > 0).then_some(self.backoff as f64)
        };
        LimitsInfo {
            restart_policy: p.exponential.then(|| p.name()),
            restart_delay,
            starts_in_window: p.start_limit.map(|(_, secs)| {
                self.policy
                    .starts
                    .iter()
                    .filter(|&&t| now.duration_since(t) < Duration::from_secs(secs))
                    .count()
            }),
            start_limit: p.start_limit,
            memory_limit: self.s.memory.as_ref().map(|m| m.bytes),
            rss: self.mem.rss,
            memory_restarts: (self.s.memory.is_some() || self.mem.restarts > 0)
                .then_some(self.mem.restarts),
        }
    }
}
