//! The command lines of both programs, below the client and the daemon
//! alike, so that packaging can read them without either, and zdaemon's
//! way of reporting a command-line error.

pub mod zdctl;
pub mod zdrun;

pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_RUNNING: u8 = 3;
/// `status` could not learn the status: the manager is too busy.
pub const EXIT_STATUS_UNKNOWN: u8 = 4;

/// Report a command-line error as zdaemon's getopt-based parser words it
/// (`Error: option -Z not recognized`); help and version print as usual.
pub fn command_line_error(e: &clap::Error, prog: &str) -> u8 {
    use clap::error::{ContextKind, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return EXIT_OK;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return EXIT_USAGE;
        }
        _ => {}
    }
    let msg = match (e.kind(), e.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(arg)) => {
            let arg = arg.to_string();
            let option = arg.split_once('=').map_or(arg.as_str(), |(o, _)| o);
            format!("option {option} not recognized")
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    };
    crate::system::stderr_line(&format!("Error: {msg}"));
    crate::system::stderr_line(&format!("For help, use {prog} -h"));
    EXIT_USAGE
}
