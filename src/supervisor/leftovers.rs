//! Nothing a program starts outlives it: processes that left the
//! program's process group (`setsid`, double forks) are found and killed
//! when the program ends, and when zdrun itself dies.
//!
//! Every child zdrun starts carries two environment variables, inherited
//! by whatever it starts in turn: `ZDRUN_MANAGER`, unique to this zdrun
//! (its pid and start time), and `ZDRUN_PROGRAM`, the node's name (empty
//! for a zdaemon runner config). zdrun is the child subreaper, so orphans
//! of a program become zdrun's children; when a program's main process
//! ends, zdrun kills the orphans marked with its name. A guard process,
//! forked at start, waits for zdrun to go away (even by SIGKILL) and then
//! kills every process marked with this zdrun. A process that clears its
//! environment and escapes its group is out of reach of both; a cgroup
//! (systemd's unit) still catches it.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

pub const MANAGER_VAR: &str = "ZDRUN_MANAGER";
pub const PROGRAM_VAR: &str = "ZDRUN_PROGRAM";

/// How much of a process's environment is read to find the marks.
const ENVIRON_LIMIT: u64 = 1 << 20;

static MANAGER_ID: OnceLock<String> = OnceLock::new();

/// Fix this zdrun's identity; called once in the process that supervises
/// (after daemonizing, so the pid is the final one).
pub fn set_manager_id() -> &'static str {
    MANAGER_ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}.{nanos}", std::process::id())
    })
}

/// This zdrun's identity, once set.
pub fn manager_id() -> Option<&'static str> {
    MANAGER_ID.get().map(String::as_str)
}

/// The environment variables that mark a child of `node`.
pub fn marks(node: &str) -> Vec<(String, String)> {
    match MANAGER_ID.get() {
        Some(id) => vec![
            (MANAGER_VAR.to_string(), id.clone()),
            (PROGRAM_VAR.to_string(), node.to_string()),
        ],
        None => Vec::new(),
    }
}

/// Whom a process belongs to, by its marks.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// Marked by this zdrun, for the node of this name.
    Node(String),
    /// Not marked by this zdrun (no marks, another zdrun's, or unreadable).
    Unknown,
}

/// Read `pid`'s environment for this zdrun's marks.
pub fn owner(pid: Pid, manager: &str) -> Owner {
    let Ok(file) = std::fs::File::open(format!("/proc/{pid}/environ")) else {
        return Owner::Unknown;
    };
    let mut env = Vec::new();
    if file.take(ENVIRON_LIMIT).read_to_end(&mut env).is_err() {
        return Owner::Unknown;
    }
    let mut ours = false;
    let mut program = None;
    for var in env.split(|&b| b == 0) {
        let Some(eq) = var.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&var[..eq], &var[eq + 1..]);
        if name == MANAGER_VAR.as_bytes() {
            ours = value == manager.as_bytes();
        } else if name == PROGRAM_VAR.as_bytes() {
            program = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    match (ours, program) {
        (true, Some(p)) => Owner::Node(p),
        _ => Owner::Unknown,
    }
}

/// The current children of this process (of every thread: an orphan is
/// handed to one thread of its subreaper).
pub fn children() -> Vec<Pid> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            pids.extend(
                text.split_ascii_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .map(Pid::from_raw),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILL a process and, if it leads one, its process group.
pub fn kill_tree(pid: Pid) {
    if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let _ = kill(pid, Signal::SIGKILL);
}

/// Every process on the machine that carries this zdrun's mark.
fn marked(manager: &str) -> Vec<Pid> {
    let me = nix::unistd::getpid();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&p| p != me && matches!(owner(p, manager), Owner::Node(_)))
        .collect()
}

/// The guard: a process forked from zdrun that kills every marked process
/// once zdrun is gone. zdrun holds the write end of a pipe; the guard
/// blocks reading it and wakes at end of file.
pub struct Guard {
    pub pid: Pid,
    _pipe: OwnedFd,
}

/// True while this process has one thread.
pub fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// Fork the guard. Must be called while zdrun has one thread.
pub fn start_guard() -> std::io::Result<Guard> {
    let manager = set_manager_id().to_string();
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: called before zdrun starts any thread, so the child is a
    // full copy that may allocate and run normally; it never returns.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Guard {
            pid: child,
            _pipe: write,
        }),
        nix::unistd::ForkResult::Child => {
            drop(write);
            guard_main(read, &manager)
        }
    }
}

fn guard_main(pipe: OwnedFd, manager: &str) -> ! {
    use nix::sys::signal::{SigHandler, signal};
    // Signals meant for zdrun's process group are not for the guard.
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN runs no code of ours.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_name(c"zdrun-guard");
    // Hold nothing of zdrun's open: not its socket, pipes or log files.
    let keep = pipe.as_raw_fd();
    for fd in 3..keep {
        // SAFETY: closing descriptors this process does not use.
        unsafe { nix::libc::close(fd) };
    }
    crate::system::close_fds_from(keep as u32 + 1);
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(&pipe, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    // zdrun is gone. Programs die with it (their death signal); what they
    // started may still fork while we kill, so go round until none is
    // left, a bounded number of times.
    for _ in 0..50 {
        let pids = marked(manager);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            kill_tree(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: _exit skips the atexit handlers and destructors of the
    // zdrun this process was forked from.
    unsafe { nix::libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_no_marks() {
        assert_eq!(owner(nix::unistd::getpid(), "1.2"), Owner::Unknown);
    }

    #[test]
    fn children_of_a_fresh_process_include_a_spawned_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let pid = Pid::from_raw(child.id() as i32);
        assert!(children().contains(&pid));
        let _ = child.kill();
        let _ = child.wait();
    }
}
