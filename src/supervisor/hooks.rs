//! Event hooks: a node's `event-hook` command, run on the node's events
//! (started, ready, exited unexpectedly, gave up, restarted for health or
//! memory, reloaded) with the event in its environment.
//!
//! zdrun's loop never waits for a hook: the hook is a child in a process
//! group of its own, reaped with the programs, killed at its timeout; its
//! output goes to an unnamed temporary file that is copied to the event
//! log when it ends (no pipe to poll, no thread). At most one hook runs
//! per node; events that come meanwhile wait in a short queue, in order.
//!
//! Every event is also counted, hook or not: the counts are the node's
//! restarts by cause in `status --json` and `zdctl metrics`.

use std::collections::VecDeque;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::node::Node;
use crate::eventlog::Logger;

/// Events waiting for a node's running hook: beyond this the oldest go
/// (a crash loop must not grow zdrun without bound).
const QUEUE_LIMIT: usize = 16;
/// The most of a hook's output copied to the event log, per run.
const OUTPUT_LIMIT: u64 = 16 * 1024;

/// A node event a hook is told about (`ZDRUN_EVENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The program was spawned.
    Started,
    /// The program became ready (start test passed, address answers).
    Ready,
    /// The program ended without being asked to, and not with one of its
    /// exit codes.
    Exited,
    /// zdrun gave up on the node (`fatal`).
    Fatal,
    /// Restarted because its health check failed.
    HealthRestart,
    /// Restarted because it used more memory than its limit.
    MemoryRestart,
    /// A reload changed the node's settings.
    Reloaded,
}

impl Event {
    const ALL: [Event; 7] = [
        Event::Started,
        Event::Ready,
        Event::Exited,
        Event::Fatal,
        Event::HealthRestart,
        Event::MemoryRestart,
        Event::Reloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Ready => "ready",
            Event::Exited => "exited",
            Event::Fatal => "fatal",
            Event::HealthRestart => "health-restart",
            Event::MemoryRestart => "memory-restart",
            Event::Reloaded => "reloaded",
        }
    }

    fn index(self) -> usize {
        Event::ALL.iter().position(|&e| e == self).unwrap_or(0)
    }
}

/// Restarts by cause, as `status --json` and the metrics show them.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Causes {
    /// The program ended by itself and was started again.
    pub crash: u64,
    pub health: u64,
    pub memory: u64,
    /// `restart` (the command, or a reload that changed the node).
    pub manual: u64,
}

/// One event as the hook will see it.
struct Queued {
    event: Event,
    pid: Option<i32>,
    status: Option<i32>,
    signal: Option<String>,
    reason: Option<String>,
    count: u64,
    at: SystemTime,
}

struct Running {
    pid: Pid,
    event: Event,
    /// When it is killed; `None` once it was.
    deadline: Option<Instant>,
    output: Option<std::fs::File>,
}

/// A node's events: counts, and its hook's queue and run.
#[derive(Default)]
pub struct Hooks {
    counts: [u64; Event::ALL.len()],
    pub causes: Causes,
    queue: VecDeque<Queued>,
    running: Option<Running>,
    /// The pid of the last run, for the events that follow its end.
    last_pid: Option<i32>,
}

impl Hooks {
    /// Is `pid` this node's running hook?
    pub fn owns(&self, pid: Pid) -> bool {
        self.running_pid() == Some(pid)
    }

    /// The hook run under way, if any.
    pub fn running_pid(&self) -> Option<Pid> {
        self.running.as_ref().map(|r| r.pid)
    }

    /// A hook runs or waits to: zdrun stays for it before exiting (a
    /// program that gave up is the event most worth telling).
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// Is there something for [`tick`] to do at `now`?
    pub fn due(&self, now: Instant) -> bool {
        match &self.running {
            Some(r) => r.deadline.is_some_and(|d| d <= now),
            None => !self.queue.is_empty(),
        }
    }

    /// When the loop must next look at this node's hook: now when one is
    /// waiting and none runs, at the running one's timeout.
    pub fn next_wake(&self) -> Option<Instant> {
        match &self.running {
            Some(r) => r.deadline,
            None if !self.queue.is_empty() => Some(Instant::now()),
            None => None,
        }
    }
}

/// `event` happened to `node`: count it and, if the node has a hook, have
/// it run (soon: the loop starts it, see [`tick`]). `reason` says why, in
/// words (the exit, the failed check, the memory figure).
pub fn raise(node: &mut Node, event: Event, reason: Option<&str>) {
    let h = &mut node.hooks;
    h.counts[event.index()] += 1;
    if let Some(pid) = node.pid {
        h.last_pid = Some(pid.as_raw());
    }
    match event {
        Event::HealthRestart => h.causes.health += 1,
        Event::MemoryRestart => h.causes.memory += 1,
        _ => {}
    }
    if node.s.event_hook.is_none() {
        return;
    }
    let count = h.counts[event.index()];
    let exit = matches!(event, Event::Exited | Event::Fatal)
        .then_some(node.last_exit.as_ref())
        .flatten();
    if h.queue.len() >= QUEUE_LIMIT {
        h.queue.pop_front();
    }
    h.queue.push_back(Queued {
        event,
        pid: node.pid.map(Pid::as_raw).or(h.last_pid),
        status: exit.and_then(|e| e.code),
        signal: exit.and_then(|e| e.signal.clone()),
        reason: reason.map(str::to_string),
        count,
        at: SystemTime::now(),
    });
}

/// The loop's turn for one node: kill a hook past its timeout, start the
/// next waiting one if none runs.
pub fn tick(node: &mut Node, now: Instant, log: &mut Logger) {
    if let Some(r) = &mut node.hooks.running {
        if r.deadline.is_some_and(|d| d <= now) {
            r.deadline = None;
            let _ = killpg(r.pid, Signal::SIGKILL);
            let msg = format!(
                "event hook ({}) did not finish within {} seconds; killed",
                r.event.as_str(),
                node.s.event_hook_timeout
            );
            log.warning(&node.tag(&msg));
        }
        return;
    }
    let Some(q) = node.hooks.queue.pop_front() else {
        return;
    };
    let Some(words) = node.s.event_hook.clone() else {
        // The hook was removed by a reload: nothing waits any more.
        node.hooks.queue.clear();
        return;
    };
    match start(node, &words, &q) {
        Ok(running) => node.hooks.running = Some(running),
        Err(e) => log.error(&node.tag(&format!(
            "cannot run event hook ({}) {}: {e}",
            q.event.as_str(),
            crate::pyrepr::repr_str(&words[0])
        ))),
    }
}

fn start(node: &Node, words: &[String], q: &Queued) -> std::io::Result<Running> {
    let file =
        crate::settings::find_program(&words[0], &node.s.base).map_err(std::io::Error::other)?;
    let output = output_file();
    let mut cmd = std::process::Command::new(&file);
    cmd.arg0(&words[0])
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .process_group(0);
    match &output {
        Some(f) => {
            cmd.stdout(f.try_clone()?).stderr(f.try_clone()?);
        }
        None => {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
    }
    if let Some(dir) = &node.s.directory {
        cmd.current_dir(dir);
    }
    let name = if node.s.name.is_empty() {
        "program"
    } else {
        &node.s.name
    };
    let opt = |v: Option<String>| v.unwrap_or_default();
    let at =
        q.at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
    // The program's environment (the site's, its config's, its own):
    // what the hook needs to know (a webhook, an address) is set there.
    cmd.envs(node.s.environment.iter().map(|(k, v)| (k, v)));
    cmd.env("ZDRUN_EVENT", q.event.as_str())
        .env("ZDRUN_NODE", name)
        .env("ZDRUN_PID", opt(q.pid.map(|p| p.to_string())))
        .env("ZDRUN_EXIT_STATUS", opt(q.status.map(|s| s.to_string())))
        .env("ZDRUN_EXIT_SIGNAL", opt(q.signal.clone()))
        .env("ZDRUN_REASON", opt(q.reason.clone()))
        .env("ZDRUN_COUNT", q.count.to_string())
        .env("ZDRUN_TIME", format!("{at:.3}"));
    let child = cmd.spawn()?;
    let timeout = Duration::from_secs(node.s.event_hook_timeout.max(1) as u64);
    Ok(Running {
        pid: Pid::from_raw(child.id() as i32),
        event: q.event,
        deadline: Some(Instant::now() + timeout),
        output,
    })
}

/// An unnamed file for a hook's output (gone when closed); none if the
/// system has no such files, and then the output is dropped.
fn output_file() -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())
        .ok()
}

/// The node's hook ended: its output and how it ended go to the event
/// log. The next waiting event's hook starts on the loop's next turn.
pub fn finished(node: &mut Node, status: WaitStatus, log: &mut Logger) {
    let Some(mut r) = node.hooks.running.take() else {
        return;
    };
    let event = r.event.as_str();
    if let Some(f) = &mut r.output {
        let mut text = Vec::new();
        if f.rewind().is_ok() {
            let _ = f.take(OUTPUT_LIMIT + 1).read_to_end(&mut text);
        }
        let cut = text.len() as u64 > OUTPUT_LIMIT;
        text.truncate(OUTPUT_LIMIT as usize);
        for line in String::from_utf8_lossy(&text).lines() {
            if !line.trim().is_empty() {
                log.info(&node.tag(&format!("event hook ({event}): {line}")));
            }
        }
        if cut {
            log.info(&node.tag(&format!(
                "event hook ({event}): output cut at {OUTPUT_LIMIT} bytes"
            )));
        }
    }
    match status {
        WaitStatus::Exited(_, 0) => {
            log.debug(&node.tag(&format!("event hook ({event}) succeeded")));
        }
        WaitStatus::Exited(_, code) => {
            log.warning(&node.tag(&format!("event hook ({event}) failed: exit status {code}")))
        }
        WaitStatus::Signaled(_, sig, _) => log.warning(&node.tag(&format!(
            "event hook ({event}) failed: terminated by {}",
            sig.as_str()
        ))),
        _ => node.hooks.running = Some(r),
    }
}

/// Take the event hook of `new` (and where its keys now are) for the run
/// under way; reload calls it only when no settings are pending.
pub fn set_hook(node: &mut Node, new: &crate::settings::NodeSettings) {
    let s = &mut node.s;
    s.event_hook.clone_from(&new.event_hook);
    s.event_hook_timeout = new.event_hook_timeout;
    s.origins = new.origins.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(hook: bool) -> Node {
        let mut s = crate::settings::Settings::reaching(std::path::Path::new("/nonexistent"))
            .nodes
            .remove(0);
        s.name = "web".into();
        s.event_hook = hook.then(|| vec!["/bin/true".to_string()]);
        Node::new(s, "/bin/sleep".into(), None)
    }

    /// The health and memory watchers' events count as restarts by cause
    /// and reach the hook with their reason.
    #[test]
    fn health_and_memory_restarts() {
        let mut n = node(true);
        raise(&mut n, Event::HealthRestart, Some("GET / timed out"));
        raise(&mut n, Event::MemoryRestart, Some("900MB over 800MB"));
        raise(&mut n, Event::MemoryRestart, Some("901MB over 800MB"));
        assert_eq!((n.hooks.causes.health, n.hooks.causes.memory), (1, 2));
        let q: Vec<_> = n.hooks.queue.iter().map(|q| (q.event, q.count)).collect();
        assert_eq!(
            q,
            [
                (Event::HealthRestart, 1),
                (Event::MemoryRestart, 1),
                (Event::MemoryRestart, 2)
            ]
        );
        assert_eq!(n.hooks.queue[0].reason.as_deref(), Some("GET / timed out"));
        assert!(n.hooks.busy());
    }

    /// Without a hook nothing waits (and the loop gets no wake-up), but
    /// the counts go on; the queue is bounded.
    #[test]
    fn no_hook_no_queue_and_a_bounded_one() {
        let mut n = node(false);
        raise(&mut n, Event::HealthRestart, None);
        assert_eq!(n.hooks.causes.health, 1);
        assert!(!n.hooks.busy());
        assert_eq!(n.hooks.next_wake(), None);
        let mut n = node(true);
        for _ in 0..100 {
            raise(&mut n, Event::Exited, None);
        }
        assert_eq!(n.hooks.queue.len(), QUEUE_LIMIT);
        assert_eq!(n.hooks.queue.back().map(|q| q.count), Some(100));
    }
}
