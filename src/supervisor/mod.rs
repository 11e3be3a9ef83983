//! `zdrun`: the daemon manager. Runs one program, restarts it by zdaemon's
//! rules, and answers zdaemon's control protocol on a Unix socket.
//!
//! One event loop on the main thread, one `poll`: signals arrive through
//! a self-pipe, the programs' output through the transcript pipes, clients
//! through the socket. A reload's reading of files and name lookups for
//! readiness run in short-lived threads that never touch the loop's state
//! (a reload wakes the loop through the self-pipe). The poll timeout is
//! the next scheduled action, or none at all, so an idle zdrun never
//! wakes up.
//!
//! Deliberate differences from zdaemon (its quirks, not its protocol):
//! the program runs in its own process group and `stop` signals the whole
//! group; SIGTERM/SIGINT to zdrun stop the program before zdrun exits 0,
//! SIGHUP reloads; nothing the program started outlives it or zdrun
//! (see leftovers.rs); clients are served concurrently, each with a read
//! deadline; only our uid and root may use the socket; `hang-around`
//! keeps zdrun up after `stop`.
//!
//! Files: `startup` (command line, settings, daemonizing), `event_loop`
//! (poll, signals, timers, reaping), `commands` (the socket's requests),
//! `reload`, `node` (one program's state and governor), `spawn`,
//! `server` (the socket), `transcript`, `leftovers`; `http`, `http_conn`
//! and `http_page` (the status page, polled in the same loop).

mod commands;
mod event_loop;
mod health;
mod hooks;
mod http;
mod http_conn;
mod http_page;
mod leftovers;
mod memory;
mod node;
mod policy;
mod reload;
mod server;
mod spawn;
mod startup;
mod transcript;

use event_loop::START_ONLY_VAR;
pub use startup::{main, run};

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::{self, Config};
use crate::eventlog::Logger;
use crate::protocol::{self, Status};
use crate::settings::{Bases, Settings};
use event_loop::Signals;
use node::{Node, Verdict};
use reload::{RELOAD_TIMEOUT, Reloading};
use server::{Conn, ControlSocket, Input};
use transcript::Transcript;

pub const EXIT_USAGE: i32 = 2;

/// Re-reads the settings for `reload` (in a thread of its own).
pub type Loader = Arc<dyn Fn() -> Result<Settings, String> + Send + Sync>;

fn wall(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Supervisor {
    s: Settings,
    log: Logger,
    socket: ControlSocket,
    signals: Signals,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    /// Set by SIGTERM/SIGINT: stop every program, then exit 0.
    shutting_down: bool,
    exit_status: Option<i32>,
    load: Option<Loader>,
    /// Programs' output goes to transcripts (daemon mode or systemd),
    /// fixed at start: a reload cannot un-daemonize zdrun.
    capture: bool,
    /// systemd's notification socket, when run as a `Type=notify` unit.
    notify: Option<crate::notify::Notifier>,
    ready_sent: bool,
    last_summary: String,
    watchdog_at: Option<Instant>,
    /// Kills what the programs leave behind once zdrun is gone.
    guard: Option<leftovers::Guard>,
    /// A program ended or an orphan died: look for leftovers to kill.
    sweep_due: bool,
    /// A reload reading the configuration in its own thread.
    reloading: Option<Reloading>,
    /// Names and `after` edges of `nodes`, rebuilt when the list changes.
    graph: event_loop::Graph,
    /// Starts the programs that are due, on two threads when a batch of
    /// them is.
    spawner: spawn::Spawner,
    /// What one start took per thread, lately: how many to make ready in
    /// a turn.
    spawn_cost: std::time::Duration,
    /// `<http-server>`: the status page, when configured.
    http: Option<http::HttpServer>,
}

/// Find each node's program file; the first failure is the error, with
/// the file and line of its `program`. Thousands of nodes often run the
/// same program: each word is looked up once per base directory.
fn resolve_files(s: &Settings) -> Result<Vec<PathBuf>, String> {
    let mut found: std::collections::HashMap<(&str, &Path), PathBuf> = Default::default();
    s.nodes
        .iter()
        .map(|n| {
            let word = n.program.first().map(String::as_str).unwrap_or_default();
            let key = (word, n.base.as_path());
            if let Some(f) = found.get(&key) {
                return Ok(f.clone());
            }
            let f = n.program_file()?;
            found.insert(key, f.clone());
            Ok(f)
        })
        .collect()
}

fn new_transcript(path: &Path, log: &mut Logger) -> Option<Transcript> {
    // Output to /dev/null needs no pipe: the program inherits zdrun's
    // stdio, which is /dev/null in daemon mode. Saves two fds per node.
    if path == Path::new("/dev/null") {
        return None;
    }
    match Transcript::new(path) {
        Ok((t, err)) => {
            if let Some(e) = err {
                log.error(&e);
            }
            Some(t)
        }
        Err(e) => {
            log.error(&format!("cannot create the transcript pipe: {e}"));
            None
        }
    }
}
