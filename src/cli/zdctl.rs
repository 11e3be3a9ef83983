//! zdctl's command line (also zeoctl's and zopectl's): its options and
//! actions, defined here so that the client, the prompt and packaging
//! (completions, man pages) share one definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::overrides::RunnerOverrides;

/// zdctl -- control an application run by zdaemon.
#[derive(Parser, Debug)]
#[command(
    name = "zdctl",
    version,
    disable_help_subcommand = true,
    after_help = "Without an action, zdctl reads actions from standard input \
                  (unless the runner sets default-to-interactive off).\n\n\
                  Exit status: 0 on success; 1 when `check` finds errors or \
                  `start`/`restart` cannot confirm the program runs, or the \
                  socket may not be used (not a socket, not owned by root or \
                  you, permission denied), or the manager is too busy to \
                  answer; 2 for usage and configuration errors; 3 from \
                  `status` when no daemon manager runs; 4 from `status` when \
                  the manager is too busy to answer. A closed output pipe \
                  ends zdctl quietly with 0."
)]
pub struct Cli {
    /// Configuration file: ZConfig syntax (zdaemon, zeo.conf, zope.conf) or
    /// TOML when it ends in .toml.
    #[arg(short = 'C', long = "configure", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: RunnerOverrides,
    /// Seconds `start` waits for the program to run (runner `start-timeout`).
    #[arg(short = 'T', long = "start-timeout", value_name = "SECONDS")]
    pub start_timeout: Option<String>,
    /// Accepted for zdaemon compatibility; the schema is chosen by content.
    #[arg(short = 'S', long = "schema", value_name = "FILE", hide = true)]
    pub schema: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The command line as `prog` (zdctl, zeoctl or zopectl: the same program
/// under other names) presents itself in `--help`, usage and man pages.
pub fn command_for(prog: &'static str) -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let about = cmd
        .get_about()
        .map(|a| a.to_string().replacen("zdctl", prog, 1));
    let after = cmd
        .get_after_help()
        .map(|a| a.to_string().replace("zdctl", prog));
    let mut cmd = cmd.name(prog).bin_name(prog);
    if let Some(a) = about {
        cmd = cmd.about(a);
    }
    if let Some(a) = after {
        cmd = cmd.after_help(a);
    }
    cmd
}

/// One action typed at the interactive prompt.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
pub(crate) struct PromptLine {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Start the daemon process (and zdrun if it is not running); wait
    /// until the program has run for a second (a program that ends sooner
    /// is reported). Extra words are appended to the program; in a site,
    /// the first names the one program to start.
    Start {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Stop the daemon process; wait until it is gone. In a site, NAME
    /// stops one program; without it all stop, dependents first.
    Stop { name: Option<String> },
    /// Stop and then start the daemon process (in a site: NAME, or all).
    Restart {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print status for the daemon process (in a site: one line per
    /// program, or NAME's).
    Status {
        /// Show the raw status reply as well.
        #[arg(short = 'l')]
        long: bool,
        /// Print JSON: pid, manager pid, state, uptime, restarts, last exit.
        #[arg(long)]
        json: bool,
        #[arg(hide = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// Send a signal (default SIGTERM) to the daemon process (in a site:
    /// `kill SIG NAME`, or every program).
    Kill {
        #[arg(allow_hyphen_values = true)]
        signal: Vec<String>,
    },
    /// Wait for the daemon process to exit.
    Wait,
    /// Print every program's state, pid, uptime, restarts by cause, last
    /// exit status and memory in the Prometheus text format.
    Metrics,
    /// Run the program in the foreground (it must not be running).
    #[command(alias = "foreground")]
    Fg {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Reopen the transcript, and send SIGUSR2 to the program so it
    /// reopens its log files.
    Logreopen,
    /// Reopen the transcript file (after log rotation).
    #[command(name = "reopen_transcript")]
    ReopenTranscript,
    /// Print the end of a log file (default: the runner's `logfile`).
    Logtail {
        /// Keep printing what is appended, across rotation and truncation.
        #[arg(short = 'f', long = "follow")]
        follow: bool,
        file: Option<PathBuf>,
    },
    /// Re-read the configuration: start added programs, stop removed ones,
    /// restart changed ones; a bad configuration changes nothing.
    Reload,
    /// List the actions, or describe one.
    Help { topic: Option<String> },
    /// Print the configuration after defaults and command-line options
    /// (`options`, the default), the Python the runner names (`python`),
    /// or both (`all`), as zdaemon's show does.
    Show {
        /// What to show.
        #[arg(value_parser = ["options", "python", "all"])]
        what: Option<String>,
        /// Print JSON (the canonical form scripts should read).
        #[arg(long)]
        json: bool,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<ShowFormat>,
        /// With JSON: print the whole typed model, not the canonical view.
        #[arg(long)]
        all: bool,
    },
    /// Validate the configuration: one OK line, or one line per error.
    Check,
    /// Print the hash of a password for `<http-server>`'s `password` key
    /// (read from standard input when not given).
    #[command(name = "http-password")]
    HttpPassword { password: Option<String> },
    /// Print a systemd unit (Type=notify) that runs zdrun on this config.
    #[command(name = "systemd-unit")]
    SystemdUnit,
    /// Write shell completions or man pages into DIR (for packaging).
    #[command(hide = true)]
    Generate {
        #[arg(value_parser = ["completions", "man"])]
        what: String,
        dir: PathBuf,
    },
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Toml,
}
