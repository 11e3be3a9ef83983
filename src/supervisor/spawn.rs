//! Starting the program (and its start test) as a child of zdrun.
//!
//! Plain fork and exec, without waiting for the exec to succeed (as
//! `std::process::Command` does): a site starts a thousand programs in one
//! pass, and a failed exec is reported the zdaemon way, as exit status 127
//! with the reason on the program's stderr.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask};

/// The signals zdrun handles; a child must not run zdrun's handlers.
const CAUGHT: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR2,
];
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

/// The soft descriptor limit to give children (0: leave it), when zdrun
/// raised its own.
pub static CHILD_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How to start one child.
pub struct Spec<'a> {
    pub file: &'a Path,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    /// The node's name, marked in the child's environment.
    pub node: &'a str,
    pub directory: Option<&'a Path>,
    pub umask: u32,
    /// Where stdout and stderr go; `None` inherits zdrun's.
    pub output: Option<&'a OwnedFd>,
}

fn cstring(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "argument or environment contains a NUL byte",
        )
    })
}

/// zdrun's own environment, read once: it does not change while it runs.
fn base_environment() -> &'static [(OsString, OsString)] {
    static BASE: std::sync::OnceLock<Vec<(OsString, OsString)>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        std::env::vars_os()
            .filter(|(k, _)| !crate::notify::PRIVATE_VARS.iter().any(|p| k == p))
            .collect()
    })
}

/// zdrun's environment with `overrides` applied, then the marks that tie
/// the child (and everything it starts) to this zdrun and node, as
/// `NAME=value` strings.
fn environment(overrides: &[(String, String)], node: &str) -> std::io::Result<Vec<CString>> {
    let mut vars: Vec<(OsString, OsString)> = base_environment().to_vec();
    let marks = super::leftovers::marks(node);
    for (k, v) in overrides.iter().chain(marks.iter()) {
        vars.retain(|(name, _)| name.as_os_str() != OsStr::new(k));
        vars.push((k.into(), v.into()));
    }
    vars.into_iter()
        .map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            cstring(&entry)
        })
        .collect()
}

/// Fork and exec. The child gets its own process group (so `stop` reaches
/// everything it started), stdin from /dev/null, and dies with zdrun.
pub fn spawn(spec: &Spec) -> std::io::Result<Pid> {
    // Everything the child needs is prepared before the fork.
    let file = cstring(spec.file.as_os_str().as_bytes())?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let envp = environment(spec.env, spec.node)?;
    let dir = spec
        .directory
        .map(|d| cstring(d.as_os_str().as_bytes()))
        .transpose()?;
    static NULL: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let null = match NULL.get() {
        Some(f) => f,
        None => {
            let f = std::fs::OpenOptions::new().read(true).open("/dev/null")?;
            NULL.get_or_init(|| f)
        }
    };
    let umask = Mode::from_bits_truncate(spec.umask as nix::libc::mode_t);
    let nofile = CHILD_NOFILE.load(std::sync::atomic::Ordering::Relaxed);
    let failure = format!("can't exec '{}': ", spec.file.display());
    let parent = nix::unistd::getpid();
    // Signals wait until the child has dropped zdrun's handlers: one that
    // arrived in between (a quick `stop`) would run zdrun's handler in the
    // child and be lost, and the program would live on until SIGKILL.
    let mut old_mask = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old_mask),
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: the child only makes system calls on data prepared before
    // the fork (no allocation), then execs or leaves with _exit, never
    // returning into the caller.
    let forked = unsafe { nix::unistd::fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    }
    match forked.map_err(std::io::Error::from)? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            for sig in CAUGHT {
                // SAFETY: installing SIG_DFL runs no code of ours.
                let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
            }
            // A signal sent meanwhile is delivered now, with its default
            // action: a SIGTERM ends the child as it would the program.
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            let errno = child_setup(spec.output, null, dir.as_deref(), umask, nofile, parent)
                .err()
                .unwrap_or_else(|| {
                    nix::unistd::execve(&file, &argv, &envp)
                        .err()
                        .unwrap_or(nix::errno::Errno::UnknownErrno)
                });
            // Reaches the transcript, as zdaemon's message does; written
            // from pieces made before the fork, without allocating.
            let err = std::io::stderr();
            let _ = nix::unistd::write(&err, failure.as_bytes());
            let _ = nix::unistd::write(&err, errno.desc().as_bytes());
            let _ = nix::unistd::write(&err, b"\n");
            // SAFETY: _exit ends the child without running the parent's
            // destructors or atexit handlers.
            unsafe { nix::libc::_exit(127) }
        }
    }
}

/// In the child, before exec: process group, death signal, stdio,
/// directory, umask, descriptor limit, default signal dispositions, and
/// no descriptor but 0-2.
fn child_setup(
    output: Option<&OwnedFd>,
    null: &std::fs::File,
    dir: Option<&std::ffi::CStr>,
    umask: Mode,
    nofile: u64,
    parent: Pid,
) -> nix::Result<()> {
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    // A SIGKILLed zdrun must not leave the program behind.
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        // zdrun died between fork and prctl.
        // SAFETY: as above, _exit in the child.
        unsafe { nix::libc::_exit(1) }
    }
    nix::unistd::dup2_stdin(null.as_fd())?;
    if let Some(fd) = output {
        nix::unistd::dup2_stdout(fd.as_fd())?;
        nix::unistd::dup2_stderr(fd.as_fd())?;
    }
    if let Some(dir) = dir {
        nix::unistd::chdir(dir)?;
    }
    nix::sys::stat::umask(umask);
    if nofile != 0 {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        setrlimit(Resource::RLIMIT_NOFILE, nofile, hard)?;
    }
    // Ignored signals stay ignored across exec; zdrun ignores SIGPIPE.
    // Handlers are reset by exec itself.
    // SAFETY: installing SIG_DFL runs no code of ours.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }?;
    // Whatever zdrun holds (pipes, sockets, the guard's pipe, descriptors
    // a caller left open without close-on-exec) is not the program's.
    // SAFETY: close_range only closes descriptors of this process; the
    // child owns no Rust object that refers to them after this point.
    if unsafe { nix::libc::close_range(3, u32::MAX, 0) } != 0 {
        for fd in 3..1024 {
            // SAFETY: as above; EBADF for descriptors not open is fine.
            unsafe { nix::libc::close(fd) };
        }
    }
    Ok(())
}
