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
    /// Where stderr goes when not with stdout (prefixed output).
    pub errors: Option<&'a OwnedFd>,
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
    Prepared::new(spec)?.run()
}

/// A child made ready to start: everything it needs that takes memory, so
/// that it can be started from another thread, and nothing borrowed.
pub struct Prepared {
    file: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    dir: Option<CString>,
    /// A duplicate of the transcript's write end, closed once the child
    /// has its own.
    output: Option<OwnedFd>,
    errors: Option<OwnedFd>,
    umask: Mode,
    failure: Vec<u8>,
    /// The signal mask of the thread that made this (zdrun's own): the
    /// child's, whichever thread starts it (the helper blocks all).
    mask: SigSet,
}

impl Prepared {
    pub fn new(spec: &Spec) -> std::io::Result<Prepared> {
        use nix::sys::signal::{SigmaskHow, pthread_sigmask};
        let mut mask = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask))?;
        Ok(Prepared {
            mask,
            file: cstring(spec.file.as_os_str().as_bytes())?,
            argv: spec
                .argv
                .iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_, _>>()?,
            envp: environment(spec.env, spec.node)?,
            dir: spec
                .directory
                .map(|d| cstring(d.as_os_str().as_bytes()))
                .transpose()?,
            output: spec.output.map(|fd| fd.try_clone()).transpose()?,
            errors: spec.errors.map(|fd| fd.try_clone()).transpose()?,
            umask: Mode::from_bits_truncate(spec.umask as nix::libc::mode_t),
            failure: format!("can't exec '{}': ", spec.file.display()).into_bytes(),
        })
    }

    /// Start the child (from any thread that lives as long as zdrun: the
    /// child's death signal follows the thread that made it).
    pub fn run(&self) -> std::io::Result<Pid> {
        static NULL: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
        let null = match NULL.get() {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new().read(true).open("/dev/null")?;
                NULL.get_or_init(|| f)
            }
        };
        let pointers = |v: &[CString]| -> Vec<*const nix::libc::c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let (argv_ptrs, envp_ptrs) = (pointers(&self.argv), pointers(&self.envp));
        let child = Child {
            file: &self.file,
            argv_ptrs: &argv_ptrs,
            envp_ptrs: &envp_ptrs,
            output: self.output.as_ref(),
            errors: self.errors.as_ref(),
            null,
            dir: self.dir.as_deref(),
            umask: self.umask,
            nofile: CHILD_NOFILE.load(std::sync::atomic::Ordering::Relaxed),
            parent: nix::unistd::getpid(),
            failure: &self.failure,
            mask: &self.mask,
        };
        clone_vfork(&child)
    }
}

/// Starts a batch of children on two threads: zdrun's and one helper,
/// made at the first batch of two or more and kept (a child started by a
/// thread that ended would get its death signal). On one core, or when
/// the helper cannot be had, zdrun's thread starts them all. A vfork'd
/// start costs about as much in the kernel as in the child's own start,
/// so a second thread shortens a large site's start on two cores by about
/// a fifth.
#[derive(Default)]
pub struct Spawner {
    helper: Option<Helper>,
    /// No helper: one core, or it could not be made.
    alone: bool,
}

struct Helper {
    jobs: std::sync::mpsc::Sender<std::sync::Arc<Batch>>,
    done: std::sync::mpsc::Receiver<Vec<(usize, std::io::Result<Pid>)>>,
}

struct Batch {
    items: Vec<Prepared>,
    next: std::sync::atomic::AtomicUsize,
    until: std::time::Instant,
}

impl Batch {
    /// Start items until none is left or the time is up: what each
    /// started, by position.
    fn work(&self) -> Vec<(usize, std::io::Result<Pid>)> {
        let mut out = Vec::new();
        while std::time::Instant::now() < self.until || out.is_empty() {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(item) = self.items.get(i) else { break };
            out.push((i, item.run()));
        }
        out
    }
}

impl Spawner {
    /// Start `items`, taking no longer than `turn` (each thread starts at
    /// least one): the result of each started, by position; those without
    /// one were not started.
    pub fn run(
        &mut self,
        items: Vec<Prepared>,
        turn: std::time::Duration,
    ) -> Vec<Option<std::io::Result<Pid>>> {
        let n = items.len();
        let batch = std::sync::Arc::new(Batch {
            items,
            next: std::sync::atomic::AtomicUsize::new(0),
            until: std::time::Instant::now() + turn,
        });
        let helper = if n >= 2 { self.helper() } else { None };
        let sent = helper.is_some_and(|h| h.jobs.send(batch.clone()).is_ok());
        let mut results: Vec<Option<std::io::Result<Pid>>> = (0..n).map(|_| None).collect();
        let mut record = |done: Vec<(usize, std::io::Result<Pid>)>| {
            for (i, r) in done {
                results[i] = Some(r);
            }
        };
        record(batch.work());
        if sent && let Some(h) = &self.helper {
            match h.done.recv() {
                Ok(done) => record(done),
                // The helper is gone (it cannot be, short of a bug): what
                // it took is unknown; start alone from now on.
                Err(_) => {
                    self.helper = None;
                    self.alone = true;
                }
            }
        }
        results
    }

    /// The threads that start children: two unless the helper is out.
    pub fn threads(&self) -> u32 {
        if self.alone { 1 } else { 2 }
    }

    fn helper(&mut self) -> Option<&Helper> {
        if self.helper.is_none() && !self.alone {
            self.helper = Helper::start();
            self.alone = self.helper.is_none();
        }
        self.helper.as_ref()
    }
}

impl Helper {
    fn start() -> Option<Helper> {
        use nix::sys::signal::{SigmaskHow, pthread_sigmask};
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return None;
        }
        let (jobs, rx) = std::sync::mpsc::channel::<std::sync::Arc<Batch>>();
        let (tx, done) = std::sync::mpsc::channel();
        // The helper blocks every signal (it inherits the mask it is made
        // with): zdrun's handlers run on zdrun's thread.
        let mut old = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        )
        .ok()?;
        let made = std::thread::Builder::new()
            .name("spawn".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for batch in rx {
                    if tx.send(batch.work()).is_err() {
                        break;
                    }
                }
            });
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        made.ok().map(|_| Helper { jobs, done })
    }
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
    errors: Option<&'a OwnedFd>,
    null: &'a std::fs::File,
    dir: Option<&'a std::ffi::CStr>,
    umask: Mode,
    nofile: u64,
    parent: Pid,
    failure: &'a [u8],
    mask: &'a SigSet,
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
    // A stack per thread that starts children, kept: each thread starts
    // one child at a time.
    thread_local! {
        static STACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    STACK.with_borrow_mut(|stack| {
        if stack.len() != CHILD_STACK {
            *stack = vec![0u8; CHILD_STACK];
        }
        clone_on(stack, child)
    })
}

fn clone_on(stack: &mut [u8], child: &Child) -> std::io::Result<Pid> {
    use nix::sys::signal::{SigmaskHow, pthread_sigmask};
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    // The stack grows down on every platform we build for.
    let top = stack.as_mut_ptr().wrapping_add(CHILD_STACK) as *mut nix::libc::c_void;
    let arg = child as *const Child;
    // SAFETY: the child runs `child_main` on its own stack and shares our
    // memory only to read what `child` points to, which lives
    // until clone returns: CLONE_VFORK suspends us until the child has
    // exec'd or exited. It makes system calls only (no allocation, no
    // locks) and never returns into our code.
    let pid = unsafe {
        nix::libc::clone(
            child_main,
            top,
            nix::libc::CLONE_VM | nix::libc::CLONE_VFORK | nix::libc::SIGCHLD,
            arg as *mut nix::libc::c_void,
        )
    };
    let err = std::io::Error::last_os_error();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    if pid < 0 {
        return Err(err);
    }
    Ok(Pid::from_raw(pid))
}

extern "C" fn child_main(arg: *mut nix::libc::c_void) -> nix::libc::c_int {
    // SAFETY: `arg` is the Child clone_vfork passed, alive while we run.
    let child = unsafe { &*(arg as *const Child) };
    let errno = child_setup(child).err().unwrap_or_else(|| {
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
fn child_setup(c: &Child) -> nix::Result<()> {
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
        nix::unistd::dup2_stderr(c.errors.unwrap_or(fd).as_fd())?;
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
    // The real-time ones too, which the above does not name: glibc's
    // posix_spawn (how a shell or zdctl may have started zdrun) leaves
    // its own two, 32 and 33, ignored, and that would pass on to the
    // program. The libc wrapper refuses those two, hence the system call;
    // an all-zero kernel sigaction is SIG_DFL with no flags and an empty
    // mask on every architecture.
    #[cfg(target_os = "linux")]
    for sig in 32..=64 {
        let act = [0u64; 4];
        // SAFETY: `act` outlives the call and is at least as large as the
        // kernel's struct sigaction; no old action is asked for.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rt_sigaction,
                sig,
                act.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(c.mask),
        None,
    )?;
    // Whatever zdrun holds (pipes, sockets, the guard's pipe, descriptors
    // a caller left open without close-on-exec) is not the program's.
    // The child owns no Rust object that refers to them after this point.
    crate::system::close_fds_from(3);
    Ok(())
}
