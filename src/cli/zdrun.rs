//! zdrun's command line.

use std::path::PathBuf;

use clap::Parser;

use crate::config::overrides::RunnerOverrides;

/// How zdrun's exit status reads (decided in `supervisor`).
const EXIT_STATUS: &str = "\
Exit status:
  0    stopped: by `stop`, or by SIGTERM/SIGINT with every program ending
       within its stop-timeout
  1    gave up (restarting too frequently), or could not start
  2    usage or configuration error
  137  stopped by SIGTERM/SIGINT, but a program had to be killed with SIGKILL
  N    a single program exited with N, one of its exit-codes";

/// zdrun -- the daemon manager that runs and restarts one program.
#[derive(Parser, Debug)]
#[command(name = "zdrun", version, after_help = EXIT_STATUS)]
pub struct Cli {
    /// Configuration file (ZConfig syntax, or TOML when it ends in .toml).
    #[arg(short = 'C', long = "configure", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accepted for zdaemon compatibility; the schema is chosen by content.
    #[arg(short = 'S', long = "schema", value_name = "FILE", hide = true)]
    pub schema: Option<String>,
    #[command(flatten)]
    pub overrides: RunnerOverrides,
    /// The program and its arguments (default: the configured program).
    #[arg(
        id = "argv",
        value_name = "PROGRAM",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub program: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
