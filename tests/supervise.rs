//! zdrun and zdctl supervising real programs in temporary directories.

mod common;

use common::site::*;

#[test]
fn start_status_stop() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(3));
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = site.program_pid();
    assert!(pid != 0);
    assert!(
        stdout(&o).ends_with(&format!("\ndaemon process started, pid={pid}\n")),
        "{}",
        stdout(&o)
    );
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    wait_for("program gone", || !alive(pid));
    wait_for("manager gone", || site.manager_pid() == 0);
    let o = site.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(3));
}
