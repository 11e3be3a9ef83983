//! Reload: the configuration is read in a thread of its own, so a slow
//! file never stalls supervision, then applied between two turns of the
//! loop: added nodes start, removed ones stop, changed ones restart.

use super::*;

/// What a reload read: the settings and each node's program file.
pub(super) type Loaded = Result<(Settings, Vec<PathBuf>), String>;

/// How long a reload may take to read the configuration: less than a
/// client waits for its reply.
pub(super) const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// A reload under way: the configuration is read off the event loop, so
/// a file that is slow to read never stalls supervision.
pub(super) struct Reloading {
    pub(super) answer: std::sync::mpsc::Receiver<Loaded>,
    pub(super) since: Instant,
    /// Clients waiting for the outcome (a SIGHUP has none).
    pub(super) waiters: Vec<UnixStream>,
    /// Asked for again while reading: read once more when done.
    pub(super) again: Vec<UnixStream>,
    pub(super) again_wanted: bool,
    /// Gave up waiting; the thread is still stuck in the files.
    pub(super) abandoned: bool,
}

/// Send a deferred reply on a client's socket and close it. The reply is
/// short and the socket fresh, so it fits the socket's buffer.
pub(super) fn send_reply(waiter: Option<UnixStream>, reply: &str) {
    if let Some(mut w) = waiter {
        use std::io::Write;
        let _ = w.set_nonblocking(true);
        let _ = w.write_all(reply.as_bytes());
    }
}

impl Supervisor {
    /// Re-read the configuration, in a thread: the reply goes to `waiter`
    /// (none for SIGHUP) once it is read and applied.
    pub(super) fn start_reload(&mut self, waiter: Option<UnixStream>) {
        if let Some(r) = &mut self.reloading {
            if !r.abandoned {
                r.again.extend(waiter);
                r.again_wanted = true;
                return;
            }
            if !matches!(
                r.answer.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty)
            ) {
                self.reloading = None;
            } else {
                let reply = "Reload failed; nothing changed:\nthe previous reload is still \
                             reading the configuration\n";
                self.log.error(reply.trim_end());
                send_reply(waiter, reply);
                return;
            }
        }
        let Some(load) = self.load.clone() else {
            send_reply(
                waiter,
                "Reload failed: zdrun was started without a configuration file\n",
            );
            return;
        };
        if let Some(n) = &self.notify {
            n.reloading();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let wake = self.signals.wake.try_clone();
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let loaded = load().and_then(|new| {
                    let files = resolve_files(&new)?;
                    Ok((new, files))
                });
                let _ = tx.send(loaded);
                if let Ok(mut w) = wake {
                    use std::io::Write;
                    let _ = w.write(&[0]);
                }
            });
        if let Err(e) = spawned {
            let reply = format!("Reload failed; nothing changed:\ncannot start reading: {e}\n");
            self.log.error(reply.trim_end());
            send_reply(waiter, &reply);
            return;
        }
        self.reloading = Some(Reloading {
            answer: rx,
            since: Instant::now(),
            waiters: waiter.into_iter().collect(),
            again: Vec::new(),
            again_wanted: false,
            abandoned: false,
        });
    }

    /// Apply a finished reload, or give up on one that takes too long.
    pub(super) fn check_reload(&mut self) {
        let Some(r) = &mut self.reloading else { return };
        let reply = match r.answer.try_recv() {
            Ok(_) if r.abandoned => {
                // Too late: its waiters were told it failed.
                self.reloading = None;
                return;
            }
            Ok(loaded) => self.reload_apply(loaded),
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if r.abandoned || r.since.elapsed() < RELOAD_TIMEOUT {
                    return;
                }
                r.abandoned = true;
                let reply = format!(
                    "Reload failed; nothing changed:\nreading the configuration took longer \
                     than {} seconds\n",
                    RELOAD_TIMEOUT.as_secs()
                );
                self.log.error(reply.trim_end());
                reply
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                "Reload failed; nothing changed:\nthe configuration reader failed\n".to_string()
            }
        };
        if let Some(n) = &self.notify {
            n.send(&format!(
                "READY=1\nSTATUS={}",
                reply.lines().next().unwrap_or("")
            ));
        }
        let Some(r) = &mut self.reloading else { return };
        let waiters = std::mem::take(&mut r.waiters);
        let (again, again_wanted) = (std::mem::take(&mut r.again), r.again_wanted);
        let abandoned = r.abandoned;
        if waiters.is_empty() {
            // Asked for by SIGHUP.
            self.log.info(reply.trim_end());
        }
        for w in waiters {
            send_reply(Some(w), &reply);
        }
        if abandoned {
            // Requests that came while it was stuck fail too.
            for w in again {
                send_reply(Some(w), &reply);
            }
            return;
        }
        self.reloading = None;
        if again_wanted {
            let mut again = again.into_iter();
            self.start_reload(again.next());
            if let Some(r) = &mut self.reloading {
                r.waiters.extend(again);
            }
        }
    }

    /// Switch to a configuration read by a reload: start added nodes,
    /// stop removed ones, restart changed ones. A bad configuration
    /// changes nothing.
    pub(super) fn reload_apply(&mut self, loaded: Loaded) -> String {
        let (new, files) = match loaded {
            Ok(l) => l,
            Err(e) => {
                self.log.error(&format!("reload refused: {e}"));
                return format!("Reload failed; nothing changed:\n{e}\n");
            }
        };
        // A changed <eventlog> takes effect now; one that cannot be
        // opened refuses the whole reload.
        let new_log = if new.eventlog != self.s.eventlog {
            let log = Logger::new(new.eventlog.as_ref());
            if let Some(e) = log.open_errors.first() {
                self.log.error(&format!("reload refused: {e}"));
                return format!("Reload failed; nothing changed:\n{e}\n");
            }
            Some(log)
        } else {
            None
        };
        let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        let capture = self.capture;
        let names: std::collections::HashSet<&str> =
            new.nodes.iter().map(|m| m.name.as_str()).collect();
        for n in &mut self.nodes {
            if !names.contains(n.s.name.as_str()) {
                removed.push(n.s.name.clone());
                n.removed = true;
                // Stopped by the order engine below.
                n.reset(false);
                n.stop_wanted = n.pid.is_some();
            }
        }
        let mut order = Vec::with_capacity(new.nodes.len());
        for (ns, file) in new.nodes.iter().zip(files) {
            let Some(i) = self.index(&ns.name) else {
                added.push(ns.name.clone());
                let transcript = capture
                    .then(|| new_transcript(&ns.transcript, &mut self.log))
                    .flatten();
                self.nodes.push(Node::new(ns.clone(), file, transcript));
                order.push(self.nodes.len() - 1);
                continue;
            };
            order.push(i);
            let n = &mut self.nodes[i];
            // Removed by an earlier reload and still stopping: back again.
            let returning = std::mem::replace(&mut n.removed, false);
            // Compare with what the node will run next, which is the pending
            // settings while a restart for an earlier reload is under way.
            let (next, next_file) = n.pending.as_ref().map_or((&n.s, &n.file), |(s, f)| (s, f));
            if next == ns && *next_file == file && !returning {
                continue;
            }
            // Only what applies to a running program changed (its health
            // check, memory limit, restart policy or event hook): taken at
            // once, without a restart.
            if !returning && n.pending.is_none() && n.file == file && {
                let mut rest = ns.clone();
                rest.health = n.s.health.clone();
                rest.memory = n.s.memory.clone();
                rest.restart = n.s.restart.clone();
                rest.event_hook = n.s.event_hook.clone();
                rest.event_hook_timeout = n.s.event_hook_timeout;
                rest.origins = n.s.origins.clone();
                rest == n.s
            } {
                let retuned =
                    n.s.health != ns.health || n.s.memory != ns.memory || n.s.restart != ns.restart;
                if n.s.health != ns.health {
                    n.retune_health(ns.health.clone());
                }
                if n.s.memory != ns.memory || n.s.restart != ns.restart {
                    n.retune(ns, &mut self.log);
                }
                // The hook's keys, and where every key now is.
                hooks::set_hook(n, ns);
                if retuned {
                    changed.push(ns.name.clone());
                }
                continue;
            }
            if !returning {
                hooks::raise(n, hooks::Event::Reloaded, Some("configuration changed"));
                if n.pid.is_some() {
                    n.hooks.causes.manual += 1;
                }
            }
            if returning {
                added.push(ns.name.clone());
            } else {
                changed.push(ns.name.clone());
            }
            if n.s == *ns && n.file == file {
                // Back to what runs now: nothing to switch to.
                n.pending = None;
                n.next_transcript = None;
            } else {
                if n.s.transcript != ns.transcript {
                    // The old run keeps its pipe until it exits; the next
                    // run writes to the new file.
                    n.next_transcript = capture
                        .then(|| new_transcript(&ns.transcript, &mut self.log))
                        .flatten();
                }
                n.pending = Some((ns.clone(), file));
            }
            if n.pid.is_some() || n.should_be_up || returning {
                // Restarted by the order engine below.
                n.reset(true);
                n.stop_wanted = n.pid.is_some();
            } else {
                // Stopped (by `stop NAME`, or given up): it stays stopped,
                // with the new settings for its next start.
                n.apply_pending();
            }
        }
        // New configuration order first, removed nodes (stopping) after.
        let mut nodes: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        let mut sorted: Vec<Node> = order.iter().filter_map(|&i| nodes[i].take()).collect();
        sorted.extend(nodes.into_iter().flatten());
        self.nodes = sorted;
        self.reload_http(new.http_server.as_ref());
        let socket = self.s.socket.clone();
        self.s = Settings { socket, ..new };
        self.rebuild_graph();
        self.write_record();
        self.stop_in_order();
        // The configuration was read in another thread, whose malloc arena
        // keeps what the old settings freed: give it back.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            nix::libc::malloc_trim(0);
        }
        if let Some(log) = new_log {
            self.log
                .info("event log configuration changed; switching to the new one");
            self.log = log;
            self.set_log_fallback();
            self.log.info("event log reopened after reload");
        }
        // The one program of a zdaemon runner config has no name.
        let list = |v: &Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                let names: Vec<&str> = v
                    .iter()
                    .map(|n| if n.is_empty() { "program" } else { n.as_str() })
                    .collect();
                names.join(" ")
            }
        };
        format!(
            "Reloaded: added {}; removed {}; changed {}\n",
            list(&added),
            list(&removed),
            list(&changed)
        )
    }
}
