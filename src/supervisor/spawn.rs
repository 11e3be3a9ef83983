//! Starting the program (and its start test) as a child of zdrun.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

/// How to start one child.
pub struct Spec<'a> {
    pub file: &'a Path,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub directory: Option<&'a Path>,
    pub umask: u32,
    /// Where stdout and stderr go; `None` inherits zdrun's.
    pub output: Option<&'a OwnedFd>,
}

/// Fork and exec. The child gets its own process group (so `stop` reaches
/// everything it started), stdin from /dev/null, and dies with zdrun.
pub fn spawn(spec: &Spec) -> std::io::Result<Pid> {
    let mut cmd = Command::new(spec.file);
    if let Some((first, rest)) = spec.argv.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(dir) = spec.directory {
        cmd.current_dir(dir);
    }
    if let Some(fd) = spec.output {
        cmd.stdout(Stdio::from(fd.try_clone()?));
        cmd.stderr(Stdio::from(fd.try_clone()?));
    }
    let parent = nix::unistd::getpid();
    let umask = Mode::from_bits_truncate(spec.umask as nix::libc::mode_t);
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (prctl, getppid, umask, _exit).
    unsafe {
        cmd.pre_exec(move || {
            // A SIGKILLed zdrun must not leave the program behind.
            #[cfg(target_os = "linux")]
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                // zdrun died between fork and prctl.
                nix::libc::_exit(1);
            }
            nix::sys::stat::umask(umask);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // Reaping is done with waitpid on SIGCHLD; the handle is not needed.
    Ok(Pid::from_raw(child.id() as i32))
}
