//! The control socket's requests: accepting clients, zdaemon's commands
//! (status, start, stop, restart, kill) and ours (info).

use super::*;

/// Reply to start/restart once a signal has told zdrun to exit.
pub(super) const SHUTTING_DOWN: &str = "Daemon manager is shutting down\n";

/// Python's `int(s)` for a signal number; out-of-range numbers become
/// ones kill() rejects, as in Python.
pub(super) fn parse_python_int(s: &str) -> Option<i32> {
    crate::pyrepr::parse_int(s).map(|n| n.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
}

impl Supervisor {
    /// Take every waiting client. One whose line is already in is
    /// answered at once whatever the load; one that must wait for its line
    /// takes a place, and with none left is turned away at once.
    pub(super) fn accept(&mut self) {
        let now = Instant::now();
        while let Some(client) = self.socket.listener.accept() {
            let mut conn = Conn::new(client.stream, now);
            conn.refusal = self.refuse(&conn);
            self.answer(&mut conn);
            let room =
                !client.on_spare && (conn.answered() || self.conns.len() < server::MAX_CONNECTIONS);
            if conn.finished() {
                drop(conn);
            } else if room {
                self.conns.push(conn);
            } else if conn.answered() {
                // A long reply that cannot wait on the spare descriptor.
                drop(conn);
            } else {
                server::turn_away(conn.stream);
                self.socket.listener.note_turned_away();
            }
        }
        if let Some(msg) = self.socket.listener.report(now) {
            self.log.warning(&msg);
        }
    }

    /// Read what the client sent and answer a complete line.
    pub(super) fn answer(&mut self, conn: &mut Conn) {
        if let Input::Line(line) = conn.read() {
            match conn.refusal.take() {
                Some(refusal) => {
                    self.log.warning(refusal.trim_end());
                    conn.reply(&refusal);
                }
                None if protocol::split_request(&line).first().map(String::as_str)
                    == Some("reload") =>
                {
                    // The reply waits for the configuration to be read; the
                    // connection lives on in a copy of its socket.
                    match conn.stream.try_clone() {
                        Ok(waiter) => {
                            self.start_reload(Some(waiter));
                            conn.reply_nothing();
                        }
                        Err(e) => conn.reply(&format!("Reload failed; nothing changed:\n{e}\n")),
                    }
                }
                None => match self.dispatch(&line) {
                    Some(r) => conn.reply(&r),
                    None => conn.reply_nothing(),
                },
            }
        }
    }

    /// Only our own uid and root may control us.
    pub(super) fn refuse(&self, conn: &Conn) -> Option<String> {
        server::refusal(&conn.stream)
    }

    pub(super) fn service(&mut self, conn: &mut Conn) {
        if let Some(e) = conn.write() {
            self.log.warning(&e);
        }
        self.answer(conn);
    }

    pub(super) fn expire_conns(&mut self) {
        let now = Instant::now();
        for c in &mut self.conns {
            if !c.answered() && c.deadline <= now {
                c.reply(protocol::REPLY_NOT_TERMINATED);
            }
        }
        self.conns
            .retain(|c| !(c.finished() || c.answered() && c.deadline <= now));
    }

    /// The nodes a command names: all of them without a name (and always
    /// the single one of a zdaemon runner config, which ignores names).
    pub(super) fn targets(&self, name: Option<&String>) -> Result<Vec<usize>, String> {
        match name {
            Some(name) if self.s.is_site() => match self.index(name) {
                Some(i) => Ok(vec![i]),
                None => Err(format!(
                    "Unknown program {}\n",
                    crate::pyrepr::repr_str(name)
                )),
            },
            _ => Ok((0..self.nodes.len()).collect()),
        }
    }

    /// Run one request line; `None` means send no reply at all.
    pub(super) fn dispatch(&mut self, line: &[u8]) -> Option<String> {
        let words = protocol::split_request(line);
        let Some((cmd, args)) = words.split_first() else {
            return Some(protocol::REPLY_EMPTY.into());
        };
        let reply = match cmd.as_str() {
            "status" => match self.targets(args.first()) {
                Ok(t) => match t.first() {
                    Some(&i) => self.nodes[i].status(std::process::id() as i32).to_reply(),
                    None => self.empty_status().to_reply(),
                },
                Err(e) => e,
            },
            "start" => self.cmd_start(args.first()),
            "stop" => self.cmd_stop(args.first()),
            "restart" => self.cmd_restart(args.first()),
            "kill" => self.cmd_kill(args),
            "reopen_transcript" => {
                self.reopen_logs();
                return None;
            }
            "info" => self.info_json(),
            // Ours: how many nodes are on their way up or down (a number,
            // cheap at any size), so that a client waiting on a large
            // site asks for the whole `info` once there is news.
            "unsettled" => format!(
                "{}\n",
                self.nodes
                    .iter()
                    .filter(|n| matches!(
                        n.state(),
                        "starting" | "waiting" | "backoff" | "stopping"
                    ))
                    .count()
            ),
            "reload" => {
                // Answered once the configuration is read (see answer()).
                self.start_reload(None);
                return None;
            }
            _ => protocol::reply_unknown(cmd),
        };
        Some(reply)
    }

    /// A site with no programs left still answers `status`.
    pub(super) fn empty_status(&self) -> Status {
        Status {
            now: wall(SystemTime::now()),
            should_be_up: false,
            delay: None,
            backoff: 0,
            lasttime: None,
            application: 0,
            testing: false,
            manager: std::process::id() as i32,
            backofflimit: self.s.backoff_limit,
            filename: String::new(),
            args: Vec::new(),
        }
    }

    /// `start`: every node, or NAME and what it comes after.
    pub(super) fn cmd_start(&mut self, name: Option<&String>) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        let targets = match self.targets(name) {
            Ok(t) if t.len() == 1 => self.with_deps(t[0]),
            Ok(t) => t,
            Err(e) => return e,
        };
        let mut started = false;
        for i in targets {
            self.nodes[i].stop_wanted = false;
            started |= self.nodes[i].cmd_start();
        }
        if started {
            "Application started\n".into()
        } else {
            "Application already started\n".into()
        }
    }

    pub(super) fn cmd_stop(&mut self, name: Option<&String>) -> String {
        let targets = match self.targets(name) {
            Ok(t) => t,
            Err(e) => return e,
        };
        if targets.len() == self.nodes.len()
            && !self.s.hang_around
            && let Some(n) = &self.notify
        {
            // Everything stops and zdrun with it.
            n.send("STOPPING=1");
        }
        if self.stop_nodes(&targets, false) {
            "Sent SIGTERM\n".into()
        } else {
            "Application already stopped\n".into()
        }
    }

    /// `restart`: every node (stopped in reverse order, started in order)
    /// or NAME alone.
    pub(super) fn cmd_restart(&mut self, name: Option<&String>) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        let targets = match self.targets(name) {
            Ok(t) => t,
            Err(e) => return e,
        };
        for &i in &targets {
            if self.nodes[i].pid.is_some() {
                self.nodes[i].hooks.causes.manual += 1;
            }
        }
        if self.stop_nodes(&targets, true) {
            "Sent SIGTERM; will restart later\n".into()
        } else {
            "Application started\n".into()
        }
    }

    pub(super) fn cmd_kill(&mut self, args: &[String]) -> String {
        let sig: i32 = match args.first() {
            None => 15,
            Some(a) => match parse_python_int(a) {
                Some(n) => n,
                None => return format!("Bad signal {}\n", crate::pyrepr::repr_str(a)),
            },
        };
        let targets = match self.targets(args.get(1)) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let pids: Vec<Pid> = targets.iter().filter_map(|&i| self.nodes[i].pid).collect();
        if pids.is_empty() {
            return "Application not running\n".into();
        }
        for pid in pids {
            let sent = if sig == 0 {
                kill(pid, None)
            } else {
                Signal::try_from(sig).and_then(|s| kill(pid, s))
            };
            if let Err(e) = sent {
                return format!(
                    "Kill {sig} failed: {}\n",
                    crate::pyrepr::os_error(e as i32, None)
                );
            }
        }
        format!("Signal {sig} sent\n")
    }

    pub(super) fn info_json(&self) -> String {
        let now = Instant::now();
        let nodes: Vec<node::NodeInfo> = (0..self.nodes.len())
            .map(|i| {
                let n = &self.nodes[i];
                let waiting = (n.pid.is_none() && n.should_be_up && n.delay.is_none())
                    .then(|| {
                        self.blocker(i)
                            .map(|d| self.nodes[d].s.name.as_str())
                            .or_else(|| self.remote_waiting(i, now))
                    })
                    .flatten();
                n.info(now, waiting)
            })
            .collect();
        let manager_pid = std::process::id();
        let text = if self.s.is_site() {
            #[derive(serde::Serialize)]
            struct Site<'a> {
                manager_pid: u32,
                site: bool,
                nodes: &'a [node::NodeInfo<'a>],
            }
            serde_json::to_string(&Site {
                manager_pid,
                site: true,
                nodes: &nodes,
            })
        } else {
            // A zdaemon runner config: the program's fields at the top.
            #[derive(serde::Serialize)]
            struct Single<'a> {
                manager_pid: u32,
                site: bool,
                nodes: &'a [node::NodeInfo<'a>],
                #[serde(flatten)]
                program: &'a node::NodeInfo<'a>,
            }
            match nodes.first() {
                Some(first) => serde_json::to_string(&Single {
                    manager_pid,
                    site: false,
                    nodes: &nodes,
                    program: first,
                }),
                None => Ok(String::from("{}")),
            }
        };
        let mut text = text.unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn python_ints() {
        assert_eq!(parse_python_int(" 9 "), Some(9));
        assert_eq!(parse_python_int("-1"), Some(-1));
        assert_eq!(parse_python_int("1_5"), Some(15));
        assert_eq!(parse_python_int("x"), None);
        assert_eq!(parse_python_int("_1"), None);
        assert_eq!(parse_python_int(""), None);
    }
}
