//! Health checks (`<health>` of a `<program>`): an HTTP GET, a TCP connect
//! or a command, run while the program runs, never blocking the loop.
//!
//! A network probe is one non-blocking socket that zdrun's `poll` watches;
//! a command probe is a child in its own process group, reaped with the
//! others. Each probe has a deadline (`timeout`) and reads at most
//! [`MAX_ANSWER`] bytes. A node without a check has no probe and no timer.
//!
//! An HTTP- or TCP-checked node is ready (for `after`, `start` and
//! systemd) once its check first passes; until then it is probed every
//! [`STARTUP_PACE`] so that what comes after it starts soon, then every
//! `interval`. Failures count once the check has passed, or once `grace`
//! has run out since the start (then one per `interval` until it first
//! passes); `failures` of them in a row restart the program (`action
//! restart`) or are only reported (`action none`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::Supervisor;
use super::node::Node;
use crate::config::health::{Check, Target};
use crate::eventlog::Logger;

/// How often an HTTP/TCP check is tried before it first passes.
pub const STARTUP_PACE: Duration = Duration::from_millis(500);
/// The most of an answer a probe reads.
pub const MAX_ANSWER: usize = 64 * 1024;

/// A node's health-check state: figures kept across runs, and the
/// current run's check.
#[derive(Default)]
pub struct State {
    /// Failed probes since zdrun started (counted or not).
    pub failures_total: u64,
    /// Restarts the check asked for.
    pub restarts: u64,
    /// How long the last finished probe took, in seconds.
    pub latency: Option<f64>,
    run: Option<Run>,
}

struct Run {
    check: Check,
    started: Instant,
    next: Option<Instant>,
    probe: Option<Probe>,
    passed: bool,
    /// Consecutive counted failures.
    failed: u32,
    /// When a failure last counted (before the first pass, at most one
    /// counts per interval, though the probes come faster).
    counted_at: Option<Instant>,
    last_error: Option<String>,
}

enum Probe {
    Net {
        stream: TcpStream,
        connected: bool,
        request: Vec<u8>,
        sent: usize,
        answer: Vec<u8>,
        deadline: Instant,
        t0: Instant,
    },
    Command {
        pid: Pid,
        deadline: Instant,
        t0: Instant,
    },
}

/// How a probe ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
}

impl Run {
    fn gates_readiness(&self) -> bool {
        !matches!(self.check.target, Target::Command(_))
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.check.spec.interval.max(1) as u64)
    }

    fn pace(&self) -> Duration {
        if self.gates_readiness() && !self.passed {
            STARTUP_PACE.min(self.interval())
        } else {
            self.interval()
        }
    }

    /// Whether a failure now counts towards the action.
    fn counts(&self, now: Instant) -> bool {
        self.passed
            || (self.grace_over(now)
                && self
                    .counted_at
                    .is_none_or(|t| now.duration_since(t) >= self.interval()))
    }

    fn grace_over(&self, now: Instant) -> bool {
        now.duration_since(self.started) >= Duration::from_secs(self.check.spec.grace.max(0) as u64)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.check.spec.timeout.max(1) as u64)
    }
}

impl State {
    /// A run started: its check (if any) begins.
    pub fn begin(&mut self, check: Option<&Check>, now: Instant) {
        self.end();
        self.run = check.map(|c| {
            let mut run = Run {
                check: c.clone(),
                started: now,
                next: None,
                probe: None,
                passed: false,
                failed: 0,
                counted_at: None,
                last_error: None,
            };
            // A command gates nothing: its first run is when failures
            // start to count.
            run.next = Some(if run.gates_readiness() {
                now + run.pace()
            } else {
                now + Duration::from_secs(c.spec.grace.max(0) as u64)
            });
            run
        });
    }

    /// The run ended: drop its probe (a command probe is killed; the
    /// reaper collects it).
    pub fn end(&mut self) {
        if let Some(Probe::Command { pid, .. }) = self.run.take().and_then(|r| r.probe) {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }

    /// Whether the check lets the node count as ready.
    pub fn ready(&self) -> bool {
        self.run
            .as_ref()
            .is_none_or(|r| r.passed || !r.gates_readiness())
    }

    /// Why the node is not ready yet, if the check is the reason.
    pub fn waiting(&self) -> Option<String> {
        let r = self.run.as_ref().filter(|_| !self.ready())?;
        Some(match &r.last_error {
            Some(e) => format!("health check not passing yet: {e}"),
            None => "health check not passing yet".to_string(),
        })
    }

    /// Consecutive counted failures of the current run, if it has a check.
    pub fn failing(&self) -> Option<u32> {
        self.run.as_ref().map(|r| r.failed)
    }

    /// When the loop must next look at the check.
    pub fn deadline(&self) -> Option<Instant> {
        let r = self.run.as_ref()?;
        match &r.probe {
            Some(Probe::Net { deadline, .. } | Probe::Command { deadline, .. }) => Some(*deadline),
            None => r.next,
        }
    }

    /// The socket to poll, and for what.
    pub fn poll_fd(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match self.run.as_ref()?.probe.as_ref()? {
            Probe::Net {
                stream,
                connected,
                request,
                sent,
                ..
            } => {
                let flags = if !connected || sent < &request.len() {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                Some((stream.as_fd(), flags))
            }
            Probe::Command { .. } => None,
        }
    }

    pub fn owns(&self, pid: Pid) -> bool {
        self.probe_pid() == Some(pid)
    }

    /// The command probe under way, if any.
    pub fn probe_pid(&self) -> Option<Pid> {
        match self.run.as_ref().and_then(|r| r.probe.as_ref()) {
            Some(Probe::Command { pid, .. }) => Some(*pid),
            _ => None,
        }
    }
}

impl Node {
    /// A reload changed only `<health>`: the new check applies to the run
    /// under way (no restart for it); a node ready stays ready.
    pub(super) fn retune_health(&mut self, check: Option<Check>) {
        self.s.health = check;
        if self.pid.is_none() {
            return;
        }
        let passed = self.ready || self.health.run.as_ref().is_some_and(|r| r.passed);
        self.health.begin(self.s.health.as_ref(), Instant::now());
        if let Some(run) = self.health.run.as_mut() {
            run.passed = passed;
        }
        self.update_ready();
    }

    /// The socket of the probe under way is ready: go on with it.
    fn health_io(&mut self, log: &mut Logger) -> bool {
        let Some(run) = self.health.run.as_mut() else {
            return false;
        };
        let Some(probe) = run.probe.as_mut() else {
            return false;
        };
        match net_progress(probe, &run.check) {
            Some(outcome) => self.health_outcome(outcome, log),
            None => false,
        }
    }

    /// Timers: a probe out of time fails; a due probe starts.
    fn health_timer(&mut self, now: Instant, log: &mut Logger) -> bool {
        let Some(run) = self.health.run.as_mut() else {
            return false;
        };
        if let Some(probe) = &run.probe {
            let (deadline, pid) = match probe {
                Probe::Net { deadline, .. } => (*deadline, None),
                Probe::Command { deadline, pid, .. } => (*deadline, Some(*pid)),
            };
            if deadline > now {
                return false;
            }
            if let Some(pid) = pid {
                // Reaped as an unknown child later.
                let _ = killpg(pid, Signal::SIGKILL);
            }
            let why = format!("no answer within {} seconds", run.check.spec.timeout);
            return self.health_outcome(Outcome::Fail(why), log);
        }
        if run.next.is_none_or(|t| t > now) {
            return false;
        }
        run.next = None;
        let deadline = now + run.timeout();
        let started = match run.check.target.clone() {
            Target::Http { addr, host, path } => {
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: zdrun\r\n\
                     Connection: close\r\n\r\n"
                );
                start_net(addr, request.into_bytes(), deadline, now)
            }
            Target::Tcp(addr) => start_net(addr, Vec::new(), deadline, now),
            Target::Command(words) => {
                let file = match crate::settings::find_program(&words[0], &self.s.base) {
                    Ok(f) => f,
                    Err(e) => return self.health_outcome(Outcome::Fail(e.to_string()), log),
                };
                super::node::spawn_beside(&self.s, self.transcript.as_ref(), &file, &words)
                    .map(|pid| Probe::Command {
                        pid,
                        deadline,
                        t0: now,
                    })
                    .map_err(|e| format!("cannot run {}: {e}", words[0]))
            }
        };
        match started {
            Ok(probe) => {
                run.probe = Some(probe);
                // A loopback connect is often done at once: go on now
                // rather than after another turn of the loop.
                self.health_io(log)
            }
            Err(why) => self.health_outcome(Outcome::Fail(why), log),
        }
    }

    /// The command probe ended.
    fn health_exited(&mut self, status: WaitStatus, log: &mut Logger) -> bool {
        let outcome = match status {
            WaitStatus::Exited(_, 0) => Outcome::Pass,
            WaitStatus::Exited(_, code) => Outcome::Fail(format!("exit status {code}")),
            WaitStatus::Signaled(_, sig, _) => {
                Outcome::Fail(format!("terminated by {}", sig.as_str()))
            }
            _ => return false,
        };
        self.health_outcome(outcome, log)
    }

    /// Count a probe's outcome; true if the program is to be restarted.
    fn health_outcome(&mut self, outcome: Outcome, log: &mut Logger) -> bool {
        let now = Instant::now();
        let Some(run) = self.health.run.as_mut() else {
            return false;
        };
        let t0 = match run.probe.take() {
            Some(Probe::Net { t0, .. } | Probe::Command { t0, .. }) => t0,
            None => now,
        };
        self.health.latency = Some(now.duration_since(t0).as_secs_f64());
        let spec = &run.check.spec;
        let mut restart = false;
        match outcome {
            Outcome::Pass => {
                let first = !run.passed;
                run.passed = true;
                run.last_error = None;
                if run.failed > 0 {
                    log.info(&tag(&self.s.name, "health check passes again"));
                } else if first && run.gates_readiness() {
                    let what = match &run.check.target {
                        Target::Http { .. } => spec.url.clone().unwrap_or_default(),
                        _ => spec.address.clone().unwrap_or_default(),
                    };
                    log.info(&tag(
                        &self.s.name,
                        &format!("ready: health check passes ({what})"),
                    ));
                }
                run.failed = 0;
                run.counted_at = None;
            }
            Outcome::Fail(why) => {
                self.health.failures_total += 1;
                if run.counts(now) {
                    run.failed += 1;
                    run.counted_at = Some(now);
                    log.warning(&tag(
                        &self.s.name,
                        &format!(
                            "health check failed ({} of {}): {why}",
                            run.failed, spec.failures
                        ),
                    ));
                    if i64::from(run.failed) >= spec.failures && spec.restarts() {
                        log.warning(&tag(
                            &self.s.name,
                            &format!(
                                "health check failed {} times in a row; restarting",
                                run.failed
                            ),
                        ));
                        restart = true;
                    }
                }
                run.last_error = Some(why);
            }
        }
        if restart {
            self.health.restarts += 1;
            // No more probes for this run: it is being stopped.
            run.next = None;
            run.failed = 0;
            run.counted_at = None;
        } else {
            run.next = Some(now + run.pace());
        }
        if !self.ready {
            self.update_ready();
        }
        restart
    }
}

fn tag(name: &str, msg: &str) -> String {
    if name.is_empty() {
        msg.to_string()
    } else {
        format!("{name}: {msg}")
    }
}

/// Open a non-blocking connection to `addr`.
fn start_net(
    addr: SocketAddr,
    request: Vec<u8>,
    deadline: Instant,
    now: Instant,
) -> Result<Probe, String> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, connect, socket};
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)
        .map_err(|e| format!("cannot open a socket: {e}"))?;
    let connected = match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => true,
        Err(nix::errno::Errno::EINPROGRESS) => false,
        Err(e) => return Err(format!("cannot connect: {}", e.desc())),
    };
    Ok(Probe::Net {
        stream: TcpStream::from(fd),
        connected,
        request,
        sent: 0,
        answer: Vec::new(),
        deadline,
        t0: now,
    })
}

/// Go on with a network probe as far as it goes without waiting; its
/// outcome once there is one.
fn net_progress(probe: &mut Probe, check: &Check) -> Option<Outcome> {
    let Probe::Net {
        stream,
        connected,
        request,
        sent,
        answer,
        ..
    } = probe
    else {
        return None;
    };
    if !*connected {
        match nix::sys::socket::getsockopt(&*stream, nix::sys::socket::sockopt::SocketError) {
            Ok(0) => {}
            Ok(e) => {
                let e = nix::errno::Errno::from_raw(e);
                return Some(Outcome::Fail(format!("cannot connect: {}", e.desc())));
            }
            Err(e) => return Some(Outcome::Fail(format!("cannot connect: {}", e.desc()))),
        }
        // Not connected yet (EINPROGRESS still): the peer address tells.
        if stream.peer_addr().is_err() {
            return None;
        }
        *connected = true;
    }
    if !matches!(check.target, Target::Http { .. }) {
        return Some(Outcome::Pass);
    }
    while *sent < request.len() {
        match stream.write(&request[*sent..]) {
            Ok(0) => return Some(Outcome::Fail("connection closed".into())),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Outcome::Fail(format!("cannot send the request: {e}"))),
        }
    }
    let mut buf = [0u8; 8192];
    loop {
        let room = MAX_ANSWER - answer.len();
        let n = match stream.read(&mut buf[..room.min(8192)]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return judge_http(answer, check, false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(Outcome::Fail(format!("cannot read the answer: {e}"))),
        };
        answer.extend_from_slice(&buf[..n]);
        if n == 0 || answer.len() >= MAX_ANSWER {
            return judge_http(answer, check, true);
        }
    }
}

/// The verdict on an HTTP answer read so far (`complete`: all of it
/// there is, or all that is read); `None` while it cannot be told.
fn judge_http(answer: &[u8], check: &Check, complete: bool) -> Option<Outcome> {
    let spec = &check.spec;
    let Some(eol) = answer.windows(2).position(|w| w == b"\r\n") else {
        return complete.then(|| {
            Outcome::Fail(if answer.is_empty() {
                "connection closed without an answer".into()
            } else {
                "not an HTTP answer".into()
            })
        });
    };
    let line = String::from_utf8_lossy(&answer[..eol]);
    let mut words = line.split_whitespace();
    let status = match (words.next(), words.next().map(str::parse::<i64>)) {
        (Some(v), Some(Ok(s))) if v.starts_with("HTTP/") => s,
        _ => return Some(Outcome::Fail("not an HTTP answer".into())),
    };
    if status != spec.status {
        return Some(Outcome::Fail(format!(
            "status {status}, not {}",
            spec.status
        )));
    }
    let Some(want) = spec.body.as_deref().filter(|b| !b.is_empty()) else {
        return Some(Outcome::Pass);
    };
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| &answer[i + 4..]);
    if let Some(body) = body
        && body.windows(want.len()).any(|w| w == want.as_bytes())
    {
        return Some(Outcome::Pass);
    }
    complete.then(|| {
        Outcome::Fail(format!(
            "the answer does not contain {}",
            crate::pyrepr::repr_str(want)
        ))
    })
}

impl Supervisor {
    /// Health checks' turn: go on with the probes whose sockets `poll`
    /// found ready, fail those out of time, start those due; restart the
    /// programs whose checks say so.
    pub(super) fn health_turn(&mut self, io_ready: &[usize]) {
        let now = Instant::now();
        let mut restart = Vec::new();
        for &i in io_ready {
            if self.nodes[i].health_io(&mut self.log) {
                restart.push(i);
            }
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.health.deadline().is_some_and(|t| t <= now) && n.health_timer(now, &mut self.log) {
                restart.push(i);
            }
        }
        self.health_restart(restart);
    }

    /// A child the reaper does not otherwise know: a command probe?
    /// False if it is none.
    /// Node `i`'s command probe `pid` ended; false if `pid` is not it.
    pub(super) fn health_reaped(&mut self, i: usize, pid: Pid, status: WaitStatus) -> bool {
        if !self.nodes[i].health.owns(pid) {
            return false;
        }
        if self.nodes[i].health_exited(status, &mut self.log) {
            self.health_restart(vec![i]);
        }
        true
    }

    fn health_restart(&mut self, mut nodes: Vec<usize>) {
        nodes.retain(|&i| self.nodes[i].pid.is_some() && !self.nodes[i].killing);
        for &i in &nodes {
            let n = &mut self.nodes[i];
            let why =
                n.s.health
                    .as_ref()
                    .map(|h| format!("health check failed {} times in a row", h.spec.failures));
            super::hooks::raise(n, super::hooks::Event::HealthRestart, why.as_deref());
        }
        if !nodes.is_empty() && !self.shutting_down {
            self.stop_nodes(&nodes, true);
        }
    }
}
