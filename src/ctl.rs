//! `zdctl`: the command-line client. This commands read the
//! configuration only (`show`, `check`); the daemon commands build on them.
//!
//! Exit statuses: 0 success; 1 `check` found errors; 2 usage or
//! configuration errors (as zdaemon).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, overrides::RunnerOverrides};

pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// zdctl -- control an application run by zdaemon.
#[derive(Parser, Debug)]
#[command(
    name = "zdctl",
    version,
    after_help = "Exit status: 0 on success, 1 when `check` finds errors, \
                  2 for usage and configuration errors."
)]
pub struct Cli {
    /// Configuration file: ZConfig syntax (zdaemon, zeo.conf, zope.conf) or
    /// TOML when it ends in .toml.
    #[arg(short = 'C', long = "configure", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: RunnerOverrides,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the configuration after defaults and command-line options.
    Show {
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Toml,
}

/// Run the client; returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    ExitCode::from(run(&cli, &mut out, &mut err))
}

/// Load the configuration named on the command line, with overrides.
fn load(cli: &Cli) -> Result<Config, Vec<String>> {
    let mut config = match &cli.config {
        Some(path) => config::load_file(path)
            .map_err(|errors| errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?,
        None if cli.overrides.program.is_some() => Config::default(),
        None => return Err(vec!["no program specified; use -p or -C".to_string()]),
    };
    cli.overrides
        .apply(&mut config)
        .map_err(|e| vec![e.to_string()])?;
    Ok(config)
}

pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let status = match &cli.command {
        Command::Check => check(cli, out, err),
        Command::Show { json, format, all } => {
            let format = match (format, json) {
                (Some(f), _) => *f,
                (None, true) => ShowFormat::Json,
                (None, false) => ShowFormat::Text,
            };
            show(cli, format, *all, out, err)
        }
    };
    status.unwrap_or_else(|e| {
        // Output went away (a closed pipe): nothing more to say.
        let _ = writeln!(err, "zdctl: {e}");
        EXIT_USAGE
    })
}

fn check(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let Some(path) = &cli.config else {
        writeln!(err, "Error: check needs a configuration file; use -C FILE")?;
        return Ok(EXIT_USAGE);
    };
    match load(cli) {
        Ok(config) => {
            writeln!(
                out,
                "{}: OK ({} configuration)",
                path.display(),
                format!("{:?}", config.kind).to_lowercase()
            )?;
            Ok(EXIT_OK)
        }
        Err(errors) => {
            for e in errors {
                writeln!(err, "{e}")?;
            }
            Ok(EXIT_CHECK_FAILED)
        }
    }
}

fn show(
    cli: &Cli,
    format: ShowFormat,
    all: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let config = match load(cli) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                writeln!(err, "Error: {e}")?;
            }
            return Ok(EXIT_USAGE);
        }
    };
    let text = match format {
        ShowFormat::Json if all => serde_json::to_string_pretty(&config),
        ShowFormat::Json => serde_json::to_string_pretty(&config::show::canonical(&config)),
        ShowFormat::Toml => {
            return match config::to_toml(&config) {
                Ok(t) => {
                    out.write_all(t.as_bytes())?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    writeln!(err, "Error: cannot print TOML: {e}")?;
                    Ok(EXIT_USAGE)
                }
            };
        }
        ShowFormat::Text => {
            let name = cli
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            out.write_all(config::show::text(&config, &name).as_bytes())?;
            return Ok(EXIT_OK);
        }
    };
    match text {
        Ok(t) => writeln!(out, "{t}")?,
        Err(e) => {
            writeln!(err, "Error: cannot print JSON: {e}")?;
            return Ok(EXIT_USAGE);
        }
    }
    Ok(EXIT_OK)
}
