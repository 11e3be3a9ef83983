//! Starting the program (and its start test) as a child of zdrun.
//!
//! A vfork-style clone and exec, without waiting for the exec to succeed
//! (as `std::process::Command` does): a site starts thousands of programs
//! in a few passes, and a failed exec is reported the zdaemon way, as exit
//! status 127 with the reason on the program's stderr.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

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
            .filter(|(k, _)| k != super::START_ONLY_VAR)
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
    let pointers = |v: &[CString]| -> Vec<*const nix::libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_ptrs, envp_ptrs) = (pointers(&argv), pointers(&envp));
    let child = Child {
        file: &file,
        argv_ptrs: &argv_ptrs,
        envp_ptrs: &envp_ptrs,
        output: spec.output,
        null,
        dir: dir.as_deref(),
        umask,
        nofile,
        parent,
        failure: failure.as_bytes(),
    };
    clone_vfork(&child)
}

/// What the child needs, all prepared before it exists.
struct Child<'a> {
    file: &'a CString,
    /// argv and envp as execve takes them (null-terminated arrays of
    /// pointers into the CStrings spawn made): made before the child, as
    /// the child shares our memory and must not allocate.
    argv_ptrs: &'a [*const nix::libc::c_char],
    envp_ptrs: &'a [*const nix::libc::c_char],
    output: Option<&'a OwnedFd>,
    null: &'a std::fs::File,
    dir: Option<&'a std::ffi::CStr>,
    umask: Mode,
    nofile: u64,
    parent: Pid,
    failure: &'a [u8],
}

/// The child's stack: the child runs on it until exec, while zdrun
/// waits.
const CHILD_STACK: usize = 128 * 1024;

/// Start the child the way posix_spawn does: sharing zdrun's memory
/// (CLONE_VM) with zdrun suspended until the child execs or exits
/// (CLONE_VFORK). A plain fork copies zdrun's page tables, which costs
/// more the more nodes zdrun holds: a site of thousands would start in
/// time quadratic in its size. Signals are blocked around it, so no
/// handler of zdrun's runs in the child.
fn clone_vfork(child: &Child) -> std::io::Result<Pid> {
    use nix::sys::signal::{SigmaskHow, pthread_sigmask};
    // One stack for every child, kept: children start one at a time.
    static STACK: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
    let mut stack = STACK.lock().unwrap_or_else(|e| e.into_inner());
    if stack.len() != CHILD_STACK {
        *stack = vec![0u8; CHILD_STACK];
    }
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    // The stack grows down on every platform we build for.
    let top = stack.as_mut_ptr().wrapping_add(CHILD_STACK) as *mut nix::libc::c_void;
    let arg = (child as *const Child, &old as *const SigSet);
    // SAFETY: the child runs `child_main` on its own stack and shares our
    // memory only to read what `child` and `old` point to, which live
    // until clone returns: CLONE_VFORK suspends us until the child has
    // exec'd or exited. It makes system calls only (no allocation, no
    // locks) and never returns into our code.
    let pid = unsafe {
        nix::libc::clone(
            child_main,
            top,
            nix::libc::CLONE_VM | nix::libc::CLONE_VFORK | nix::libc::SIGCHLD,
            &arg as *const _ as *mut nix::libc::c_void,
        )
    };
    let err = std::io::Error::last_os_error();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    drop(stack);
    if pid < 0 {
        return Err(err);
    }
    Ok(Pid::from_raw(pid))
}

extern "C" fn child_main(arg: *mut nix::libc::c_void) -> nix::libc::c_int {
    // SAFETY: `arg` is the pair clone_vfork passed, alive while we run.
    let (child, mask) = unsafe { *(arg as *const (*const Child, *const SigSet)) };
    // SAFETY: as above.
    let (child, mask) = unsafe { (&*child, &*mask) };
    let errno = child_setup(child, mask).err().unwrap_or_else(|| {
        // SAFETY: the pointer arrays were made before the child, each
        // ends with a null pointer, and the strings they point to live
        // until clone returns.
        unsafe {
            nix::libc::execve(
                child.file.as_ptr(),
                child.argv_ptrs.as_ptr(),
                child.envp_ptrs.as_ptr(),
            )
        };
        nix::errno::Errno::last()
    });
    // Reaches the transcript, as zdaemon's message does; written from
    // pieces made before the child, without allocating.
    let err = std::io::stderr();
    let _ = nix::unistd::write(&err, child.failure);
    let _ = nix::unistd::write(&err, errno.desc().as_bytes());
    let _ = nix::unistd::write(&err, b"\n");
    // SAFETY: _exit ends the child without running zdrun's destructors
    // or atexit handlers.
    unsafe { nix::libc::_exit(127) }
}

/// In the child, before exec: process group, death signal, stdio,
/// directory, umask, descriptor limit, default signal dispositions, and
/// no descriptor but 0-2.
fn child_setup(c: &Child, mask: &nix::sys::signal::SigSet) -> nix::Result<()> {
    let (output, null, dir, umask, nofile, parent) =
        (c.output, c.null, c.dir, c.umask, c.nofile, c.parent);
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
    // Every signal zdrun handles or ignores goes back to its default
    // before the mask is lifted: no handler of zdrun's may run here, and
    // ignored signals would stay ignored across exec (zdrun ignores
    // SIGPIPE). Dispositions are the child's own (no CLONE_SIGHAND).
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(mask), None)?;
    // Whatever zdrun holds (pipes, sockets, the guard's pipe, descriptors
    // a caller left open without close-on-exec) is not the program's.
    // The child owns no Rust object that refers to them after this point.
    crate::system::close_fds_from(3);
    Ok(())
}
