//! Who may use the control socket, and what a hostile config or client
//! cannot do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::site::*;

/// Run a raw `status` request as another uid (needs root).
fn status_as(uid: u32, sock: &std::path::Path) -> std::process::Output {
    // A system interpreter: one under root's home is not readable by uid.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a python3 outside root's home");
    Command::new(python)
        .uid(uid)
        .gid(uid)
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1]); s.sendall(b'status\\n'); s.shutdown(1)\n\
             print(s.recv(1000).decode(), end='')",
        ])
        .arg(sock)
        .output()
        .expect("setpriv runs")
}

#[test]
fn socket_is_private_and_other_users_are_refused() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mode = std::fs::metadata(site.sock()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    if !nix::unistd::geteuid().is_root() {
        // Only root can act as another user here; the mode check stands.
        return;
    }
    let pid = site.program_pid();
    // The file mode keeps others out; open it up to reach the peer check.
    std::fs::set_permissions(site.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(site.sock(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = status_as(65534, &site.sock());
    let reply = stdout(&o);
    assert!(
        reply.starts_with("Permission denied: uid 65534 may not control this daemon"),
        "{reply:?} {}",
        stderr(&o)
    );
    assert_eq!(site.program_pid(), pid, "supervision unaffected");
    site.zdctl(&["stop"]);
}
