//! zdctl actions on a site (several `<program NAME>` nodes under one
//! zdrun). Each line is worded as zdaemon words it for one program, with
//! the node's name in front; an action without NAME acts on every node.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::daemon::{Ctl, Spawned, Wait};
use super::{Command, EXIT_CHECK_FAILED, EXIT_NOT_RUNNING, EXIT_OK};
use crate::client::{self, Status};

/// One node as zdrun's `info` reports it.
#[derive(Clone, Debug)]
struct NodeInfo {
    name: String,
    state: String,
    pid: Option<i64>,
    /// Why it is not running (and ready), when it is not.
    reason: Option<String>,
    after: Vec<String>,
}

impl NodeInfo {
    /// The state as status shows it: the reason when there is one (it
    /// names the state).
    fn why(&self) -> &str {
        self.reason.as_deref().unwrap_or(&self.state)
    }
}

/// Just what the text views need from `info`: a site's reply is large,
/// and reading it into a generic tree would cost more than the rest.
#[derive(serde::Deserialize)]
struct Brief {
    #[serde(default)]
    nodes: Vec<BriefNode>,
}

#[derive(serde::Deserialize)]
struct BriefNode {
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: String,
    pid: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    after: Vec<String>,
}

fn brief(reply: &str) -> Option<Vec<NodeInfo>> {
    let b: Brief = serde_json::from_str(reply).ok()?;
    Some(
        b.nodes
            .into_iter()
            .map(|n| NodeInfo {
                name: n.name,
                state: n.state,
                pid: n.pid,
                reason: n.reason,
                after: n.after,
            })
            .collect(),
    )
}

impl Ctl<'_> {
    fn site_nodes(&self) -> std::io::Result<Option<Vec<NodeInfo>>> {
        Ok(self.send("info")?.and_then(|r| brief(&r)))
    }

    /// Is `name` one of ours? Prints the complaint if not.
    fn known(&mut self, name: Option<&String>) -> std::io::Result<bool> {
        match name {
            Some(n) if !self.s.nodes.iter().any(|m| &m.name == n) => {
                writeln!(self.out, "no program named {}", crate::pyrepr::repr_str(n))?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// Wait until every selected node satisfies `done`, printing dots.
    fn wait_nodes(
        &mut self,
        name: Option<&String>,
        spawned: Option<Spawned>,
        done: impl Fn(&NodeInfo) -> bool,
    ) -> std::io::Result<Option<u8>> {
        let client = self.client.clone();
        self.wait_until(
            |st| {
                if st.is_none() {
                    return Wait::Done;
                }
                let all = match client.send("info") {
                    Ok(reply) => brief(&reply),
                    Err(client::Error::NotRunning | client::Error::Busy(_)) => None,
                    Err(e) => return Wait::Abort(e),
                };
                let Some(all) = all else {
                    return Wait::NotYet;
                };
                if all
                    .iter()
                    .filter(|n| name.is_none_or(|m| &n.name == m))
                    .all(&done)
                {
                    Wait::Done
                } else {
                    Wait::NotYet
                }
            },
            spawned,
        )
    }

    /// Wait for a start or restart of `selected` (in the file's order):
    /// each node is waited for on its own, up to its own start-timeout
    /// from when it could start, and one that cannot start makes what
    /// comes after it wait no longer. Returns each node's outcome, or the
    /// exit status if the wait itself failed.
    fn wait_started(
        &mut self,
        selected: &[String],
        old: &HashMap<String, i64>,
        spawned: Option<Spawned>,
    ) -> std::io::Result<Result<Vec<(String, Outcome)>, u8>> {
        let timeouts: HashMap<String, f64> = self
            .s
            .nodes
            .iter()
            .map(|n| {
                let t = if self.cli.start_timeout.is_some() {
                    self.s.start_timeout
                } else {
                    n.start_timeout
                };
                (n.name.clone(), t.max(0) as f64)
            })
            .collect();
        let client = self.client.clone();
        let mut since: HashMap<String, Instant> = HashMap::new();
        let mut outcomes = Vec::new();
        // info of a large site is not free, for zdrun least of all while it
        // starts programs: leave it most of the time.
        let mut next_ask = Instant::now();
        let failed = self.wait_until(
            |st| {
                if st.is_none() {
                    return Wait::NotYet;
                }
                // Between the paced asks, a cheap one says when nothing is
                // on its way any more: then is the time to look.
                if Instant::now() < next_ask
                    && client
                        .send("unsettled")
                        .map_or(true, |r| r.trim().parse::<u64>().map_or(true, |n| n > 0))
                {
                    return Wait::NotYet;
                }
                let asked = Instant::now();
                let all = match client.send("info") {
                    Ok(reply) => brief(&reply),
                    Err(client::Error::NotRunning | client::Error::Busy(_)) => None,
                    Err(e) => return Wait::Abort(e),
                };
                next_ask = asked + asked.elapsed() * 8;
                let Some(all) = all else {
                    return Wait::NotYet;
                };
                let now = Instant::now();
                let by_name: HashMap<&str, &NodeInfo> =
                    all.iter().map(|n| (n.name.as_str(), n)).collect();
                let mut memo: HashMap<String, Option<Outcome>> = HashMap::new();
                let mut result = Vec::with_capacity(selected.len());
                for name in selected {
                    let Some(n) = by_name.get(name.as_str()) else {
                        continue;
                    };
                    // Its clock runs once nothing holds it up: not waiting
                    // for what it comes after, not an old run still there.
                    let old_run = n.pid.is_some() && old.get(name) == n.pid.as_ref();
                    if !old_run && !matches!(n.state.as_str(), "waiting" | "stopping") {
                        since.entry(name.clone()).or_insert(now);
                    }
                    let timed_out = since.get(name).is_some_and(|t| {
                        now.duration_since(*t).as_secs_f64()
                            > timeouts.get(name).copied().unwrap_or(0.0)
                    });
                    match outcome(n, old, timed_out, &by_name, &mut memo, 0) {
                        Some(o) => result.push((name.clone(), o)),
                        None => return Wait::NotYet,
                    }
                }
                outcomes = result;
                Wait::Done
            },
            spawned,
        )?;
        Ok(match failed {
            Some(code) => Err(code),
            None => Ok(outcomes),
        })
    }

    fn site_status(
        &mut self,
        st: Option<Status>,
        name: Option<&String>,
        json: bool,
    ) -> std::io::Result<u8> {
        let reply = match st {
            Some(_) => self.send("info")?,
            None => None,
        };
        let Some(reply) = reply else {
            if json {
                writeln!(self.out, "{}", crate::report::not_running_document())?;
            } else {
                writeln!(self.out, "daemon manager not running")?;
            }
            return Ok(EXIT_NOT_RUNNING);
        };
        if json {
            let Ok(v) = serde_json::from_str::<Value>(&reply) else {
                writeln!(self.out, "daemon manager not running")?;
                return Ok(EXIT_NOT_RUNNING);
            };
            let v = crate::report::status_document(v, name.map(String::as_str));
            writeln!(self.out, "{v}")?;
            return Ok(EXIT_OK);
        }
        for n in brief(&reply).unwrap_or_default() {
            if name.is_some_and(|m| &n.name != m) {
                continue;
            }
            match (n.pid, n.state.as_str()) {
                (Some(pid), "running") => {
                    writeln!(self.out, "{}: program running; pid={pid}", n.name)?
                }
                (Some(pid), _) => writeln!(
                    self.out,
                    "{}: program running; pid={pid}; {}",
                    n.name,
                    n.why()
                )?,
                (None, _) => writeln!(
                    self.out,
                    "{}: daemon process not running; {}",
                    n.name,
                    n.why()
                )?,
            }
        }
        Ok(EXIT_OK)
    }
}

/// How a node's start ended, as zdctl reports it.
#[derive(Clone, Debug)]
enum Outcome {
    /// Runs the pid it ran before `start` (not a restart).
    Already(i64),
    Started(i64),
    /// Not ready within its start-timeout.
    TooLong,
    /// Its supervision ended (fatal, or exited with an exit code).
    Ended(String),
    /// Cannot start: this node it comes after did not.
    WaitingFor(String),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Already(_) | Outcome::Started(_))
    }
}

/// A node's outcome, or `None` while it may still get there.
fn outcome(
    n: &NodeInfo,
    old: &HashMap<String, i64>,
    timed_out: bool,
    all: &HashMap<&str, &NodeInfo>,
    memo: &mut HashMap<String, Option<Outcome>>,
    depth: usize,
) -> Option<Outcome> {
    if let Some(o) = memo.get(&n.name) {
        return o.clone();
    }
    let o = if let (Some(pid), "running") = (n.pid, n.state.as_str()) {
        match old.get(&n.name) {
            None => Some(Outcome::Started(pid)),
            Some(&p) if p != pid => Some(Outcome::Started(pid)),
            Some(_) => None,
        }
    } else if matches!(n.state.as_str(), "fatal" | "exited") {
        Some(Outcome::Ended(n.why().to_string()))
    } else if timed_out {
        Some(Outcome::TooLong)
    } else if n.pid.is_none() && n.state == "waiting" && depth < 64 {
        // Held up by what it comes after: settled once that cannot start.
        n.after.iter().find_map(|d| {
            let dep = all.get(d.as_str())?;
            let stuck = dep.state == "stopped"
                || outcome(dep, old, false, all, memo, depth + 1).is_some_and(|o| !o.ok());
            stuck.then(|| Outcome::WaitingFor(d.clone()))
        })
    } else {
        None
    };
    memo.insert(n.name.clone(), o.clone());
    o
}

pub(super) fn dispatch(
    ctl: &mut Ctl,
    command: &Command,
    st: Option<Status>,
) -> std::io::Result<u8> {
    match command {
        Command::Status { json, extra, long } => {
            let name = extra.first();
            if !ctl.known(name)? {
                return Ok(EXIT_CHECK_FAILED);
            }
            let code = ctl.site_status(st, name, *json)?;
            if *long && !*json && code == EXIT_OK {
                raw_statuses(ctl, name)?;
            }
            Ok(code)
        }
        Command::Start { args } | Command::Restart { args } => {
            let name = args.first();
            if !ctl.known(name)? {
                return Ok(EXIT_CHECK_FAILED);
            }
            let restart = matches!(command, Command::Restart { .. });
            // What is waited for: the named node (with what it comes after,
            // for start) or every node, in the file's order.
            let selected: Vec<String> = match name {
                None => ctl.s.nodes.iter().map(|n| n.name.clone()).collect(),
                Some(n) if restart => vec![n.clone()],
                Some(n) => with_deps(&ctl.s, n),
            };
            let before: Vec<NodeInfo> = match &st {
                Some(_) => ctl.site_nodes()?.unwrap_or_default(),
                None => Vec::new(),
            };
            // The pids that do not count as started: for a restart the old
            // run, for a start the one already there (reported as such).
            let old: HashMap<String, i64> = before
                .iter()
                .filter_map(|n| Some((n.name.clone(), n.pid?)))
                .collect();
            let mut spawned = None;
            match &st {
                None => {
                    let only = name.map(|_| selected.join(" "));
                    match ctl.spawn_zdrun(&[], only.as_deref()) {
                        Ok(c) if ctl.s.daemon => spawned = Some(c),
                        Ok(c) => {
                            c.wait_launcher();
                            return Ok(EXIT_OK);
                        }
                        Err(e) => {
                            writeln!(ctl.out, "cannot start zdrun: {e}")?;
                            return Ok(EXIT_CHECK_FAILED);
                        }
                    }
                }
                Some(_) => {
                    let action = if restart { "restart" } else { "start" };
                    let request = match name {
                        Some(n) => format!("{action} {n}"),
                        None => action.to_string(),
                    };
                    ctl.send(&request)?;
                }
            }
            let waited_old: HashMap<String, i64> =
                if restart { old.clone() } else { HashMap::new() };
            let outcomes = match ctl.wait_started(&selected, &waited_old, spawned)? {
                Ok(o) => o,
                Err(code) => return Ok(code),
            };
            let verb = if restart { "restarted" } else { "started" };
            let mut code = EXIT_OK;
            for (name, o) in outcomes {
                let o = match o {
                    Outcome::Started(pid) if !restart && old.get(&name) == Some(&pid) => {
                        Outcome::Already(pid)
                    }
                    o => o,
                };
                if !o.ok() {
                    code = EXIT_CHECK_FAILED;
                }
                match o {
                    Outcome::Already(pid) => {
                        writeln!(ctl.out, "{name}: daemon process already running; pid={pid}")?
                    }
                    Outcome::Started(pid) => {
                        writeln!(ctl.out, "{name}: daemon process {verb}, pid={pid}")?
                    }
                    Outcome::TooLong => {
                        writeln!(ctl.out, "{name}: Program took too long to start")?
                    }
                    Outcome::Ended(why) => {
                        writeln!(ctl.out, "{name}: daemon process not running; {why}")?
                    }
                    Outcome::WaitingFor(d) => writeln!(ctl.out, "{name}: waiting for {d}")?,
                }
            }
            Ok(code)
        }
        Command::Stop { name } => {
            let name = name.as_ref();
            if !ctl.known(name)? {
                return Ok(EXIT_CHECK_FAILED);
            }
            if st.is_none() {
                writeln!(ctl.out, "daemon manager not running")?;
                return Ok(EXIT_OK);
            }
            ctl.send(&match name {
                Some(n) => format!("stop {n}"),
                None => "stop".into(),
            })?;
            ctl.wait_nodes(name, None, |n| n.pid.is_none())?;
            match name {
                Some(n) => writeln!(ctl.out, "{n}: daemon process stopped")?,
                None => writeln!(ctl.out, "daemon process stopped")?,
            }
            Ok(EXIT_OK)
        }
        Command::Kill { signal } => {
            // Checked before the action runs (see the usage module).
            let Ok(args) = super::usage::kill_args(&ctl.s, signal) else {
                return Ok(super::EXIT_USAGE);
            };
            let name = args.node.as_ref();
            let Some((sig, num)) = super::help::signal_by_name(&args.signal) else {
                return Ok(super::EXIT_USAGE);
            };
            for n in ctl.site_nodes()?.unwrap_or_default() {
                if name.is_some_and(|m| &n.name != m) {
                    continue;
                }
                signal_node(ctl, &n, sig, num)?;
            }
            if st.is_none() {
                writeln!(ctl.out, "daemon process not running")?;
            }
            Ok(EXIT_OK)
        }
        Command::Wait => {
            ctl.wait_nodes(None, None, |n| n.pid.is_none())?;
            writeln!(ctl.out, "daemon process stopped")?;
            let st = ctl.status()?;
            ctl.site_status(st, None, false)?;
            Ok(EXIT_OK)
        }
        Command::Fg { args } => {
            let Some(name) = args.first() else {
                writeln!(ctl.out, "fg needs the name of a program in a site")?;
                return Ok(EXIT_CHECK_FAILED);
            };
            if !ctl.known(Some(name))? {
                return Ok(EXIT_CHECK_FAILED);
            }
            let up = ctl
                .site_nodes()?
                .unwrap_or_default()
                .iter()
                .any(|n| &n.name == name && n.pid.is_some());
            if up {
                writeln!(
                    ctl.out,
                    "To run the program in the foreground, please stop it first."
                )?;
                return Ok(EXIT_OK);
            }
            let node = ctl.s.nodes.iter().find(|n| &n.name == name).cloned();
            if let Some(node) = node {
                let mut argv = node.program.clone();
                argv.extend(args[1..].iter().cloned());
                ctl.run_foreground(&argv, &node.environment)?;
            }
            Ok(EXIT_OK)
        }
        Command::Logreopen => {
            ctl.reopen_transcript(st.as_ref())?;
            let st = ctl.status()?;
            dispatch(
                ctl,
                &Command::Kill {
                    signal: vec!["USR2".into()],
                },
                st,
            )
        }
        other => unreachable!("{other:?} is handled before this dispatch"),
    }
}

/// `status -l`: each node's raw status reply (zdrun's `status NAME`),
/// every line led by the node's name, after a blank line.
fn raw_statuses(ctl: &mut Ctl, name: Option<&String>) -> std::io::Result<()> {
    let names: Vec<String> = match name {
        Some(n) => vec![n.clone()],
        None => ctl.s.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    for n in names {
        let Some(reply) = ctl.send(&format!("status {n}"))? else {
            break;
        };
        writeln!(ctl.out)?;
        for line in reply.lines() {
            writeln!(ctl.out, "{n}: {line}")?;
        }
    }
    Ok(())
}

/// Send a signal to one node's program, saying so as zdaemon says it for
/// a single program, each line led by the node's name.
fn signal_node(ctl: &mut Ctl, n: &NodeInfo, sig: &str, num: i32) -> std::io::Result<()> {
    let Some(pid) = n.pid.filter(|p| *p > 0) else {
        return writeln!(ctl.out, "{}: daemon process not running", n.name);
    };
    writeln!(ctl.out, "{}: kill({pid}, {num})", n.name)?;
    let sent = nix::sys::signal::Signal::try_from(num)
        .and_then(|s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), s));
    match sent {
        Ok(()) => writeln!(ctl.out, "{}: signal {sig} sent to process {pid}", n.name),
        Err(e) => writeln!(
            ctl.out,
            "{}: Error: {}",
            n.name,
            crate::pyrepr::os_error(e as i32, None)
        ),
    }
}

/// `name` and every node it comes after, transitively, in the file's order.
fn with_deps(s: &crate::settings::Settings, name: &str) -> Vec<String> {
    let mut wanted = std::collections::HashSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if !wanted.insert(n.clone()) {
            continue;
        }
        if let Some(node) = s.nodes.iter().find(|m| m.name == n) {
            todo.extend(node.after.iter().cloned());
        }
    }
    s.nodes
        .iter()
        .filter(|n| wanted.contains(&n.name))
        .map(|n| n.name.clone())
        .collect()
}
