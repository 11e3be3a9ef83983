//! The client half of the control protocol: send one command, read the
//! reply. Works against our zdrun and Python zdaemon's alike.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::protocol::StatusView;

/// How long to wait for a reply before treating the manager as gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies are small, but `info` on a site of thousands of programs runs
/// to megabytes; a peer sending more than this is not a zdrun.
const MAX_REPLY: u64 = 64 << 20;

/// Send `action` and return the reply, or `None` if no manager answers
/// (no socket, refused, reset, timed out), as zdaemon's client does.
pub fn send_action(socket: &Path, action: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).ok()?;
    stream.write_all(format!("{action}\n").as_bytes()).ok()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    stream.take(MAX_REPLY).read_to_end(&mut reply).ok()?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// What `status` says, if a manager answers with a status reply.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The raw reply, for `status -l`.
    pub raw: String,
    pub view: StatusView,
}

impl Status {
    pub fn pid(&self) -> i32 {
        self.view.application
    }
}

/// Query status. `None` when no manager answers or the reply has no
/// `application=` line (zdaemon's rule for "manager up").
pub fn status(socket: &Path) -> Option<Status> {
    let raw = send_action(socket, "status")?;
    if !raw.lines().any(|l| {
        l.strip_prefix("application=")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    }) {
        return None;
    }
    let mut view = StatusView::parse(&raw);
    if !raw.lines().any(|l| l.starts_with("should_be_up=")) {
        view.should_be_up = true;
    }
    Some(Status { raw, view })
}
