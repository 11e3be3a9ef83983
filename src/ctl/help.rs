//! zdctl's `help` action and signal names, worded as zdaemon words them.

/// Per-action help lines, as zdaemon prints them.
pub fn topic(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "start" => &[
            "start -- Start the daemon process.",
            "         If it is already running, do nothing.",
        ],
        "stop" => &[
            "stop -- Stop the daemon process.",
            "        If it is not running, do nothing.",
        ],
        "restart" => &["restart -- Stop and then start the daemon process."],
        "status" => &[
            "status [-l] -- Print status for the daemon process.",
            "               With -l, show raw status output as well.",
            "               With --json, print it as JSON.",
        ],
        "kill" => &[
            "kill [sig] -- Send signal sig to the daemon process.",
            "              The default signal is SIGTERM.",
        ],
        "wait" => &["wait -- Wait for the daemon process to exit."],
        "ready" => &[
            "ready [NAME] [--wait SECONDS] -- Exit 0 if NAME (or every program that",
            "             should run) is running and ready, else 1 with the reason;",
            "             3 if no daemon manager runs. --wait: wait that long for it.",
        ],
        "metrics" => &[
            "metrics -- Print each program's state, pid, uptime, restarts by cause,",
            "           last exit status and memory in the Prometheus text format.",
        ],
        "show" => &[
            "show options -- show zdctl options",
            "show python -- show Python version and details",
            "show all -- show all of the above",
            "show --json -- the same as JSON; --format toml for TOML",
        ],
        "logreopen" => &[
            "logreopen -- Send a SIGUSR2 signal to the daemon process.",
            "             This is designed to reopen the log file.",
            "             Also reopens the transcript log file.",
        ],
        "reopen_transcript" => &[
            "reopen_transcript -- Reopen the transcript log file.",
            "                     Use after log rotation.",
        ],
        "logtail" => &[
            "logtail [-f] [logfile] -- Print the end of the given logfile.",
            "                          A default file may exist.",
            "                          With -f, follow it; hit ^C to exit.",
        ],
        "foreground" | "fg" => &[
            "foreground -- Run the program in the forground.",
            "fg -- an alias for foreground.",
        ],
        "check" => &["check -- Check the configuration file and report errors."],
        "reload" => &[
            "reload -- Re-read the configuration file: start added programs,",
            "          stop removed ones, restart changed ones.",
        ],
        "help" => &[
            "help          -- Print a list of available actions.",
            "help <action> -- Print help for <action>.",
        ],
        "systemd-unit" => &[
            "systemd-unit -- Print a systemd unit (Type=notify) that runs zdrun",
            "                on this configuration file.",
        ],
        "http-password" => &[
            "http-password [PASSWORD] -- Print the {SHA256} hash to write as",
            "                            <http-server>'s password (the password",
            "                            is read from standard input if not given).",
        ],
        "generate" => &[
            "generate completions|man DIR -- Write shell completions or man",
            "                                pages into DIR (for packaging).",
        ],
        _ => return None,
    })
}

/// What an action does in a site (several `<program NAME>` nodes), added
/// after [`topic`]'s lines when the configuration is one.
pub fn site_topic(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "start" => &[
            "In a site: start [NAME] -- start NAME (and what it comes after),",
            "           or every node, in dependency order.",
        ],
        "stop" => &["In a site: stop [NAME] -- stop NAME, or every node, dependents first."],
        "restart" => &["In a site: restart [NAME] -- restart NAME, or the site."],
        "status" => &[
            "In a site: status [-l] [NAME] -- one line per node, or NAME's;",
            "           -l adds each node's raw status reply.",
        ],
        "kill" => &[
            "In a site: kill [sig] [NAME] -- send sig to NAME, or to every node.",
            "           kill NAME sends SIGTERM to NAME.",
        ],
        "logtail" => &[
            "In a site: logtail [-f] [NAME] -- NAME's logfile, else its transcript;",
            "           without NAME, the runner's logfile, else the event log.",
        ],
        "fg" | "foreground" => &["In a site: fg NAME [args] -- run node NAME in the foreground."],
        "show" => &["In a site: one block per node with its resolved settings."],
        _ => return None,
    })
}

/// zopectl's commands for a zope.conf (bin/instance's); a `<command>` of
/// the same name, which runs in their place, has its own help.
pub fn zope_topic(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "run" => &[
            "run <script> [args] -- run a Python script with the Zope environment",
            "                       set up; `app` is the root object.",
        ],
        "debug" => &["debug -- an interactive Python with `app` bound to the Zope root."],
        "console" => &["console -- run the program in the foreground, as bin/instance does."],
        "adduser" => &["adduser <name> <password> -- add a Zope management user."],
        _ => return None,
    })
}

const ACTIONS: &[&str] = &[
    "check",
    "fg",
    "foreground",
    "help",
    "kill",
    "logreopen",
    "logtail",
    "reload",
    "reopen_transcript",
    "restart",
    "show",
    "start",
    "status",
    "stop",
    "wait",
];

/// The listing `help` prints, laid out as Python's `cmd` module does.
/// `extra`: actions defined by the configuration (`<command NAME>`).
pub fn listing(extra: &[&str]) -> String {
    let header = "Documented commands (type help <topic>):";
    let mut out = format!("\n{header}\n{}\n", "=".repeat(header.len()));
    let mut actions: Vec<&str> = ACTIONS.to_vec();
    actions.extend(extra);
    actions.sort_unstable();
    actions.dedup();
    out.push_str(&columnize(&actions, 79));
    out.push('\n');
    out
}

/// Python `cmd.Cmd.columnize`: as few rows as fit in `width` columns.
fn columnize(items: &[&str], width: usize) -> String {
    let size = items.len();
    if size == 0 {
        return "<empty>\n".into();
    }
    if size == 1 {
        return format!("{}\n", items[0]);
    }
    let mut layout = None;
    for nrows in 1..size {
        let ncols = size.div_ceil(nrows);
        let mut widths = Vec::new();
        let mut total: isize = -2;
        for col in 0..ncols {
            let w = (0..nrows)
                .map(|row| row + nrows * col)
                .take_while(|&i| i < size)
                .map(|i| items[i].len())
                .max()
                .unwrap_or(0);
            widths.push(w);
            total += w as isize + 2;
            if total > width as isize {
                break;
            }
        }
        if total <= width as isize {
            layout = Some((nrows, ncols, widths));
            break;
        }
    }
    let (nrows, ncols, widths) = layout.unwrap_or((size, 1, vec![0]));
    let mut out = String::new();
    for row in 0..nrows {
        let mut texts: Vec<&str> = (0..ncols)
            .map(|col| items.get(row + nrows * col).copied().unwrap_or(""))
            .collect();
        while texts.last().is_some_and(|t| t.is_empty()) {
            texts.pop();
        }
        let cells: Vec<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{t:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    out
}

/// Linux signal names and numbers, as Python's `signal` module lists them
/// (alphabetical, so the first name wins for aliases).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGABRT", 6),
    ("SIGALRM", 14),
    ("SIGBUS", 7),
    ("SIGCHLD", 17),
    ("SIGCLD", 17),
    ("SIGCONT", 18),
    ("SIGFPE", 8),
    ("SIGHUP", 1),
    ("SIGILL", 4),
    ("SIGINT", 2),
    ("SIGIO", 29),
    ("SIGIOT", 6),
    ("SIGKILL", 9),
    ("SIGPIPE", 13),
    ("SIGPOLL", 29),
    ("SIGPROF", 27),
    ("SIGPWR", 30),
    ("SIGQUIT", 3),
    ("SIGRTMAX", 64),
    ("SIGRTMIN", 34),
    ("SIGSEGV", 11),
    ("SIGSTKFLT", 16),
    ("SIGSTOP", 19),
    ("SIGSYS", 31),
    ("SIGTERM", 15),
    ("SIGTRAP", 5),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGVTALRM", 26),
    ("SIGWINCH", 28),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
];

/// zdaemon's `name2signal`: a name (any case, `SIG` optional) or number.
pub fn signal_by_name(arg: &str) -> Option<(&'static str, i32)> {
    if let Some(n) = crate::pyrepr::parse_int(arg) {
        return SIGNALS
            .iter()
            .find(|(_, v)| i64::from(*v) == n)
            .map(|&(name, v)| (name, v));
    }
    if arg.contains('_') {
        return None;
    }
    let upper = arg.to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(name, v)| (name, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_like_cmd() {
        let header = "Documented commands (type help <topic>):";
        let zdaemon = ["fg", "foreground", "help", "kill", "logreopen", "logtail"];
        let rest = ["reopen_transcript", "restart", "show", "start", "status"];
        let all: Vec<&str> = zdaemon.iter().chain(rest.iter()).copied().collect();
        let mut all = all;
        all.extend(["stop", "wait"]);
        let got = format!(
            "\n{header}\n{}\n{}\n",
            "=".repeat(header.len()),
            columnize(&all, 79)
        );
        assert_eq!(
            got,
            "\nDocumented commands (type help <topic>):\n\
             ========================================\n\
             fg          help  logreopen  reopen_transcript  show   status  wait\n\
             foreground  kill  logtail    restart            start  stop  \n\n"
        );
    }

    /// Every action of the command line has a `help` topic.
    #[test]
    fn every_action_has_help() {
        use clap::CommandFactory;
        let cli = crate::cli::zdctl::Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            let names = std::iter::once(sub.get_name()).chain(sub.get_all_aliases());
            for name in names {
                if topic(name).is_none() {
                    missing.push(name.to_string());
                }
            }
        }
        assert!(cli.get_subcommands().count() > 10);
        assert!(missing.is_empty(), "no help topic for {missing:?}");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_by_name("hup"), Some(("SIGHUP", 1)));
        assert_eq!(signal_by_name("SigUsr2"), Some(("SIGUSR2", 12)));
        assert_eq!(signal_by_name("6"), Some(("SIGABRT", 6)));
        assert_eq!(signal_by_name("17"), Some(("SIGCHLD", 17)));
        assert_eq!(signal_by_name("sig_ign"), None);
        assert_eq!(signal_by_name("0"), None);
        assert_eq!(signal_by_name("bogus"), None);
    }
}
