//! zdctl actions on a site (several `<program NAME>` nodes under one
//! zdrun). Each line is worded as zdaemon words it for one program, with
//! the node's name in front; an action without NAME acts on every node.

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
        timeout: Option<i64>,
        gone_is_done: bool,
        spawned: Option<Spawned>,
        done: impl Fn(&NodeInfo) -> bool,
    ) -> std::io::Result<Option<u8>> {
        let t0 = Instant::now();
        let client = self.client.clone();
        self.wait_until(
            |st| {
                if let Some(t) = timeout
                    && t0.elapsed().as_secs_f64() > t as f64 + 1.0
                {
                    return Wait::Fail("Program took too long to start".into(), EXIT_CHECK_FAILED);
                }
                if st.is_none() {
                    return if gone_is_done {
                        Wait::Done
                    } else {
                        Wait::NotYet
                    };
                }
                let all = match client.send("info") {
                    Ok(reply) => brief(&reply),
                    Err(client::Error::NotRunning | client::Error::Busy(_)) => None,
                    Err(e) => return Wait::Abort(e),
                };
                let Some(all) = all else {
                    return Wait::NotYet;
                };
                let selected = all.iter().filter(|n| name.is_none_or(|m| &n.name == m));
                // A program whose supervision ended will not get there.
                if !gone_is_done
                    && let Some(n) = selected
                        .clone()
                        .find(|n| matches!(n.state.as_str(), "fatal" | "exited"))
                {
                    return Wait::Fail(
                        format!("{}: daemon process not running; {}", n.name, n.state),
                        EXIT_CHECK_FAILED,
                    );
                }
                if selected.into_iter().all(&done) {
                    Wait::Done
                } else {
                    Wait::NotYet
                }
            },
            spawned,
        )
    }

    fn print_nodes(&mut self, name: Option<&String>, verb: &str) -> std::io::Result<()> {
        for n in self.site_nodes()?.unwrap_or_default() {
            if name.is_some_and(|m| &n.name != m) {
                continue;
            }
            match n.pid {
                Some(pid) => writeln!(self.out, "{}: daemon process {verb}, pid={pid}", n.name)?,
                None => writeln!(
                    self.out,
                    "{}: daemon process not running; {}",
                    n.name, n.state
                )?,
            }
        }
        Ok(())
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
                writeln!(
                    self.out,
                    "{}",
                    serde_json::json!({"manager": "not running", "nodes": []})
                )?;
            } else {
                writeln!(self.out, "daemon manager not running")?;
            }
            return Ok(EXIT_NOT_RUNNING);
        };
        if json {
            let Ok(mut v) = serde_json::from_str::<Value>(&reply) else {
                writeln!(self.out, "daemon manager not running")?;
                return Ok(EXIT_NOT_RUNNING);
            };
            if let Value::Object(map) = &mut v {
                map.insert("manager".into(), "running".into());
                if let (Some(name), Some(Value::Array(list))) = (name, map.get_mut("nodes")) {
                    list.retain(|n| n["name"].as_str() == Some(name.as_str()));
                }
            }
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
                (Some(pid), state) => {
                    writeln!(self.out, "{}: program running; pid={pid}; {state}", n.name)?
                }
                (None, state) => {
                    writeln!(self.out, "{}: daemon process not running; {state}", n.name)?
                }
            }
        }
        Ok(EXIT_OK)
    }
}

pub(super) fn dispatch(
    ctl: &mut Ctl,
    command: &Command,
    st: Option<Status>,
) -> std::io::Result<u8> {
    let running = |n: &NodeInfo| n.state == "running";
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
            let before: Vec<NodeInfo> = ctl.site_nodes()?.unwrap_or_default();
            let mut spawned = None;
            match &st {
                None => match ctl.spawn_zdrun(&[]) {
                    Ok(c) if ctl.s.daemon => spawned = Some(c),
                    Ok(c) => {
                        c.wait_launcher();
                        return Ok(EXIT_OK);
                    }
                    Err(e) => {
                        writeln!(ctl.out, "cannot start zdrun: {e}")?;
                        return Ok(EXIT_CHECK_FAILED);
                    }
                },
                Some(_) => {
                    let action = if restart { "restart" } else { "start" };
                    let request = match name {
                        Some(n) => format!("{action} {n}"),
                        None => action.to_string(),
                    };
                    ctl.send(&request)?;
                }
            }
            let old: Vec<(String, Option<i64>)> = before
                .iter()
                .filter(|_| restart)
                .map(|n| (n.name.clone(), n.pid))
                .collect();
            // The longest start-timeout of the programs waited for (-T wins).
            let timeout = if ctl.cli.start_timeout.is_some() {
                ctl.s.start_timeout
            } else {
                ctl.s
                    .nodes
                    .iter()
                    .filter(|n| name.is_none_or(|m| &n.name == m))
                    .map(|n| n.start_timeout)
                    .max()
                    .unwrap_or(ctl.s.start_timeout)
            };
            let timeout = Some(timeout);
            if let Some(code) = ctl.wait_nodes(name, timeout, false, spawned, |n| {
                running(n)
                    && !old
                        .iter()
                        .any(|(m, p)| m == &n.name && p.is_some() && *p == n.pid)
            })? {
                return Ok(code);
            }
            ctl.print_nodes(name, if restart { "restarted" } else { "started" })?;
            Ok(EXIT_OK)
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
            ctl.wait_nodes(name, None, true, None, |n| n.pid.is_none())?;
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
            ctl.wait_nodes(None, None, true, None, |n| n.pid.is_none())?;
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
