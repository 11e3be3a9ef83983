//! Shell completions and man pages, generated from the clap definitions so
//! they never drift from `--help`. `zdctl generate completions|man DIR`
//! writes them; packaging/ installs them.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// The command-line programs we ship, with their clap definitions.
/// `zeoctl` and `zopectl` are zdctl under other names.
fn commands() -> Vec<clap::Command> {
    let zdctl = crate::cli::zdctl::Cli::command();
    vec![
        zdctl.clone(),
        zdctl.clone().name("zeoctl").bin_name("zeoctl"),
        zdctl.name("zopectl").bin_name("zopectl"),
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
    // zdrun stops its programs itself on SIGTERM (each within its
    // stop-timeout, then SIGKILL); systemd must give it that long.
    let stop = s.nodes.iter().map(|n| n.stop_timeout).max().unwrap_or(0);
    let timeout = if stop <= 0 {
        "infinity".to_string()
    } else {
        format!("{}s", stop + 30)
    };
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
