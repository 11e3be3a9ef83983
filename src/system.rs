//! The operating system's users and processes, as both programs need
//! them: finding and becoming the configured user, and shedding the
//! descriptors a caller left open.

/// Look up `user` (a name or a numeric uid) and check that we may become
/// it, with zdaemon's messages. Used by zdctl to refuse early, and by
/// zdrun before it switches.
pub fn find_user(user: &str) -> Result<nix::unistd::User, String> {
    use nix::unistd::{Uid, User};
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .ok_or_else(|| format!("uid {} not found", crate::pyrepr::repr_str(user)))?,
        Err(_) => User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| format!("username {} not found", crate::pyrepr::repr_str(user)))?,
    };
    let euid = nix::unistd::geteuid();
    if euid != found.uid && !euid.is_root() {
        return Err("only root can use -u USER to change users".into());
    }
    Ok(found)
}

/// Become the configured user, if any (only root can switch).
pub fn switch_user(user: &str) -> Result<(), String> {
    use nix::unistd::{Gid, setgid, setgroups, setuid};
    let found = find_user(user)?;
    if nix::unistd::geteuid() == found.uid {
        return Ok(());
    }
    let name = std::ffi::CString::new(found.name.clone()).map_err(|e| e.to_string())?;
    let groups: Vec<Gid> = nix::unistd::getgrouplist(&name, found.gid).unwrap_or_default();
    setgid(found.gid).map_err(|e| format!("cannot set group: {e}"))?;
    setgroups(&groups).map_err(|e| format!("cannot set groups: {e}"))?;
    setuid(found.uid).map_err(|e| format!("cannot set user: {e}"))?;
    Ok(())
}

pub fn close_inherited_fds() {
    close_fds_from(3);
}

/// Close every descriptor from `first` up. Only system calls, no
/// allocation: safe in a child between fork (or vfork) and exec.
pub fn close_fds_from(first: u32) {
    // SAFETY: close_range and close only close descriptors; the callers
    // hold no Rust object that uses those descriptors afterwards.
    if unsafe { nix::libc::close_range(first, u32::MAX, 0) } != 0 {
        // Kernels before 5.9: close them one by one, up to a common limit.
        for fd in first..1024 {
            // SAFETY: as above; EBADF for descriptors not open is fine.
            unsafe { nix::libc::close(fd as i32) };
        }
    }
}

/// Write a line to stderr, ignoring failure: a reader that went away (a
/// closed pipe) must not turn an error report into a panic.
pub fn stderr_line(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}
