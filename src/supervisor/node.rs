//! One supervised program ("node"): its settings, zdaemon's per-program
//! state, spawning, the governor, the start test and readiness.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::hooks::{self, Event};
use super::spawn;
use super::transcript::Transcript;
use crate::eventlog::Logger;
use crate::protocol::Status;
use crate::settings::{self, NodeSettings};

/// How often a node's readiness address is tried.
pub const READY_PROBE: Duration = Duration::from_millis(50);
/// How long a readiness host name's addresses are used before asking again.
const RESOLVED_FOR: Duration = Duration::from_secs(30);
/// A resolver silent for this long makes the node "not ready" with a reason.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A name lookup under way in its own thread.
struct Resolving {
    answer: std::sync::mpsc::Receiver<Result<Vec<std::net::SocketAddr>, String>>,
    since: Instant,
}

/// How the last run of the program ended.
#[derive(Clone, Debug)]
pub struct LastExit {
    pub code: Option<i32>,
    pub signal: Option<String>,
    pub at: SystemTime,
}

struct StartTest {
    pid: Pid,
    /// The program pid the test is for.
    for_pid: Pid,
}

/// A node as the `info` command reports it (borrowed: a site of a
/// thousand nodes is serialized without building a JSON tree).
#[derive(serde::Serialize)]
pub struct NodeInfo<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    pub state: &'static str,
    pub pid: Option<i32>,
    pub uptime: Option<f64>,
    pub restarts: u64,
    pub last_exit: Option<ExitInfo<'a>>,
    pub backoff: i64,
    pub backoff_delay: Option<f64>,
    pub should_be_up: bool,
    pub testing: bool,
    pub ready: bool,
    /// Not ready within its start-timeout (shown only then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// Why the node is not running (or not ready), when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub program: &'a [String],
    pub after: &'a [String],
    /// Health-check figures, for nodes with a `<health>`: failed probes,
    /// the last probe's duration, failures in a row now, restarts asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_failures: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_latency_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_failing: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_restarts: Option<u64>,
    #[serde(flatten)]
    pub limits: super::policy::LimitsInfo,
    pub restarts_by_cause: hooks::Causes,
}

#[derive(serde::Serialize)]
pub struct ExitInfo<'a> {
    pub status: Option<i32>,
    pub signal: Option<&'a str>,
    pub at: f64,
}

/// What the supervisor must do after a node's program ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Restart when the delay (if any) has passed.
    Carry,
    /// Supervision of this node ends: zdaemon's give-up (1) or a listed
    /// exit code. A single-program zdrun exits with this status.
    End(i32),
}

pub struct Node {
    pub s: NodeSettings,
    pub file: PathBuf,
    pub transcript: Option<Transcript>,
    // zdaemon's state, same names and meanings.
    pub should_be_up: bool,
    pub pid: Option<Pid>,
    pub lasttime: Option<SystemTime>,
    pub backoff: i64,
    pub delay: Option<Instant>,
    pub killing: bool,
    pub testing: bool,
    /// When SIGKILL follows the SIGTERM of a stop: fixed by the first
    /// SIGTERM of a run, so later stops, restarts and reloads do not
    /// push it back.
    kill_at: Option<Instant>,
    /// Name resolution of the readiness address, off the event loop.
    resolving: Option<Resolving>,
    /// Addresses the readiness host resolved to, and when.
    resolved: Option<(Vec<std::net::SocketAddr>, Instant)>,
    /// Why the node is not ready, for status.
    pub reason: Option<String>,
    // Ours.
    test: Option<StartTest>,
    pub test_retry: Option<Instant>,
    pub ready: bool,
    pub ready_probe: Option<Instant>,
    pub started: Option<Instant>,
    pub spawns: u64,
    pub last_exit: Option<LastExit>,
    /// Why supervision ended, for status: "exited" or "fatal".
    pub ended: Option<&'static str>,
    /// Settings to use from the next spawn on (after a reload).
    pub pending: Option<(NodeSettings, PathBuf)>,
    /// Removed by a reload: drop once stopped.
    pub removed: bool,
    /// Stop requested for everything: signal once dependents are down.
    pub stop_wanted: bool,
    /// The transcript for the next run, after a reload changed its path.
    pub next_transcript: Option<Transcript>,
    /// When the run's start-timeout passes, if it is not ready by then.
    pub start_deadline: Option<Instant>,
    /// Not ready within its start-timeout (the run goes on).
    pub timed_out: bool,
    /// `<health>`: the check of the current run, and its figures.
    pub health: super::health::State,
    pub policy: super::policy::PolicyState,
    pub mem: super::memory::MemWatch,
    /// Event counts and the event hook's runs.
    pub hooks: hooks::Hooks,
}

impl Node {
    pub fn new(s: NodeSettings, file: PathBuf, transcript: Option<Transcript>) -> Node {
        Node {
            s,
            file,
            transcript,
            should_be_up: true,
            pid: None,
            lasttime: None,
            backoff: 0,
            delay: None,
            killing: false,
            testing: false,
            kill_at: None,
            resolving: None,
            resolved: None,
            reason: None,
            test: None,
            test_retry: None,
            ready: false,
            ready_probe: None,
            started: None,
            spawns: 0,
            last_exit: None,
            ended: None,
            pending: None,
            removed: false,
            stop_wanted: false,
            next_transcript: None,
            start_deadline: None,
            timed_out: false,
            health: Default::default(),
            policy: Default::default(),
            mem: Default::default(),
            hooks: hooks::Hooks::default(),
        }
    }

    /// Due to be spawned now (dependencies are the caller's business).
    pub fn due(&self) -> bool {
        self.should_be_up && self.pid.is_none() && self.delay.is_none()
    }

    /// Everything the next run needs made ready (the settings a reload
    /// left switched to first); started by [`spawn::Spawner`], reported to
    /// [`Node::spawned`].
    pub fn prepare(&mut self) -> std::io::Result<spawn::Prepared> {
        self.apply_pending();
        spawn::Prepared::new(&spec(
            &self.s,
            self.transcript.as_ref(),
            &self.file,
            &self.s.program,
        ))
    }

    /// The run [`Node::prepare`] made ready was started (or failed to).
    pub fn spawned(&mut self, result: std::io::Result<Pid>, log: &mut Logger) -> Verdict {
        self.lasttime = Some(SystemTime::now());
        self.spawns += 1;
        // A start that failed counts too: an exec failing in a loop is a
        // crash loop.
        self.count_start(Instant::now());
        self.ready = false;
        match result {
            Ok(pid) => {
                self.pid = Some(pid);
                self.started = Some(Instant::now());
                self.watch_memory(Instant::now());
                log.info(&self.tag(&format!("spawned process pid={pid}")));
                hooks::raise(self, Event::Started, None);
                self.testing = self.s.start_test_program.is_some();
                self.test_retry = self.testing.then(Instant::now);
                self.ready_probe = self.s.ready_address.is_some().then(Instant::now);
                self.timed_out = false;
                self.health.begin(self.s.health.as_ref(), Instant::now());
                self.update_ready();
                self.start_deadline = (!self.ready).then(|| {
                    Instant::now() + Duration::from_secs(self.s.start_timeout.max(0) as u64)
                });
                Verdict::Carry
            }
            Err(e) => {
                // As if the program had run and exited 127, like an exec
                // failure in a forked child: the governor decides.
                let msg = format!("can't exec '{}': {e}", self.file.display());
                log.error(&self.tag(&msg));
                if let Some(mut f) = self.transcript.as_ref().and_then(|t| t.file_handle()) {
                    use std::io::Write;
                    let _ = writeln!(f, "{msg}");
                }
                self.pid = None;
                self.govern(Some(127), "spawn failed".into(), log)
            }
        }
    }

    /// Switch to the settings a reload left for the next run (the
    /// transcript too, when its path changed).
    pub fn apply_pending(&mut self) {
        if let Some((s, file)) = self.pending.take() {
            if s.transcript != self.s.transcript {
                self.transcript = self.next_transcript.take();
            }
            self.s = s;
            self.file = file;
        }
    }

    /// Prefix a log message with the node name when there are several.
    pub fn tag(&self, msg: &str) -> String {
        if self.s.name.is_empty() {
            msg.to_string()
        } else {
            format!("{}: {msg}", self.s.name)
        }
    }

    pub(super) fn update_ready(&mut self) {
        let was = self.ready;
        self.ready = self.pid.is_some()
            && !self.testing
            && self.ready_probe.is_none()
            && self.health.ready();
        if self.ready && !was {
            hooks::raise(self, Event::Ready, None);
        }
        if self.ready {
            self.start_deadline = None;
            self.timed_out = false;
        }
    }

    /// The start-timeout passed: a run not ready by now is reported as
    /// having failed to start (zdaemon's "Program took too long to
    /// start"); it goes on running, and may still get ready.
    pub fn start_timeout_passed(&mut self, log: &mut Logger) {
        self.start_deadline = None;
        if self.pid.is_some() && !self.ready && !self.killing {
            self.timed_out = true;
            log.warning(&self.tag(&format!(
                "not ready within start-timeout ({} seconds)",
                self.s.start_timeout
            )));
        }
    }

    /// Try the readiness address; called when `ready_probe` is due.
    pub fn probe_ready(&mut self, log: &mut Logger) {
        use crate::config::SocketAddress;
        let Some(addr) = self.s.ready_address.clone() else {
            return;
        };
        let ok = match &addr {
            SocketAddress::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
            SocketAddress::Inet { host, port } => {
                let host = if host.is_empty() { "127.0.0.1" } else { host };
                match self.addresses(host, port.unwrap_or(0), log) {
                    Some(addrs) => addrs.iter().any(|a| {
                        std::net::TcpStream::connect_timeout(a, Duration::from_millis(20)).is_ok()
                    }),
                    None => false,
                }
            }
        };
        if ok {
            self.ready_probe = None;
            self.reason = None;
            log.info(&self.tag(&format!("ready: {addr} accepts connections")));
            self.update_ready();
        } else {
            if self.reason.is_none() {
                self.reason = Some(format!("{addr} does not accept connections yet"));
            }
            self.ready_probe = Some(Instant::now() + READY_PROBE);
        }
    }

    /// The addresses `host` stands for. A name is resolved by a thread of
    /// its own (a resolver that never answers must not stall zdrun), with
    /// the answer kept for a while; `None` while there is none.
    fn addresses(
        &mut self,
        host: &str,
        port: u16,
        log: &mut Logger,
    ) -> Option<Vec<std::net::SocketAddr>> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Some(vec![std::net::SocketAddr::new(ip, port)]);
        }
        let now = Instant::now();
        if let Some((addrs, at)) = &self.resolved
            && now.duration_since(*at) < RESOLVED_FOR
        {
            return Some(addrs.clone());
        }
        if let Some(r) = &self.resolving {
            match r.answer.try_recv() {
                Ok(Ok(addrs)) => {
                    self.resolving = None;
                    if addrs.is_empty() {
                        self.reason = Some(format!("cannot resolve host '{host}': no address"));
                        return None;
                    }
                    self.resolved = Some((addrs.clone(), now));
                    return Some(addrs);
                }
                Ok(Err(e)) => {
                    self.resolving = None;
                    self.unresolved(format!("cannot resolve host '{host}': {e}"), log);
                    return None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    if now.duration_since(r.since) >= RESOLVE_TIMEOUT {
                        let why = format!(
                            "cannot resolve host '{host}': no answer within {} seconds",
                            RESOLVE_TIMEOUT.as_secs()
                        );
                        self.unresolved(why, log);
                    }
                    // One question at a time: wait for this one to end.
                    return None;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.resolving = None,
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let name = host.to_string();
        let spawned = std::thread::Builder::new()
            .name("resolver".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                use std::net::ToSocketAddrs;
                let answer = (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
                    .map_err(|e| e.to_string());
                let _ = tx.send(answer);
            });
        match spawned {
            Ok(_) => {
                self.resolving = Some(Resolving {
                    answer: rx,
                    since: now,
                })
            }
            Err(e) => self.reason = Some(format!("cannot resolve host '{host}': {e}")),
        }
        None
    }

    /// The readiness host does not resolve: that is why the node is not
    /// ready, logged once per distinct reason.
    fn unresolved(&mut self, why: String, log: &mut Logger) {
        if self.reason.as_deref() != Some(why.as_str()) {
            log.warning(&self.tag(&why));
        }
        self.reason = Some(why);
    }

    /// Start the start-test program if one is due.
    pub fn run_start_test(&mut self, log: &mut Logger) {
        let (Some(pid), Some(words)) = (self.pid, self.s.start_test_program.clone()) else {
            return;
        };
        if self.test.is_some() || !self.testing {
            return;
        }
        self.test_retry = None;
        let file = match settings::find_program(&words[0], &self.s.base) {
            Ok(f) => f,
            Err(e) => {
                log.debug(&self.tag(&format!("start test failed: {e}")));
                self.test_retry = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        match spawn_beside(&self.s, self.transcript.as_ref(), &file, &words) {
            Ok(test_pid) => {
                self.test = Some(StartTest {
                    pid: test_pid,
                    for_pid: pid,
                })
            }
            Err(e) => {
                log.debug(&self.tag(&format!("start test failed: {e}")));
                self.test_retry = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    pub fn owns_test(&self, pid: Pid) -> bool {
        self.test.as_ref().is_some_and(|t| t.pid == pid)
    }

    /// The node's children other than its program: the start test, the
    /// health check's command and the event hook under way.
    pub fn side_pids(&self) -> impl Iterator<Item = Pid> {
        [
            self.test.as_ref().map(|t| t.pid),
            self.health.probe_pid(),
            self.hooks.running_pid(),
        ]
        .into_iter()
        .flatten()
    }

    pub fn test_exited(&mut self, status: WaitStatus, log: &mut Logger) {
        let Some(test) = self.test.take() else { return };
        if Some(test.for_pid) != self.pid || !self.testing {
            return;
        }
        match status {
            WaitStatus::Exited(_, 0) => {
                self.testing = false;
                log.debug(&self.tag("start test succeeded"));
                self.update_ready();
            }
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                log.debug(&self.tag("start test failed"));
                self.test_retry = Some(Instant::now() + Duration::from_secs(1));
            }
            _ => self.test = Some(test),
        }
    }

    /// Signal the program's process group; if the program left its group
    /// (setsid, setpgid), at least the program itself.
    pub fn signal_group(&self, sig: Signal) {
        if let Some(pid) = self.pid
            && killpg(pid, sig).is_err()
        {
            let _ = kill(pid, sig);
        }
    }

    /// SIGTERM to the program's group, SIGKILL after stop-timeout.
    pub fn terminate(&mut self) {
        if self.pid.is_none() {
            return;
        }
        self.signal_group(Signal::SIGTERM);
        self.killing = true;
        // A program on its way out is checked no more.
        self.health.end();
        if self.s.stop_timeout != 0 {
            let timeout = Duration::from_secs(self.s.stop_timeout.max(0) as u64);
            self.delay = Some(*self.kill_at.get_or_insert_with(|| Instant::now() + timeout));
        } else {
            self.delay = None;
        }
    }

    /// The delay has passed: escalate a pending stop to SIGKILL.
    pub fn delay_passed(&mut self, now: Instant, log: &mut Logger) {
        self.delay = None;
        if self.killing
            && let Some(pid) = self.pid
        {
            log.warning(&self.tag(&format!(
                "pid {pid} did not stop within {} seconds; sending SIGKILL",
                self.s.stop_timeout
            )));
            self.signal_group(Signal::SIGKILL);
            self.delay = Some(now + Duration::from_secs(self.s.backoff_limit.max(1) as u64));
        }
    }

    /// The program ended. `shutting_down`: the manager is on its way out,
    /// so no restart accounting.
    pub fn exited(&mut self, status: WaitStatus, shutting_down: bool, log: &mut Logger) -> Verdict {
        let pid = self.pid.unwrap_or(Pid::from_raw(0));
        let (code, signal, msg) = match status {
            WaitStatus::Exited(_, code) => (Some(code), None, format!("exit status {code}")),
            WaitStatus::Signaled(_, sig, core) => (
                None,
                Some(sig.as_str().to_string()),
                format!(
                    "terminated by {}{}",
                    sig.as_str(),
                    if core { " (core dumped)" } else { "" }
                ),
            ),
            // Stopped/continued: still alive.
            _ => return Verdict::Carry,
        };
        let msg = self.tag(&format!("pid {pid}: {msg}"));
        self.pid = None;
        self.kill_at = None;
        self.reason = None;
        self.testing = false;
        self.ready = false;
        self.ready_probe = None;
        self.health.end();
        self.start_deadline = None;
        self.timed_out = false;
        self.mem.next = None;
        if let Some(test) = self.test.take() {
            // The test runs in its own process group; reap() collects it.
            let _ = killpg(test.pid, Signal::SIGKILL);
        }
        self.stop_wanted = false;
        // A reload's new settings (and `after`) hold from now on.
        self.apply_pending();
        self.test_retry = None;
        self.last_exit = Some(LastExit {
            code,
            signal,
            at: SystemTime::now(),
        });
        if self.killing {
            self.killing = false;
            self.delay = None;
            log.info(&msg);
            return Verdict::Carry;
        }
        if shutting_down {
            log.info(&msg);
            return Verdict::Carry;
        }
        self.govern(code, msg, log)
    }

    /// zdaemon's governor, then the exit-codes rule.
    fn govern(&mut self, code: Option<i32>, msg: String, log: &mut Logger) -> Verdict {
        let expected = self
            .s
            .exit_codes
            .contains(&code.map(i64::from).unwrap_or(-1));
        if !expected {
            let why = msg.rsplit(": ").next().unwrap_or(&msg).to_string();
            hooks::raise(self, Event::Exited, Some(&why));
        }
        if let Some(v) = self.start_limit_hit(&msg, log) {
            let why = self.policy.fatal_reason.clone();
            hooks::raise(self, Event::Fatal, why.as_deref());
            return v;
        }
        let limit = self.s.backoff_limit;
        if self.s.restart.exponential {
            self.exponential_delay(log);
        } else if let Some(last) = self.lasttime {
            let up = SystemTime::now()
                .duration_since(last)
                .unwrap_or_default()
                .as_secs_f64();
            if up < limit as f64 {
                self.backoff += 1;
                if self.backoff >= limit {
                    if self.s.forever {
                        self.backoff = limit;
                    } else {
                        log.info(&msg);
                        log.critical(&self.tag("restarting too frequently; quit"));
                        self.end("fatal");
                        hooks::raise(self, Event::Fatal, Some("restarting too frequently"));
                        return Verdict::End(1);
                    }
                }
                log.info(&self.tag(&format!("sleep {} to avoid rapid restarts", self.backoff)));
                self.delay = Some(Instant::now() + Duration::from_secs(self.backoff.max(0) as u64));
            } else {
                self.backoff = 0;
                self.delay = None;
            }
        }
        let exit_code = code.map(i64::from).unwrap_or(-1);
        if self.s.exit_codes.contains(&exit_code) {
            log.info(&format!("{msg}; exiting now"));
            self.end("exited");
            return Verdict::End(exit_code as i32);
        }
        log.info(&msg);
        self.hooks.causes.crash += 1;
        Verdict::Carry
    }

    pub(super) fn end(&mut self, why: &'static str) {
        self.ended = Some(why);
        self.should_be_up = false;
        self.delay = None;
    }

    /// zdaemon's `start` command on this node.
    pub fn cmd_start(&mut self) -> bool {
        self.reset(true);
        self.pid.is_none()
    }

    pub fn reset(&mut self, up: bool) {
        self.should_be_up = up;
        self.backoff = 0;
        self.delay = None;
        self.killing = false;
        self.ended = None;
        self.policy.reset();
    }

    pub fn status(&self, manager: i32) -> Status {
        let now_i = Instant::now();
        let now = super::wall(SystemTime::now());
        Status {
            now,
            should_be_up: self.should_be_up,
            delay: self
                .delay
                .map(|d| now + d.saturating_duration_since(now_i).as_secs_f64()),
            backoff: self.backoff,
            lasttime: self.lasttime.map(super::wall),
            application: self.pid.map(|p| p.as_raw()).unwrap_or(0),
            testing: self.testing,
            manager,
            backofflimit: self.s.backoff_limit,
            filename: self.file.to_string_lossy().into_owned(),
            args: self.s.program.clone(),
        }
    }

    pub fn state(&self) -> &'static str {
        if self.pid.is_some() {
            if self.killing {
                "stopping"
            } else if !self.ready {
                "starting"
            } else {
                "running"
            }
        } else if let Some(why) = self.ended {
            why
        } else if self.should_be_up && self.delay.is_some() {
            "backoff"
        } else if self.should_be_up {
            "waiting"
        } else {
            "stopped"
        }
    }

    /// Why the node is not running and ready, for status; `waiting_for`
    /// names the first node it comes after that is not ready.
    pub fn why(&self, now: Instant, waiting_for: Option<&str>) -> Option<String> {
        if self.pid.is_some() {
            if self.ready || self.killing {
                return None;
            }
            let mut parts = Vec::new();
            if self.timed_out {
                parts.push(format!(
                    "took too long to start (start-timeout {} s)",
                    self.s.start_timeout
                ));
            }
            if self.testing {
                parts.push("start test not passing yet".to_string());
            }
            if self.ready_probe.is_some() {
                parts.push(
                    self.reason
                        .clone()
                        .unwrap_or_else(|| "address not accepting connections yet".to_string()),
                );
            }
            parts.extend(self.health.waiting());
            return Some(format!("starting: {}", parts.join("; ")));
        }
        let last = self.last_exit.as_ref().map(|e| match (&e.code, &e.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("terminated by {s}"),
            (None, None) => "ended".to_string(),
        });
        match self.ended {
            Some("fatal") if self.policy.fatal_reason.is_some() => {
                return Some(format!(
                    "fatal: {}{}",
                    self.policy.fatal_reason.as_deref().unwrap_or_default(),
                    last.map(|l| format!(" (last: {l})")).unwrap_or_default()
                ));
            }
            Some("fatal") => {
                return Some(format!(
                    "fatal: gave up after {} starts in quick succession{}",
                    self.backoff.max(1),
                    last.map(|l| format!(" (last: {l})")).unwrap_or_default()
                ));
            }
            Some(_) => {
                return Some(format!(
                    "exited: {} is one of its exit codes",
                    last.unwrap_or_else(|| "its exit".into())
                ));
            }
            None => {}
        }
        if !self.should_be_up {
            // Stopped by request says it all.
            return (self.spawns == 0).then(|| "stopped: not started yet".to_string());
        }
        if let Some(d) = self.delay {
            return Some(format!(
                "backoff: restarting in {:.0} s{}",
                d.saturating_duration_since(now).as_secs_f64().ceil(),
                last.map(|l| format!(" after {l}")).unwrap_or_default()
            ));
        }
        waiting_for.map(|d| format!("waiting for {d}"))
    }

    pub fn info(&self, now: Instant, waiting_for: Option<&str>) -> NodeInfo<'_> {
        NodeInfo {
            name: &self.s.name,
            state: self.state(),
            pid: self.pid.map(|p| p.as_raw()),
            uptime: self
                .pid
                .and(self.started)
                .map(|s| now.duration_since(s).as_secs_f64()),
            restarts: self.spawns.saturating_sub(1),
            last_exit: self.last_exit.as_ref().map(|e| ExitInfo {
                status: e.code,
                signal: e.signal.as_deref(),
                at: super::wall(e.at),
            }),
            backoff: self.backoff,
            backoff_delay: if self.pid.is_none() {
                self.delay
                    .map(|d| d.saturating_duration_since(now).as_secs_f64())
            } else {
                None
            },
            should_be_up: self.should_be_up,
            testing: self.testing,
            ready: self.ready,
            timed_out: self.timed_out,
            reason: self.why(now, waiting_for),
            program: &self.s.program,
            after: &self.s.after,
            health_failures: self.s.health.as_ref().map(|_| self.health.failures_total),
            health_latency_seconds: self.health.latency,
            health_failing: self.health.failing(),
            health_restarts: self.s.health.as_ref().map(|_| self.health.restarts),
            limits: self.limits_info(now),
            restarts_by_cause: self.hooks.causes,
        }
    }
}

/// Start a helper command of a node (its start test, a health check) as
/// its program runs: the node's environment, directory, umask and
/// transcript. Takes the node's parts, so a caller may hold others.
pub(super) fn spawn_beside(
    s: &NodeSettings,
    transcript: Option<&Transcript>,
    file: &std::path::Path,
    words: &[String],
) -> std::io::Result<Pid> {
    spawn::spawn(&spec(s, transcript, file, words))
}

/// How to start `file` with `words` in node `s`'s setting: its environment,
/// directory, umask and output.
fn spec<'a>(
    s: &'a NodeSettings,
    transcript: Option<&'a Transcript>,
    file: &'a std::path::Path,
    words: &'a [String],
) -> spawn::Spec<'a> {
    spawn::Spec {
        file,
        argv: words,
        env: &s.environment,
        node: &s.name,
        directory: s.directory.as_deref(),
        umask: s.umask,
        output: transcript.map(|t| t.writer()),
        errors: transcript.and_then(|t| t.error_writer()),
    }
}
