//! `after HOST:PORT`: a node that comes after a server this zdrun does not
//! run (another container, another host) starts once that address accepts
//! TCP connections. Checked before every start of the node, as `after NAME`
//! is; a server that goes away later does not stop what already runs.
//!
//! One check per address at a time, however many nodes wait for it, each
//! in a short-lived thread of its own: host names (Compose service names,
//! Kubernetes services) are resolved with the system's resolver, which may
//! take seconds, and a connect to a host that drops packets takes its
//! timeout. The thread wakes the loop through the self-pipe when it has an
//! answer; failed checks are retried after a delay that grows to
//! [`RETRY_MAX`]. A site with no such address starts no thread and adds no
//! timer.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crate::config::after::Remote;
use crate::eventlog::Logger;

/// First retry after a refused check; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// One connection attempt (per resolved address) waits this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An address that accepted this recently counts as up for a start: the
/// nodes of one batch share one check.
const FRESH: Duration = Duration::from_secs(1);

/// The state of every remote address some node comes after.
#[derive(Default)]
pub(super) struct Remotes {
    by_text: HashMap<String, Probe>,
}

struct Probe {
    remote: Remote,
    /// When it last accepted a connection.
    open_at: Option<Instant>,
    /// A check under way.
    asking: Option<Receiver<Result<(), String>>>,
    /// No new check before this.
    retry_at: Option<Instant>,
    delay: Duration,
    /// The last failure, logged when it changes.
    error: Option<String>,
}

/// The `after` words of a node that are addresses (not names of nodes).
fn addresses<'a>(
    after: &'a [String],
    is_node: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a String> + 'a {
    after.iter().filter(move |w| w.contains(':') && !is_node(w))
}

impl super::Supervisor {
    /// An `after HOST:PORT` of node `i` does not accept connections (yet);
    /// checks are started as due.
    pub(super) fn remote_closed(&mut self, i: usize) -> bool {
        let by_name = &self.graph.by_name;
        let words = addresses(&self.nodes[i].s.after, |w| by_name.contains_key(w));
        let (wake, log) = (&self.signals.wake, &mut self.log);
        self.remotes
            .first_closed(words, Instant::now(), wake, log)
            .is_some()
    }

    /// The address node `i` waits for, for status.
    pub(super) fn remote_waiting(&self, i: usize, now: Instant) -> Option<&str> {
        let by_name = &self.graph.by_name;
        let words = addresses(&self.nodes[i].s.after, |w| by_name.contains_key(w));
        self.remotes.waiting_for(words, now)
    }
}

impl Remotes {
    /// The first of `words` (remote `after` addresses) not known to accept
    /// connections now; a check is started for each that is due one.
    /// `None`: the node may start.
    pub(super) fn first_closed<'w>(
        &mut self,
        words: impl Iterator<Item = &'w String>,
        now: Instant,
        wake: &UnixStream,
        log: &mut Logger,
    ) -> Option<&'w str> {
        let mut closed = None;
        for word in words {
            let Some(probe) = self.probe(word) else {
                continue;
            };
            probe.collect(now, log);
            if probe.open_at.is_some_and(|t| now.duration_since(t) < FRESH) {
                continue;
            }
            if probe.asking.is_none() && probe.retry_at.is_none_or(|t| t <= now) {
                probe.ask(wake, now, log);
            }
            closed.get_or_insert(word.as_str());
        }
        closed
    }

    /// The first of `words` not known to accept connections, for status.
    pub(super) fn waiting_for<'w>(
        &self,
        mut words: impl Iterator<Item = &'w String>,
        now: Instant,
    ) -> Option<&'w str> {
        words
            .find(|w| {
                self.by_text
                    .get(w.as_str())
                    .is_none_or(|p| p.open_at.is_none_or(|t| now.duration_since(t) >= FRESH))
            })
            .map(String::as_str)
    }

    /// When a check is due again (only future times: a retry nobody asks
    /// for any more must not keep the loop awake).
    pub(super) fn deadline(&self, now: Instant) -> Option<Instant> {
        self.by_text
            .values()
            .filter(|p| p.asking.is_none())
            .filter_map(|p| p.retry_at)
            .filter(|&t| t > now)
            .min()
    }

    fn probe(&mut self, word: &str) -> Option<&mut Probe> {
        if !self.by_text.contains_key(word) {
            // Words that are not addresses were refused with the file.
            let remote = crate::config::after::remote(word)?.ok()?;
            self.by_text.insert(
                word.to_string(),
                Probe {
                    remote,
                    open_at: None,
                    asking: None,
                    retry_at: None,
                    delay: RETRY_FIRST,
                    error: None,
                },
            );
        }
        self.by_text.get_mut(word)
    }
}

impl Probe {
    /// Take the answer of a finished check, if there is one.
    fn collect(&mut self, now: Instant, log: &mut Logger) {
        let Some(rx) = &self.asking else { return };
        let answer = match rx.try_recv() {
            Ok(a) => a,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err("the check ended without an answer".into()),
        };
        self.asking = None;
        match answer {
            Ok(()) => {
                if self.open_at.is_none() || self.error.is_some() {
                    log.info(&format!("{} accepts connections", self.remote.text));
                }
                self.open_at = Some(now);
                self.error = None;
                self.delay = RETRY_FIRST;
                self.retry_at = None;
            }
            Err(e) => self.failed(e, now, log),
        }
    }

    fn failed(&mut self, e: String, now: Instant, log: &mut Logger) {
        if self.error.as_deref() != Some(e.as_str()) {
            log.info(&format!("waiting for {}: {e}", self.remote.text));
        }
        self.error = Some(e);
        self.open_at = None;
        self.retry_at = Some(now + self.delay);
        self.delay = (self.delay * 2).min(RETRY_MAX);
    }

    /// Start a check in a thread of its own.
    fn ask(&mut self, wake: &UnixStream, now: Instant, log: &mut Logger) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (host, port) = (self.remote.host.clone(), self.remote.port);
        let wake = match wake.try_clone() {
            Ok(w) => w,
            Err(e) => return self.failed(format!("cannot check: {e}"), now, log),
        };
        let spawned = std::thread::Builder::new()
            .name("after-check".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = tx.send(check(&host, port));
                // The self-pipe is non-blocking: a full pipe already wakes.
                let _ = (&wake).write(&[0]);
            });
        match spawned {
            Ok(_) => {
                self.asking = Some(rx);
                self.retry_at = None;
            }
            Err(e) => self.failed(format!("cannot check: {e}"), now, log),
        }
    }
}

/// Resolve `host` and try each of its addresses: `Ok` once one accepts.
fn check(host: &str, port: u16) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host '{host}': {e}"))?
        .collect();
    let mut last = format!("cannot resolve host '{host}': no address");
    let several = addrs.len() > 1 || addrs.first().is_some_and(|a| a.ip().to_string() != host);
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            // The address a name stood for says where it went.
            Err(e) if several => last = format!("{a}: {e}"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
