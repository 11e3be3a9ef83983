//! Arguments checked before an action runs on a site: a node name that is
//! not in the file, a signal that does not exist, words too many. Each is
//! one line, `ACTION: what is wrong`, on standard error, and exit status 2
//! (a usage error), whatever the manager's state.
//!
//! A single program keeps zdaemon's behaviour (its `kill` prints `invalid
//! signal` and exits 0, `status x` says `status argument must be absent or
//! -l`), so these checks apply to sites only.

use super::Command;
use super::help::signal_by_name;
use crate::pyrepr::repr_str;
use crate::settings::Settings;

/// What `kill` on a site is to do: a signal, to one node or to all.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct KillArgs {
    pub signal: String,
    pub node: Option<String>,
}

fn is_node(s: &Settings, name: &str) -> bool {
    s.nodes.iter().any(|n| n.name == name)
}

fn unknown_node(action: &str, name: &str) -> String {
    format!("{action}: unknown node {}", repr_str(name))
}

fn too_many(action: &str) -> String {
    format!("{action}: too many arguments")
}

/// `kill [SIGNAL] [NAME]` on a site. A single word that is a node and not
/// a signal names the node, with the default signal (SIGTERM): that is
/// what `kill web1` means to whoever types it. A node named like a signal
/// (`hup`, `9`) is reached as `kill TERM hup`.
pub(super) fn kill_args(s: &Settings, words: &[String]) -> Result<KillArgs, String> {
    let term = || "SIGTERM".to_string();
    match words {
        [] => Ok(KillArgs {
            signal: term(),
            node: None,
        }),
        [one] if signal_by_name(one).is_some() => Ok(KillArgs {
            signal: one.clone(),
            node: None,
        }),
        [one] if is_node(s, one) => Ok(KillArgs {
            signal: term(),
            node: Some(one.clone()),
        }),
        // Neither: say what the word looks more like.
        [one] if looks_like_signal(one) => Err(invalid_signal(one)),
        [one] => Err(unknown_node("kill", one)),
        [name, sig] if is_node(s, name) && signal_by_name(sig).is_some() => Err(format!(
            "{}; the signal comes first: kill {sig} {name}",
            invalid_signal(name)
        )),
        [sig, _] if signal_by_name(sig).is_none() => Err(invalid_signal(sig)),
        [_, name] if !is_node(s, name) => Err(unknown_node("kill", name)),
        [sig, name] => Ok(KillArgs {
            signal: sig.clone(),
            node: Some(name.clone()),
        }),
        _ => Err(too_many("kill")),
    }
}

fn invalid_signal(word: &str) -> String {
    format!("kill: invalid signal {}", repr_str(word))
}

/// A number, or a word starting with `SIG`: meant as a signal.
fn looks_like_signal(word: &str) -> bool {
    word.parse::<i64>().is_ok() || word.to_ascii_uppercase().starts_with("SIG")
}

/// The usage error in `command` for the site `s`, if there is one.
pub(super) fn problem(s: &Settings, command: &Command) -> Option<String> {
    if !s.is_site() {
        return None;
    }
    // At most one node name, which must be one of the file's.
    let one_name = |action: &str, words: &[String]| match words {
        [] => None,
        [name] if !is_node(s, name) => Some(unknown_node(action, name)),
        [_] => None,
        _ => Some(too_many(action)),
    };
    match command {
        Command::Start { args } => one_name("start", args),
        Command::Restart { args } => one_name("restart", args),
        Command::Stop { name } => one_name("stop", name.as_slice()),
        Command::Status { extra, .. } => one_name("status", extra),
        Command::Ready { name, .. } => one_name("ready", name.as_slice()),
        Command::Kill { signal } => kill_args(s, signal).err(),
        // fg appends the words after NAME to the node's program.
        Command::Fg { args } => match args.first() {
            Some(name) if !is_node(s, name) => Some(unknown_node("fg", name)),
            _ => None,
        },
        // logtail NAME or FILE: a word that is neither is a mistyped name.
        Command::Logtail { file: Some(f), .. } => {
            let word = f.to_string_lossy();
            let plain = !word.contains('/') && !word.starts_with('.');
            (plain && !is_node(s, &word) && !f.exists()).then(|| unknown_node("logtail", &word))
        }
        _ => None,
    }
}
