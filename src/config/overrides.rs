//! zdaemon's command-line options for runner settings, merged over the
//! file: the command line wins, then the file, then the schema default.

use clap::Args;

use super::datatypes as dt;
use super::model::{Config, Runner};
use super::origin::Origin;

/// Runner options as zdaemon's zdctl spells them.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerOverrides {
    /// The program to run, as one string of words (runner `program`).
    #[arg(short = 'p', long = "program", value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Control socket path (runner `socket-name`).
    #[arg(short = 's', long = "socket-name", value_name = "PATH")]
    pub socket_name: Option<String>,
    /// Run zdrun as a daemon (runner `daemon on`).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Give up after this many quick restarts (runner `backoff-limit`).
    #[arg(short = 'b', long = "backoff-limit", value_name = "N")]
    pub backoff_limit: Option<String>,
    /// Never give up restarting (runner `forever on`).
    #[arg(short = 'f', long = "forever")]
    pub forever: bool,
    /// Exit codes that end supervision, comma-separated (runner `exit-codes`).
    #[arg(short = 'x', long = "exit-codes", value_name = "LIST")]
    pub exit_codes: Option<String>,
    /// Directory to run in (runner `directory`).
    #[arg(short = 'z', long = "directory", value_name = "DIR")]
    pub directory: Option<String>,
    /// Run as this user (runner `user`).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Octal umask for the program (runner `umask`).
    #[arg(short = 'm', long = "umask", value_name = "OCTAL")]
    pub umask: Option<String>,
    /// File that captures the program's output (runner `transcript`).
    #[arg(short = 't', long = "transcript", value_name = "FILE")]
    pub transcript: Option<String>,
    /// Default file for `logtail` (runner `logfile`).
    #[arg(short = 'l', long = "logfile", value_name = "FILE")]
    pub logfile: Option<String>,
}

/// A bad option value, worded as zdaemon words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for -{option} {value}: {reason}", value = crate::pyrepr::repr_str(.value))]
pub struct OverrideError {
    pub option: char,
    pub value: String,
    pub reason: String,
}

impl RunnerOverrides {
    pub fn is_empty(&self) -> bool {
        *self == RunnerOverrides::default()
    }

    /// Apply the options to `config`, creating a runner if the file had none.
    pub fn apply(&self, config: &mut Config) -> Result<(), OverrideError> {
        if self.is_empty() {
            return Ok(());
        }
        let runner = config.runner.get_or_insert_with(|| Runner::new(Vec::new()));
        fn conv<T>(
            option: char,
            value: &Option<String>,
            f: impl Fn(&str) -> dt::Conv<T>,
        ) -> Result<Option<T>, OverrideError> {
            value
                .as_deref()
                .map(|v| {
                    f(v).map_err(|reason| OverrideError {
                        option,
                        value: v.to_string(),
                        reason,
                    })
                })
                .transpose()
        }
        if let Some(p) = &self.program {
            runner.program = dt::string_list(p);
            runner.origins.set("program", Origin::Option("-p"));
        }
        if let Some(v) = conv('s', &self.socket_name, dt::existing_parent_dirpath)? {
            runner.socket_name = v;
            runner.origins.set("socket-name", Origin::Option("-s"));
        }
        if self.daemon {
            runner.daemon = true;
        }
        if let Some(v) = conv('b', &self.backoff_limit, dt::integer)? {
            runner.backoff_limit = v;
            runner.origins.set("backoff-limit", Origin::Option("-b"));
        }
        if self.forever {
            runner.forever = true;
        }
        if let Some(v) = conv('x', &self.exit_codes, dt::list_of_ints)? {
            runner.exit_codes = v;
            runner.origins.set("exit-codes", Origin::Option("-x"));
        }
        if let Some(v) = conv('z', &self.directory, dt::existing_parent_directory)? {
            runner.directory = Some(v);
            runner.origins.set("directory", Origin::Option("-z"));
        }
        if let Some(v) = &self.user {
            runner.user = Some(v.clone());
            runner.origins.set("user", Origin::Option("-u"));
        }
        if let Some(v) = conv('m', &self.umask, dt::octal)? {
            runner.umask = v;
            runner.origins.set("umask", Origin::Option("-m"));
        }
        if let Some(v) = conv('t', &self.transcript, dt::existing_dirpath)? {
            runner.transcript = Some(v);
            runner.origins.set("transcript", Origin::Option("-t"));
        }
        if let Some(v) = conv('l', &self.logfile, dt::existing_dirpath)? {
            runner.logfile = Some(v);
            runner.origins.set("logfile", Origin::Option("-l"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins() {
        let mut config = Config::default();
        let o = RunnerOverrides {
            program: Some("sleep  100".into()),
            backoff_limit: Some("3".into()),
            exit_codes: Some("0, 5".into()),
            umask: Some("077".into()),
            forever: true,
            ..Default::default()
        };
        o.apply(&mut config).unwrap();
        let r = config.runner.unwrap();
        assert_eq!(r.program, ["sleep", "100"]);
        assert_eq!(r.backoff_limit, 3);
        assert_eq!(r.exit_codes, [0, 5]);
        assert_eq!(r.umask, 0o77);
        assert!(r.forever);
        assert_eq!(r.socket_name, "zdsock");
    }

    #[test]
    fn bad_value() {
        let o = RunnerOverrides {
            backoff_limit: Some("x".into()),
            ..Default::default()
        };
        let e = o.apply(&mut Config::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for -b 'x': invalid literal for int() with base 10: 'x'"
        );
    }
}
