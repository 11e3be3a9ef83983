//! zdrun as PID 1 of a PID namespace (a container's entry point), and
//! what goes with it: where programs' output goes, and the exit status
//! that says whether the site's stop was clean.
//!
//! As PID 1 zdrun stays in the foreground whatever `daemon` says, as under
//! systemd. Every orphan in the namespace becomes its child: the event
//! loop's `waitpid(-1)` reaps them all, programs' or not. Orphans that do
//! not carry this zdrun's marks (a `docker exec` shell's background job)
//! are reaped and otherwise left alone while the site runs. The kernel
//! delivers to PID 1 only the signals it handles: zdrun acts on SIGTERM
//! and SIGINT (stop the site), SIGHUP (reload), SIGUSR2 (reopen logs) and
//! SIGCHLD; every other signal sent to it is dropped, and none is ever
//! forwarded to the programs (unlike tini or dumb-init, which pass
//! signals on to their one child).

use std::path::Path;
use std::time::SystemTime;

use super::output;
use super::transcript::Transcript;
use super::*;
use crate::settings::NodeSettings;

/// zdrun's exit status when the site stopped (SIGTERM/SIGINT) but some
/// program had to be killed with SIGKILL: the shell's (and Docker's, and
/// tini's) status for a process killed by SIGKILL.
pub const EXIT_UNCLEAN_STOP: i32 = 128 + 9;

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Whether programs' output is prefixed: `prefix-output` when set, else
/// on for a site (whose nodes have names) run as PID 1.
pub fn prefix_output(s: &Settings) -> bool {
    s.prefix_output.unwrap_or(is_pid1() && s.is_site())
}

/// Where a node's output goes: its transcript file when zdrun captures
/// output, else (with `prefixed`) zdrun's own streams after the node's
/// name, else zdrun's streams as they are (`None`).
pub fn node_output(
    n: &NodeSettings,
    file: &Path,
    capture: bool,
    prefixed: bool,
    log: &mut Logger,
) -> Option<Transcript> {
    let to_file = capture && n.transcript != Path::new("/dev/null");
    if prefixed && !to_file {
        // A zdaemon runner's one program has no name: its file's.
        let name = if n.name.is_empty() {
            file.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            n.name.clone()
        };
        return match Transcript::prefixed(&name) {
            Ok(t) => Some(t),
            Err(e) => {
                log.error(&format!("cannot create the output pipes: {e}"));
                None
            }
        };
    }
    capture
        .then(|| new_transcript(&n.transcript, log))
        .flatten()
}

impl Supervisor {
    /// Write what zdrun's streams take now; log lines dropped.
    pub(super) fn flush_console(&mut self) {
        if let Some(c) = &mut self.console {
            for note in c.flush() {
                self.log.warning(&note);
            }
        }
    }

    /// Read node `i`'s output pipes into the console (or its file).
    pub(super) fn drain_output(&mut self, i: usize) {
        if let Some(t) = &mut self.nodes[i].transcript
            && let Some(transcript::Event::WriteFailed(msg)) = t.drain(self.console.as_mut())
        {
            self.log.error(&msg);
        }
    }

    /// Node `i`'s program ended: its last line goes out, ended or not.
    pub(super) fn end_of_run(&mut self, i: usize) {
        if let Some(t) = &mut self.nodes[i].transcript {
            t.end_of_run(self.console.as_mut());
        }
    }

    /// On the way out: everything the pipes hold, the lines in the middle
    /// of being written, and a bounded wait for a slow reader.
    pub(super) fn finish_output(&mut self) {
        if self.console.is_none() {
            return;
        }
        for i in 0..self.nodes.len() {
            self.end_of_run(i);
        }
        if let Some(c) = &mut self.console {
            for note in c.finish(output::EXIT_FLUSH) {
                self.log.warning(&note);
            }
        }
    }

    /// SIGTERM/SIGINT began the site's stop now.
    pub(super) fn note_stop(&mut self) {
        self.stop_began.get_or_insert_with(SystemTime::now);
    }

    /// The exit status once every program is down: 1 when the whole site
    /// gave up (zdaemon's give-up); after a stop by signal,
    /// [`EXIT_UNCLEAN_STOP`] when a program had to be killed with SIGKILL
    /// (at its stop-timeout, or by a second signal), else 0.
    pub(super) fn final_status(&mut self) -> i32 {
        let all_fatal =
            !self.nodes.is_empty() && self.nodes.iter().all(|n| n.ended == Some("fatal"));
        let Some(since) = self.stop_began.filter(|_| self.shutting_down) else {
            return if all_fatal { 1 } else { 0 };
        };
        let killed: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.last_exit
                    .as_ref()
                    .is_some_and(|e| e.signal.as_deref() == Some("SIGKILL") && e.at >= since)
            })
            .map(|n| {
                if n.s.name.is_empty() {
                    "the program".to_string()
                } else {
                    n.s.name.clone()
                }
            })
            .collect();
        if killed.is_empty() {
            return 0;
        }
        self.log.warning(&format!(
            "the stop was not clean: {} had to be killed with SIGKILL; exit status {EXIT_UNCLEAN_STOP}",
            killed.join(", ")
        ));
        EXIT_UNCLEAN_STOP
    }
}
