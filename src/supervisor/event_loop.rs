//! The event loop: one `poll` over the signal pipe, the socket, the
//! clients and the transcripts; timers, reaping, leftovers, and the order
//! in which nodes start and stop.
//!
//! The order is one engine for every path (the socket's start, stop and
//! restart, reload, SIGHUP, SIGTERM): a node is stopped by marking it
//! (`stop_nodes`) and signalled once nothing that comes after it and is
//! being stopped still runs (`stop_in_order`); a node is started once
//! everything it comes after is ready and not about to stop (`spawn_due`).

use std::collections::HashMap;

use super::*;

/// Nodes spawned in one turn of the loop at most, and for how long: between
/// batches zdrun polls, so clients get answers while a large site starts.
pub(super) const SPAWN_BATCH: usize = 128;
pub(super) const SPAWN_TURN: std::time::Duration = std::time::Duration::from_millis(10);

pub(super) use crate::protocol::START_ONLY_VAR;

/// Names to positions, and the `after` edges both ways, by position.
#[derive(Default)]
pub(super) struct Graph {
    pub(super) by_name: HashMap<String, usize>,
    /// What each node comes after (known nodes only).
    pub(super) deps: Vec<Vec<usize>>,
    /// What comes after each node.
    pub(super) dependents: Vec<Vec<usize>>,
}

impl Graph {
    fn build(nodes: &[Node]) -> Graph {
        let by_name: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.s.name.clone(), i))
            .collect();
        let mut deps = vec![Vec::new(); nodes.len()];
        let mut dependents = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            // What it runs now and what it runs next (after a reload):
            // both hold until the switch.
            let pending = n.pending.as_ref().map(|(p, _)| p.after.as_slice());
            for name in n.s.after.iter().chain(pending.unwrap_or_default()) {
                if let Some(&d) = by_name.get(name)
                    && d != i
                    && !deps[i].contains(&d)
                {
                    deps[i].push(d);
                    dependents[d].push(i);
                }
            }
        }
        Graph {
            by_name,
            deps,
            dependents,
        }
    }
}

/// Signals zdrun acts on, each with the flag its handler sets.
pub(super) struct Signals {
    pub(super) pipe: UnixStream,
    /// The pipe's write end, for threads that must wake the event loop.
    pub(super) wake: UnixStream,
    pub(super) chld: Arc<AtomicBool>,
    pub(super) term: Arc<AtomicBool>,
    pub(super) int: Arc<AtomicBool>,
    pub(super) hup: Arc<AtomicBool>,
    pub(super) usr2: Arc<AtomicBool>,
}

impl Signals {
    pub(super) fn install() -> std::io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let s = Signals {
            pipe: read,
            wake: write.try_clone()?,
            chld: Arc::default(),
            term: Arc::default(),
            int: Arc::default(),
            hup: Arc::default(),
            usr2: Arc::default(),
        };
        use signal_hook::consts::*;
        for (sig, flag) in [
            (SIGCHLD, &s.chld),
            (SIGTERM, &s.term),
            (SIGINT, &s.int),
            (SIGHUP, &s.hup),
            (SIGUSR2, &s.usr2),
        ] {
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(s)
    }

    pub(super) fn drain(&self) {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(&self.pipe, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Supervisor {
    pub(super) fn run_forever(&mut self) -> i32 {
        // A large site's replies (info) run to megabytes: such buffers
        // always get memory of their own, given back when freed, rather
        // than growing the heap for good (glibc raises the threshold
        // after each one otherwise).
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only tunes the allocator.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
        self.rebuild_graph();
        self.apply_start_only();
        // Loading the configuration (the parsed file, the model, the
        // settings of every node) is done: give back what it freed.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            nix::libc::malloc_trim(0);
        }
        loop {
            // Hooks under way (bounded by their timeout) are let finish.
            let hooks_busy = self.nodes.iter().any(|n| n.hooks.busy());
            if let Some(code) = self.exit_status
                && !hooks_busy
            {
                self.finish_output();
                return code;
            }
            let before = self.nodes.len();
            self.nodes.retain(|n| !(n.removed && n.pid.is_none()));
            if self.nodes.len() != before {
                self.rebuild_graph();
            }
            let idle = self
                .nodes
                .iter()
                .all(|n| !n.should_be_up && n.pid.is_none());
            if idle && !hooks_busy && (self.shutting_down || !self.s.hang_around) {
                // A site whose every program gave up failed, as a single
                // program's give-up does; a stop that had to SIGKILL is
                // not clean.
                let code = self.final_status();
                self.finish_output();
                self.log.info("Exiting");
                return code;
            }
            self.stop_in_order();
            let busy = self.spawn_due();
            self.tell_systemd();
            self.wait_and_dispatch(busy);
        }
    }

    /// READY=1 once every program that should run is ready; STATUS= with a
    /// summary whenever it changes.
    pub(super) fn tell_systemd(&mut self) {
        let Some(n) = &self.notify else { return };
        let wanted = self.nodes.iter().filter(|n| n.should_be_up).count();
        let ready = self
            .nodes
            .iter()
            .filter(|n| n.should_be_up && n.ready)
            .count();
        let mut summary = if self.nodes.len() == 1 && !self.s.is_site() {
            match self.nodes[0].pid {
                Some(pid) => format!("program running; pid={pid}"),
                None => format!("program {}", self.nodes[0].state()),
            }
        } else {
            format!("{ready} of {} programs ready", self.nodes.len())
        };
        let troubled: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.state(), "backoff" | "fatal"))
            .map(|n| format!("{} {}", n.s.name, n.state()))
            .collect();
        if !troubled.is_empty() && self.s.is_site() {
            summary = format!("{summary}; {}", troubled.join(", "));
        }
        if !self.ready_sent && !self.shutting_down && ready == wanted {
            self.ready_sent = true;
            n.send(&format!("READY=1\nSTATUS={summary}"));
            self.last_summary = summary;
        } else if summary != self.last_summary {
            n.send(&format!("STATUS={summary}"));
            self.last_summary = summary;
        }
    }

    pub(super) fn index(&self, name: &str) -> Option<usize> {
        self.graph.by_name.get(name).copied()
    }

    /// Rebuild the name index and the dependency graph after the node
    /// list changed (start, reload, a removed node gone).
    pub(super) fn rebuild_graph(&mut self) {
        self.graph = Graph::build(&self.nodes);
        // Each node holds its settings; the list in `s` would be a second
        // copy of them all (a large site's biggest cost in memory). The
        // first stays, for `is_site`, whose answer does not change.
        self.s.nodes.truncate(1);
        self.s.nodes.shrink_to_fit();
    }

    /// The first node that `i` comes after and that is not ready to be
    /// started after: not ready, or about to be stopped or restarted.
    /// Unknown names do not hold anything up (a reload may have removed
    /// them).
    pub(super) fn blocker(&self, i: usize) -> Option<usize> {
        self.graph.deps[i].iter().copied().find(|&d| {
            let n = &self.nodes[d];
            !n.ready || n.stop_wanted || n.killing
        })
    }

    pub(super) fn deps_ready(&self, i: usize) -> bool {
        self.blocker(i).is_none()
    }

    /// Spawn nodes that are due and whose dependencies are ready, at most
    /// [`SPAWN_BATCH`] in one call so that the loop polls (and answers
    /// clients) between batches. True if any was spawned: what comes after
    /// them may be due now.
    pub(super) fn spawn_due(&mut self) -> bool {
        if self.shutting_down {
            return false;
        }
        // As many as the two threads start in a turn, by the cost of the
        // last ones, so that little is made ready in vain.
        let threads = self.spawner.threads();
        let want = (threads as u128 * SPAWN_TURN.as_micros() / self.spawn_cost.as_micros().max(1))
            .clamp(2, SPAWN_BATCH as u128) as usize;
        let mut due = Vec::new();
        let mut items = Vec::new();
        for i in 0..self.nodes.len() {
            if due.len() == want {
                break;
            }
            if !self.nodes[i].due() || !self.deps_ready(i) || self.remote_closed(i) {
                continue;
            }
            match self.nodes[i].prepare() {
                Ok(item) => {
                    due.push(i);
                    items.push(item);
                }
                Err(e) => {
                    let verdict = self.nodes[i].spawned(Err(e), &mut self.log);
                    self.verdict(i, verdict);
                }
            }
        }
        if due.is_empty() {
            return false;
        }
        let t0 = Instant::now();
        let results = self.spawner.run(items, SPAWN_TURN);
        let started = results.iter().filter(|r| r.is_some()).count() as u32;
        // Per thread: the turn's time over what each started.
        self.spawn_cost = t0.elapsed() * self.spawner.threads() / started.max(1);
        for (i, result) in due.into_iter().zip(results) {
            if let Some(result) = result {
                let verdict = self.nodes[i].spawned(result, &mut self.log);
                self.verdict(i, verdict);
            }
        }
        true
    }

    /// A node's supervision ended: a single-program zdrun exits with the
    /// status, as zdaemon; a site carries on with the other nodes.
    pub(super) fn verdict(&mut self, _i: usize, verdict: Verdict) {
        if let Verdict::End(code) = verdict
            && !self.s.is_site()
        {
            self.exit_status = Some(code);
        }
    }

    /// Stop (`up`: restart) the given nodes, the one way every path does
    /// it: each is signalled once nothing that comes after it and is
    /// being stopped still runs, and one that is to run again is started
    /// as any other, once what it comes after is ready. True if any was
    /// running.
    pub(super) fn stop_nodes(&mut self, targets: &[usize], up: bool) -> bool {
        let mut running = false;
        for &i in targets {
            let n = &mut self.nodes[i];
            n.reset(up);
            if n.pid.is_some() {
                n.stop_wanted = true;
                running = true;
            } else {
                n.stop_wanted = false;
            }
        }
        self.stop_in_order();
        running
    }

    /// Signal every node whose stop is wanted and that nothing being
    /// stopped still waits on: reverse dependency order.
    pub(super) fn stop_in_order(&mut self) {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !n.stop_wanted || n.pid.is_none() || n.killing {
                continue;
            }
            let dependents_up = self.graph.dependents[i].iter().any(|&d| {
                let d = &self.nodes[d];
                d.pid.is_some() && (d.stop_wanted || d.killing)
            });
            if !dependents_up {
                self.nodes[i].stop_wanted = false;
                self.nodes[i].terminate();
            }
        }
    }

    /// The nodes `name` comes after, transitively, and `name` itself:
    /// what `start NAME` starts.
    pub(super) fn with_deps(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![i];
        let mut out = Vec::new();
        while let Some(k) = todo.pop() {
            if std::mem::replace(&mut seen[k], true) {
                continue;
            }
            out.push(k);
            todo.extend(self.graph.deps[k].iter().copied());
        }
        out.sort_unstable();
        out
    }

    /// When zdctl starts zdrun for `start NAME...`, only those nodes (and
    /// what they come after) are wanted; the others wait for a start.
    pub(super) fn apply_start_only(&mut self) {
        let Ok(names) = std::env::var(START_ONLY_VAR) else {
            return;
        };
        let mut wanted = vec![false; self.nodes.len()];
        for name in names.split_whitespace() {
            if let Some(i) = self.index(name) {
                for k in self.with_deps(i) {
                    wanted[k] = true;
                }
            }
        }
        for (n, w) in self.nodes.iter_mut().zip(wanted) {
            n.should_be_up = w;
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let conn = self.conns.iter().map(|c| c.deadline).min();
        let nodes = self
            .nodes
            .iter()
            .flat_map(|n| {
                let health = n.health.deadline();
                [
                    n.delay,
                    n.test_retry,
                    n.ready_probe,
                    n.start_deadline,
                    health,
                    n.mem.next,
                    n.hooks.next_wake(),
                ]
            })
            .flatten()
            .min();
        let reload = self
            .reloading
            .as_ref()
            .filter(|r| !r.abandoned)
            .map(|r| r.since + RELOAD_TIMEOUT);
        let http = self.http.as_ref().and_then(|h| h.deadline());
        let remotes = self.remotes.deadline(Instant::now());
        [conn, nodes, self.watchdog_at, reload, http, remotes]
            .into_iter()
            .flatten()
            .min()
    }

    /// One poll and what it brings; `busy`: more work is due, so only
    /// look at what is there and come back.
    pub(super) fn wait_and_dispatch(&mut self, busy: bool) {
        let now = Instant::now();
        let timeout = match self.next_deadline() {
            _ if busy => PollTimeout::ZERO,
            None => PollTimeout::NONE,
            Some(d) => {
                // Round up so we do not wake a hair early and come back
                // for the rest (a periodic check would cost two wake-ups).
                let ms = d
                    .saturating_duration_since(now)
                    .as_nanos()
                    .div_ceil(1_000_000);
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        // zdrun's stdout or stderr takes the output waiting for it.
        let console_ready;
        let (sig_ready, listen_ready, transcripts_ready, conn_ready, health_ready, http_ready) = {
            let mut fds = vec![
                PollFd::new(self.signals.pipe.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.socket.listener.as_fd(), PollFlags::POLLIN),
            ];
            let mut transcript_nodes = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(t) = &n.transcript {
                    for fd in t.readers() {
                        let fd: BorrowedFd = fd;
                        fds.push(PollFd::new(fd, PollFlags::POLLIN));
                        transcript_nodes.push(i);
                    }
                }
            }
            let health_base = fds.len();
            let mut health_nodes = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some((fd, flags)) = n.health.poll_fd() {
                    fds.push(PollFd::new(fd, flags));
                    health_nodes.push(i);
                }
            }
            let console_base = fds.len();
            for fd in self
                .console
                .as_ref()
                .map(|c| c.waiting())
                .unwrap_or_default()
            {
                fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            }
            let base = fds.len();
            for c in &self.conns {
                let mut flags = PollFlags::POLLIN;
                if c.wants_write() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), flags));
            }
            let http_base = fds.len();
            if let Some(h) = &self.http {
                h.poll_fds(&mut fds);
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => self.log.error(&format!("poll failed: {e}")),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let transcripts: Vec<usize> = transcript_nodes
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(&fds[2 + k]))
                .map(|(_, &i)| i)
                .collect();
            let conns: Vec<bool> = fds[base..http_base].iter().map(ready).collect();
            let http: Vec<bool> = fds[http_base..].iter().map(ready).collect();
            let health: Vec<usize> = health_nodes
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(&fds[health_base + k]))
                .map(|(_, &i)| i)
                .collect();
            console_ready = fds[console_base..base].iter().any(ready);
            let (sig, listen) = (ready(&fds[0]), ready(&fds[1]));
            (sig, listen, transcripts, conns, health, http)
        };
        if sig_ready {
            self.signals.drain();
        }
        // Flags are checked every turn: a signal may land between poll
        // returning and the pipe being drained.
        self.handle_signals();
        let output = console_ready || !transcripts_ready.is_empty();
        let mut drained = None;
        for i in transcripts_ready {
            // A node's two pipes (prefixed output) are drained together.
            if drained.replace(i) != Some(i) {
                self.drain_output(i);
            }
        }
        if output {
            self.flush_console();
        }
        if self.exit_status.is_some() {
            // On the way out: answering now would report a manager that is
            // about to be gone. Only the last hooks run.
            let now = Instant::now();
            for n in &mut self.nodes {
                if n.hooks.due(now) {
                    hooks::tick(n, now, &mut self.log);
                }
            }
            return;
        }
        self.handle_timers();
        self.health_turn(&health_ready);
        self.check_reload();
        if std::mem::take(&mut self.sweep_due) {
            self.sweep();
        }
        // Out of self while answering: dispatch needs all of self.
        let mut conns = std::mem::take(&mut self.conns);
        for (conn, ready) in conns.iter_mut().zip(conn_ready) {
            if ready {
                self.service(conn);
            }
        }
        self.conns = conns;
        self.expire_conns();
        self.http_turn(&http_ready);
        if listen_ready {
            self.accept();
        }
    }

    pub(super) fn handle_signals(&mut self) {
        if self.signals.chld.swap(false, Ordering::SeqCst) {
            self.reap();
        }
        if self.signals.usr2.swap(false, Ordering::SeqCst) {
            self.reopen_logs();
        }
        if self.signals.hup.swap(false, Ordering::SeqCst) {
            if self.load.is_some() {
                self.log
                    .info("received SIGHUP; reloading the configuration");
                self.start_reload(None);
            } else {
                self.shutdown("SIGHUP");
            }
        }
        for (flag, name) in [
            (Arc::clone(&self.signals.term), "SIGTERM"),
            (Arc::clone(&self.signals.int), "SIGINT"),
        ] {
            if flag.swap(false, Ordering::SeqCst) {
                self.shutdown(name);
            }
        }
    }

    /// Stop every program (in reverse order, escalating as `stop` does)
    /// and exit once they are gone. A second signal sends SIGKILL at once.
    pub(super) fn shutdown(&mut self, signame: &str) {
        self.log.info(&format!(
            "received {signame}; stopping the program and exiting"
        ));
        let again = self.shutting_down;
        self.shutting_down = true;
        self.note_stop();
        if let Some(n) = &self.notify {
            n.send("STOPPING=1");
        }
        if again {
            for n in &mut self.nodes {
                n.should_be_up = false;
                n.signal_group(Signal::SIGKILL);
            }
            return;
        }
        for n in &mut self.nodes {
            n.should_be_up = false;
            n.backoff = 0;
            if n.pid.is_none() {
                n.delay = None;
            } else if !n.killing {
                n.stop_wanted = true;
            }
        }
        self.stop_in_order();
    }

    pub(super) fn handle_timers(&mut self) {
        let now = Instant::now();
        if let (Some(at), Some(n)) = (self.watchdog_at, &self.notify)
            && at <= now
        {
            n.send("WATCHDOG=1");
            self.watchdog_at = n.watchdog.map(|d| now + d);
        }
        let mut over_memory = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.mem.next.is_some_and(|t| t <= now)
                && let Some(why) = n.check_memory(now, &mut self.log)
            {
                over_memory.push((i, why));
            }
            if n.delay.is_some_and(|d| d <= now) {
                n.delay_passed(now, &mut self.log);
            }
            if n.ready_probe.is_some_and(|t| t <= now) {
                n.probe_ready(&mut self.log);
            }
            if n.test_retry.is_some_and(|t| t <= now) {
                n.run_start_test(&mut self.log);
            }
            if n.start_deadline.is_some_and(|t| t <= now) {
                n.start_timeout_passed(&mut self.log);
            }
            if n.hooks.due(now) {
                hooks::tick(n, now, &mut self.log);
            }
        }
        // A graceful restart, in order, as `restart NAME` does, but not
        // counted against the restart policy.
        for (i, why) in &over_memory {
            let n = &mut self.nodes[*i];
            hooks::raise(n, hooks::Event::MemoryRestart, Some(why));
            n.stop_wanted = true;
        }
        if !over_memory.is_empty() {
            self.stop_in_order();
        }
    }

    pub(super) fn reap(&mut self) {
        let mut ended = Vec::new();
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if matches!(status, WaitStatus::Stopped(..) | WaitStatus::Continued(_)) {
                        continue;
                    }
                    ended.push((pid, status));
                }
            }
        }
        if ended.is_empty() {
            return;
        }
        // One map for the lot: a site that stops ends thousands at once.
        let by_pid: HashMap<Pid, usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.pid.map(|p| (p, i)))
            .collect();
        // The same for the nodes' other children (tests, probes, hooks),
        // made only when something else ended.
        let side: HashMap<Pid, usize> = if ended.iter().all(|(p, _)| by_pid.contains_key(p)) {
            HashMap::new()
        } else {
            self.side_children()
        };
        for (pid, status) in ended {
            if let Some(&i) = by_pid.get(&pid) {
                // Its last output first (before a reload's new settings
                // may switch its output).
                self.end_of_run(i);
                let v = self.nodes[i].exited(status, self.shutting_down, &mut self.log);
                self.verdict(i, v);
                self.sweep_due = true;
            } else if let Some(&i) = side.get(&pid)
                && self.side_child_ended(i, pid, status)
            {
            } else if self.guard.as_ref().is_some_and(|g| g.pid == pid) {
                self.log.warning("the guard process died");
                self.guard = None;
                self.sweep_due = true;
            } else {
                // An orphan of a program, ours as subreaper: its
                // own children are ours now, maybe to kill.
                self.sweep_due = true;
            }
        }
    }

    /// Which node each start test, command probe and hook under way is of.
    fn side_children(&self) -> HashMap<Pid, usize> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.side_pids().map(move |p| (p, i)))
            .collect()
    }

    /// `pid`, a child of node `i` other than its program, ended; false if
    /// it is no longer one (an earlier end in the same batch dropped it).
    fn side_child_ended(&mut self, i: usize, pid: Pid, status: WaitStatus) -> bool {
        let n = &mut self.nodes[i];
        if n.owns_test(pid) {
            n.test_exited(status, &mut self.log);
            true
        } else if n.hooks.owns(pid) {
            hooks::finished(n, status, &mut self.log);
            true
        } else {
            self.health_reaped(i, pid, status)
        }
    }

    /// Kill the orphans of programs that have ended (a program's leftovers
    /// go with it) and, on the way out, every orphan.
    pub(super) fn sweep(&mut self) {
        let Some(manager) = leftovers::manager_id() else {
            return;
        };
        // A lost guard is replaced once no reload or lookup thread runs:
        // a fork must not copy another thread's locks.
        if self.guard.is_none() && leftovers::single_threaded() {
            match leftovers::start_guard() {
                Ok(g) => {
                    self.log.info("started a new guard process");
                    self.guard = Some(g);
                }
                Err(e) => self
                    .log
                    .warning(&format!("cannot start the guard process: {e}")),
            }
        }
        // Programs, and their tests, probes and hooks.
        let ours: std::collections::HashSet<Pid> = self
            .nodes
            .iter()
            .flat_map(|n| n.pid.into_iter().chain(n.side_pids()))
            .collect();
        for pid in leftovers::children() {
            if ours.contains(&pid) || self.guard.as_ref().is_some_and(|g| g.pid == pid) {
                continue;
            }
            let leftover = match leftovers::owner(pid, manager) {
                leftovers::Owner::Node(name) => {
                    self.shutting_down
                        || self
                            .nodes
                            .iter()
                            .find(|n| n.s.name == name)
                            .is_none_or(|n| n.pid.is_none())
                }
                // Unmarked (it cleared its environment): in a single
                // program's zdrun it can only be that program's. Not so
                // for PID 1, which inherits every orphan of the
                // namespace (a `docker exec` shell's background job).
                leftovers::Owner::Unknown => {
                    self.shutting_down
                        || (!self.s.is_site() && !pid1::is_pid1() && self.nodes[0].pid.is_none())
                }
            };
            if leftover {
                self.log.info(&format!(
                    "killing pid {pid}, left behind by an ended program"
                ));
                leftovers::kill_tree(pid);
            }
        }
    }

    pub(super) fn reopen_logs(&mut self) {
        for e in self.log.reopen() {
            self.log.error(&e);
        }
        for i in 0..self.nodes.len() {
            if let Some(t) = &mut self.nodes[i].transcript
                && let Some(e) = t.reopen()
            {
                self.log.error(&e);
            }
        }
        self.set_log_fallback();
    }

    /// Without an event log, warnings go to the first program's transcript
    /// (zdaemon's stderr), else to zdrun's stderr.
    pub(super) fn set_log_fallback(&mut self) {
        let handle = self
            .nodes
            .first()
            .and_then(|n| n.transcript.as_ref())
            .and_then(|t| t.file_handle());
        self.log.set_fallback(handle);
    }
}
