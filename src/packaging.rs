//! Shell completions and man pages, generated from the clap definitions so
//! they never drift from `--help`. `zdctl generate completions|man DIR`
//! writes them; packaging/ installs them.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// The command-line programs we ship, with their clap definitions.
/// `zeoctl` and `zopectl` are zdctl under other names.
fn commands() -> Vec<clap::Command> {
    let zdctl = crate::ctl::Cli::command();
    vec![
        zdctl.clone(),
        zdctl.clone().name("zeoctl").bin_name("zeoctl"),
        zdctl.name("zopectl").bin_name("zopectl"),
        crate::supervisor::Cli::command(),
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
