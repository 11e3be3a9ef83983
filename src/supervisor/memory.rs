//! Memory limits: a node's resident memory (optionally summed over its
//! descendants) read from /proc at an interval; over the limit, the node
//! is restarted gracefully (SIGTERM, stop-timeout, SIGKILL, start).

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::node::Node;
use crate::eventlog::Logger;

/// A node's memory watch.
#[derive(Default)]
pub struct MemWatch {
    /// When the next check is due (only while a limited program runs).
    pub next: Option<Instant>,
    /// Resident memory at the last check, in bytes.
    pub rss: Option<u64>,
    /// Restarts for memory.
    pub restarts: u64,
}

/// Resident memory of a process, in bytes.
fn rss_of(pid: Pid) -> Option<u64> {
    crate::report::rss_of(i64::from(pid.as_raw()))
}

/// A process and all its descendants (through each thread's children).
fn tree(pid: Pid) -> Vec<Pid> {
    let mut out = vec![pid];
    let mut seen = std::collections::HashSet::from([pid]);
    let mut k = 0;
    // Bounded: a fork bomb must not keep the loop here.
    while k < out.len() && out.len() < 10_000 {
        let p = out[k];
        k += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                for c in text.split_ascii_whitespace().filter_map(|w| w.parse().ok()) {
                    let c = Pid::from_raw(c);
                    if seen.insert(c) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// Resident memory of the program (and its descendants: `cumulative`).
pub fn resident(pid: Pid, cumulative: bool) -> Option<u64> {
    if cumulative {
        let pids = tree(pid);
        let own = rss_of(pid)?;
        Some(own + pids[1..].iter().filter_map(|&p| rss_of(p)).sum::<u64>())
    } else {
        rss_of(pid)
    }
}

/// `bytes` as people write sizes: `812.4 MB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} bytes")
}

impl Node {
    /// A run started: its first check is one interval away.
    pub(super) fn watch_memory(&mut self, now: Instant) {
        self.mem.rss = None;
        self.mem.next = self
            .s
            .memory
            .as_ref()
            .map(|m| now + Duration::from_secs(m.interval_secs));
    }

    /// The check is due: why, with the figure, if the program is over its
    /// limit and must be restarted (logged; the hook gets the same words).
    pub(super) fn check_memory(&mut self, now: Instant, log: &mut Logger) -> Option<String> {
        self.mem.next = None;
        let (Some(pid), Some(limit)) = (self.pid, self.s.memory.clone()) else {
            return None;
        };
        self.mem.next = Some(now + Duration::from_secs(limit.interval_secs));
        let rss = resident(pid, limit.cumulative)?;
        self.mem.rss = Some(rss);
        if rss <= limit.bytes || self.killing || self.stop_wanted {
            return None;
        }
        self.mem.restarts += 1;
        // Not a crash: the start limit counts the program's own ends.
        self.policy.uncounted = true;
        let why = format!(
            "pid {pid} uses {} ({rss} bytes) of resident memory{}, over its \
             memory-limit of {} ({} bytes)",
            human(rss),
            if limit.cumulative {
                " with its descendants"
            } else {
                ""
            },
            human(limit.bytes),
            limit.bytes
        );
        log.warning(&self.tag(&format!("{why}; restarting")));
        Some(why)
    }
}
