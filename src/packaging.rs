//! Shell completions and man pages, generated from the clap definitions so
//! they never drift from `--help`. `zdctl generate completions|man DIR`
//! writes them; packaging/ installs them.

use crate::settings::NodeSettings;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// The command-line programs we ship, with their clap definitions.
/// `zeoctl` and `zopectl` are zdctl under other names.
fn commands() -> Vec<clap::Command> {
    use crate::cli::zdctl::command_for;
    vec![
        command_for("zdctl"),
        command_for("zeoctl"),
        command_for("zopectl"),
        crate::cli::zdrun::Cli::command(),
    ]
}

/// Write bash, zsh and fish completions for every program into `dir`.
pub fn completions(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            written.push(clap_complete::generate_to(shell, &mut cmd, &name, dir)?);
        }
    }
    Ok(written)
}

/// Write a section-1 man page for every program into `dir`.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for cmd in commands() {
        let path = dir.join(format!("{}.1", cmd.get_name()));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        std::fs::write(&path, out)?;
        written.push(path);
    }
    Ok(written)
}

/// A systemd unit that runs zdrun on `config` as a `Type=notify` service.
/// `cwd` becomes the unit's working directory: relative paths in zdaemon
/// configs are taken from the directory zdctl and zdrun run in.
/// Seconds systemd waits beyond the configured timeouts: for zdrun's own
/// start and stop, and a program that stops just in time.
const TIMEOUT_MARGIN: i64 = 30;

/// The largest sum of `timeout` along a chain of programs each started
/// after the one before (`after`), in seconds: how long starting or
/// stopping a site can take in order.
fn longest_chain(s: &crate::settings::Settings, timeout: impl Fn(&NodeSettings) -> i64) -> i64 {
    let index: std::collections::HashMap<&str, usize> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    // Longest chain ending at each node; the order has no cycles (the
    // settings refuse one), and `None` marks a node being visited.
    let mut memo: Vec<Option<Option<i64>>> = vec![None; s.nodes.len()];
    fn visit(
        i: usize,
        s: &crate::settings::Settings,
        index: &std::collections::HashMap<&str, usize>,
        timeout: &dyn Fn(&NodeSettings) -> i64,
        memo: &mut Vec<Option<Option<i64>>>,
    ) -> i64 {
        match memo[i] {
            Some(Some(v)) => return v,
            Some(None) => return 0,
            None => {}
        }
        memo[i] = Some(None);
        let before = s.nodes[i]
            .after
            .iter()
            .filter_map(|a| index.get(a.as_str()))
            .map(|&j| visit(j, s, index, timeout, memo))
            .max()
            .unwrap_or(0);
        let v = before + timeout(&s.nodes[i]).max(0);
        memo[i] = Some(Some(v));
        v
    }
    (0..s.nodes.len())
        .map(|i| visit(i, s, &index, &timeout, &mut memo))
        .max()
        .unwrap_or(0)
}

pub fn systemd_unit(
    s: &crate::settings::Settings,
    config: &Path,
    zdrun: &Path,
    cwd: &Path,
) -> String {
    let what = if s.is_site() {
        format!("{} programs", s.nodes.len())
    } else {
        s.program.join(" ")
    };
    // zdrun starts a site's programs in order, each within its own
    // start-timeout, and stops them in reverse order on SIGTERM, each
    // within its stop-timeout (then SIGKILL): systemd must give it the
    // longest chain of either, and a margin, before it gives up.
    let start = longest_chain(s, |n| n.start_timeout);
    let stop = longest_chain(s, |n| n.stop_timeout);
    let start_timeout = format!("{}s", start + TIMEOUT_MARGIN);
    let timeout = format!("{}s", stop + TIMEOUT_MARGIN);
    let user = s
        .user
        .as_deref()
        .map(|u| format!("User={u}\n"))
        .unwrap_or_default();
    format!(
        "[Unit]\n\
         Description=zdaemon-rs: {what} ({config})\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         WorkingDirectory={cwd}\n\
         ExecStart={zdrun} -C {config}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         # zdrun stops the programs in order itself; the rest of the group is\n\
         # only killed if it overruns the timeout.\n\
         KillMode=mixed\n\
         TimeoutStartSec={start_timeout}\n\
         TimeoutStopSec={timeout}\n\
         Restart=on-failure\n\
         {user}\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        config = config.display(),
        zdrun = zdrun.display(),
        cwd = cwd.display(),
    )
}
