//! zdctl with a configuration file that does not load: `status`, `stop`,
//! `kill`, `logtail` and `restart` of a running manager still work, with
//! a warning naming the file's errors. The socket comes from the file's
//! `<runner>` when that part reads, else from the record the manager
//! keeps (`settings::record`); the programs' names, logs and timeouts
//! from that record, else from the manager's `info` reply. `start`,
//! `fg` and `reload` refuse such a file, as before.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::{Cli, Command};
use crate::client::Client;
use crate::config::Config;
use crate::settings::Settings;
use crate::settings::record;

/// Actions that only talk to a running manager (or read its logs).
pub(super) fn reaches_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Status { .. }
            | Command::Stop { .. }
            | Command::Kill { .. }
            | Command::Logtail { .. }
            | Command::Wait
            | Command::ReopenTranscript
            | Command::Logreopen
            | Command::Metrics
            | Command::Ready { .. }
    )
}

/// Actions that may go on when the file does not load.
pub(super) fn tolerated(command: &Command) -> bool {
    reaches_only(command) || matches!(command, Command::Restart { .. })
}

/// Settings to reach the manager of `cli`'s file, which did not load
/// (`errors` say why), and the file's absolute path; `None` when no
/// socket can be found. Prints the warning.
pub(super) fn reach(
    cli: &Cli,
    errors: &str,
    err: &mut dyn Write,
) -> std::io::Result<Option<(Settings, PathBuf)>> {
    let Some(config) = &cli.config else {
        return Ok(None);
    };
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    // A bad option is the command line's error, not the file's.
    let bad_timeout = cli
        .start_timeout
        .as_ref()
        .is_some_and(|t| t.trim().parse::<i64>().is_err());
    if bad_timeout || cli.overrides.apply(&mut Config::default()).is_err() {
        return Ok(None);
    }
    let path = cwd.join(config);
    let part = record::runner_part(&path);
    let user = cli.overrides.user.clone().or(part.user);
    let mut uids = vec![nix::unistd::geteuid().as_raw()];
    if let Some(u) = user
        .as_deref()
        .and_then(|u| crate::system::find_user(u).ok())
    {
        uids.push(u.uid.as_raw());
    }
    let socket = match &cli.overrides.socket_name {
        Some(s) => Some(cwd.join(s)),
        None => part.socket,
    };
    let found = record::find(&record::canonical(config, &cwd), &uids);
    let socket = match (socket, &found) {
        (Some(s), _) => s,
        (None, Some(r)) => r.socket.clone(),
        (None, None) => return Ok(None),
    };
    // A socket path that is something else is the file's own error.
    if std::fs::symlink_metadata(&socket).is_ok_and(|m| !m.file_type().is_socket()) {
        return Ok(None);
    }
    let mut s = match found.filter(|r| r.socket == socket) {
        Some(r) => r.settings(),
        None => from_manager(&socket, &user),
    };
    s.user = user;
    writeln!(
        err,
        "Warning: {} does not load; using the running manager's settings \
         (socket {}):",
        config.display(),
        socket.display()
    )?;
    for line in super::located(cli, errors) {
        writeln!(err, "  {line}")?;
    }
    Ok(Some((s, path)))
}

/// Settings for the manager on `socket`, learned from its `info` reply:
/// a site's program names, or a single program.
fn from_manager(socket: &std::path::Path, user: &Option<String>) -> Settings {
    let mut s = Settings::reaching(socket);
    let mut client = Client::new(socket);
    if let Some(u) = user
        .as_deref()
        .and_then(|u| crate::system::find_user(u).ok())
    {
        client = client.trusting(u.uid.as_raw());
    }
    let info = client
        .send("info")
        .ok()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok());
    let Some(info) = info.filter(|i| i["site"] == true) else {
        return s;
    };
    let template = s.nodes[0].clone();
    s.nodes = info["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str())
        .map(|name| {
            let mut node = template.clone();
            node.name = name.to_string();
            node
        })
        .collect();
    if s.nodes.is_empty() {
        s.nodes = vec![template];
    }
    s
}
