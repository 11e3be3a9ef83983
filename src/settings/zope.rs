//! A Zope (WSGI) instance's zope.conf run with no `<runner>`: the values
//! an instance's `bin/instance` (plone.recipe.zope2instance 9.1.0, its
//! `ctl.py`) works out from zope.conf, filled into the runner where the
//! file and the command line leave them unset.
//!
//! - program: the instance's Python serving `etc/wsgi.ini` (the recipe
//!   writes it), else `etc/zope.ini` (mkwsgiinstance writes it), with
//!   `-m Zope2.Startup.serve` (what bin/instance and `runwsgi` run);
//! - socket-name: `$CLIENTHOME/zopectlsock`; directory: `instancehome`;
//! - exit-codes `0, 2` (the runner's default already);
//! - logfile (`logtail`'s default): the first file handler of the WSGI
//!   file's root logger, else the first `<logfile>` of zope.conf's
//!   `<eventlog>`;
//! - environment: `INSTANCE_HOME`, `CLIENT_HOME`, `ZEO_TMP`, under the
//!   file's own `<environment>`.

use crate::config::datatypes::absolute;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::config::{self, Config, Kind};

/// The variable bin/instance sets before zope.conf is read: where a ZEO
/// client without `var` keeps its persistent cache (`$(ZEO_TMP)`).
pub const ZEO_TMP: &str = "ZEO_TMP";

/// Python's `tempfile.gettempdir()`: the first of `TMPDIR`, `TEMP`, `TMP`
/// that names a directory, else `/tmp`.
pub fn temp_dir() -> String {
    ["TMPDIR", "TEMP", "TMP"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/tmp".into())
}

/// `ZEO_TMP`'s value: the caller's, else the temporary directory.
pub fn zeo_tmp() -> String {
    std::env::var(ZEO_TMP)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(temp_dir)
}

/// Set `ZEO_TMP` in our own environment unless the caller did, as
/// bin/instance does before it reads zope.conf: a recipe-written ZEO
/// client's `var $(ZEO_TMP)` then loads, here and in the processes we
/// start (zdrun reads the file again).
///
/// Call it first thing in `main`, before any thread starts.
pub fn provide_zeo_tmp() {
    if std::env::var_os(ZEO_TMP).is_none() {
        // SAFETY: called at the start of main, before any thread exists,
        // so no one reads the environment while it changes.
        unsafe { std::env::set_var(ZEO_TMP, temp_dir()) };
    }
}

/// What an instance's zope.conf says of where it lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// `instancehome` (required by Zope's schema).
    pub home: PathBuf,
    /// `clienthome`, by default `$INSTANCE_HOME/var`.
    pub clienthome: PathBuf,
}

impl Instance {
    /// The instance of a zope.conf; relative paths are taken from `base`,
    /// the directory of the file.
    pub fn of(config: &Config, base: &Path) -> Result<Instance, String> {
        let Some(z) = config.zope.as_ref().filter(|z| !z.instancehome.is_empty()) else {
            return Err("instancehome is not set; Zope needs it".into());
        };
        let home = absolute(&z.instancehome, base);
        // Defaulted by the schema to $instancehome/var when not written.
        let clienthome = if z.clienthome.is_empty() {
            home.join("var")
        } else {
            absolute(&z.clienthome, base)
        };
        Ok(Instance { home, clienthome })
    }

    /// The file the instance is served from: `etc/wsgi.ini` (the
    /// recipe's), else `etc/zope.ini` (mkwsgiinstance's).
    pub fn wsgi_file(&self) -> Option<PathBuf> {
        ["wsgi.ini", "zope.ini"]
            .iter()
            .map(|f| self.home.join("etc").join(f))
            .find(|p| p.is_file())
    }

    /// The environment the instance's processes get, as bin/instance
    /// gives it (and as Zope itself sets once configured): the variables
    /// of the buildout's `.env` (and `.env.$PLONE_ENV`) we do not have
    /// already, then `INSTANCE_HOME`, `CLIENT_HOME`, `ZEO_TMP`.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = self.dotenv();
        for (k, v) in [
            ("INSTANCE_HOME", lossy(&self.home)),
            ("CLIENT_HOME", lossy(&self.clienthome)),
            (ZEO_TMP, zeo_tmp()),
        ] {
            env.retain(|(old, _)| old != k);
            env.push((k.to_string(), v));
        }
        env
    }

    /// bin/instance loads `instancehome/../../.env` (the buildout's
    /// directory, for a part in `parts/`), then `.env.$PLONE_ENV`, into
    /// its environment without overriding what is set (python-dotenv's
    /// `load_dotenv`).
    fn dotenv(&self) -> Vec<(String, String)> {
        let dir = self.home.join("..").join("..");
        let mut files = vec![dir.join(".env")];
        if let Some(name) = std::env::var("PLONE_ENV").ok().filter(|n| !n.is_empty()) {
            files.push(dir.join(format!(".env.{name}")));
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for (k, v) in parse_dotenv(&text, &env) {
                if std::env::var_os(&k).is_none() && !env.iter().any(|(old, _)| *old == k) {
                    env.push((k, v));
                }
            }
        }
        env
    }

    /// The instance's Python, as the words that start it: `$PYTHON` (as
    /// bin/instance), the runner's `python`, the buildout part's
    /// `bin/interpreter` (bin/instance runs Zope through it), a
    /// `bin/python` in the instance (an instance made inside its
    /// virtualenv), else the Python of the `runwsgi` found on `PATH`.
    pub fn python(&self, runner_python: Option<&str>) -> Result<Vec<String>, String> {
        if let Some(p) = std::env::var("PYTHON").ok().filter(|p| !p.is_empty()) {
            return Ok(vec![p]);
        }
        if let Some(p) = runner_python.filter(|p| !p.is_empty()) {
            return Ok(vec![p.to_string()]);
        }
        let bin = self.home.join("bin");
        let own = ["interpreter", "python3", "python"]
            .iter()
            .map(|n| bin.join(n))
            .find(|p| p.is_file());
        if let Some(p) = own {
            return Ok(vec![lossy(&p)]);
        }
        if let Ok(runwsgi) = super::find_program("runwsgi", &self.home)
            && let Some(python) = python_of_script(&runwsgi)
        {
            return Ok(vec![python]);
        }
        Err(format!(
            "cannot find the Python of the Zope instance in {}: set PYTHON, or the \
             runner's python or program, or put Zope's runwsgi on PATH",
            self.home.display()
        ))
    }
}

/// The `KEY=VALUE` lines of a dotenv file, as python-dotenv reads the
/// common forms: `export ` before the key, `#` comments, values in single
/// quotes, double quotes (with `\n`, `\"` and `\\`) or bare (up to ` #`),
/// and `${NAME}` / `${NAME:-default}` in any of them (python-dotenv 1.x
/// expands single-quoted values too) taken from our environment, else from
/// the lines before (`earlier`, then this file's).
fn parse_dotenv(text: &str, earlier: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_string();
        let value = value.trim();
        let raw = if let Some(v) = value.strip_prefix('\'') {
            v.split('\'').next().unwrap_or("").to_string()
        } else if let Some(v) = value.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some(c) => s.push(c),
                        None => break,
                    },
                    c => s.push(c),
                }
            }
            s
        } else {
            value.split(" #").next().unwrap_or("").trim().to_string()
        };
        let lookup = |name: &str| {
            std::env::var(name).ok().or_else(|| {
                earlier
                    .iter()
                    .chain(&out)
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let value = expand(&raw, lookup);
        out.push((key, value));
    }
    out
}

/// `${NAME}` and `${NAME:-default}` in `s`, looked up by `lookup`
/// (unknown names are empty).
fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, d),
            None => (inner, ""),
        };
        out.push_str(
            &lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()),
        );
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The Python a console script runs with: a `python3`/`python` beside it
/// (a virtualenv's bin), else its `#!` line's interpreter.
fn python_of_script(script: &Path) -> Option<String> {
    let dir = script.parent()?;
    if let Some(p) = ["python3", "python"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
    {
        return Some(lossy(&p));
    }
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
    let interp = line.split_whitespace().next()?;
    Path::new(interp).is_absolute().then(|| interp.to_string())
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `config` with its runner completed as bin/instance would run the
/// instance (see the module header); a file that is not a zope.conf is
/// returned unchanged, and so is one without `instancehome` whose program
/// is given (`program_given`: by a site's `<program>`; or its runner's):
/// a database config a site node names only for its ZEO addresses.
/// `reach`: for an action that only talks to a running manager, so a
/// Python that cannot be found is no error.
pub fn complete(
    config: &Config,
    base: &Path,
    reach: bool,
    program_given: bool,
) -> Result<Config, String> {
    if config.kind != Kind::Zope {
        return Ok(config.clone());
    }
    let program_given = program_given
        || config
            .runner
            .as_ref()
            .is_some_and(|r| !r.program.is_empty());
    let instance = match Instance::of(config, base) {
        Ok(i) => i,
        Err(_) if program_given => return Ok(config.clone()),
        Err(e) => return Err(e),
    };
    let mut c = config.clone();
    let r = c
        .runner
        .get_or_insert_with(|| config::Runner::new(Vec::new()));
    let wsgi = instance.wsgi_file();
    if !program_given {
        let Some(wsgi) = wsgi.clone().or_else(|| {
            // Only the program's name is needed to talk to zdrun.
            reach.then(|| instance.home.join("etc").join("wsgi.ini"))
        }) else {
            return Err(format!(
                "no program: the Zope instance in {} has neither etc/wsgi.ini nor \
                 etc/zope.ini; give the runner a program",
                instance.home.display()
            ));
        };
        let python = match instance.python(r.python.as_deref()) {
            Ok(p) => p,
            // Only the program's name is needed to talk to zdrun.
            Err(_) if reach => vec!["python3".to_string()],
            Err(e) => return Err(e),
        };
        r.program = python;
        r.program
            .extend(["-m".to_string(), "Zope2.Startup.serve".to_string()]);
        r.program.push(lossy(&wsgi));
    }
    if r.origins.given("socket-name").is_none() {
        r.socket_name = lossy(&instance.clienthome.join("zopectlsock"));
    }
    if r.directory.is_none() {
        r.directory = Some(lossy(&instance.home));
    }
    if r.logfile.is_none() {
        let from_wsgi = wsgi
            .as_deref()
            .and_then(|w| wsgi_event_log(w, &instance.home));
        let from_eventlog = config
            .eventlog
            .as_ref()
            .and_then(|log| config::show::log_paths(log).into_iter().next())
            .filter(|p| !matches!(*p, "STDOUT" | "STDERR"))
            .map(|p| absolute(p, base));
        r.logfile = from_wsgi.or(from_eventlog).map(|p| lossy(&p));
    }
    let mut env: IndexMap<String, String> = instance.environment().into_iter().collect();
    // bin/instance starts zdrun so; Zope takes it as "run by a manager".
    env.insert("ZMANAGED".into(), "1".into());
    for (k, v) in &config.environment {
        env.insert(k.clone(), v.clone());
    }
    c.environment = env;
    Ok(c)
}

/// Handler classes that write a file (`logging.FileHandler` and its
/// subclasses), as a logging ini names them.
const FILE_HANDLERS: &[&str] = &[
    "FileHandler",
    "RotatingFileHandler",
    "TimedRotatingFileHandler",
    "WatchedFileHandler",
];

/// The event log of a WSGI ini file: the file of the first handler of the
/// root logger that writes a file, as bin/instance finds it. Relative
/// paths are taken from `dir` (the program runs there). `None` when the
/// file says nothing this simple reading can follow.
pub fn wsgi_event_log(ini: &Path, dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(ini).ok()?;
    let sections = ini_sections(&text);
    let get = |section: &str, key: &str| {
        sections
            .iter()
            .find(|(name, _)| name == section)
            .and_then(|(_, keys)| keys.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.as_str())
    };
    let handlers = get("logger_root", "handlers")?;
    handlers
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .find_map(|h| {
            let section = format!("handler_{h}");
            let class = get(&section, "class")?;
            let short = class.rsplit('.').next().unwrap_or(class);
            if !FILE_HANDLERS.contains(&short) {
                return None;
            }
            let path = first_string_literal(get(&section, "args")?)?;
            Some(absolute(&path, dir))
        })
}

/// An ini file's sections, each with its keys (lower-cased) and values;
/// indented lines continue a value.
fn ini_sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        let Some((_, keys)) = out.last_mut() else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = keys.last_mut() {
                v.push(' ');
                v.push_str(trimmed);
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once(['=', ':']) {
            keys.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The first element of a Python tuple written as `(r'/path', 'a')`, when
/// it is a plain string literal.
fn first_string_literal(args: &str) -> Option<String> {
    let s = args.trim().strip_prefix('(')?.trim_start();
    let (raw, s) = match s.strip_prefix(['r', 'R']) {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut out = String::new();
    let mut chars = s[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            c if c == quote => return Some(out),
            '\\' if !raw => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals() {
        assert_eq!(
            first_string_literal("(r'/srv/var/log/event.log', 'a')").as_deref(),
            Some("/srv/var/log/event.log")
        );
        assert_eq!(
            first_string_literal("(\"log/x.log\",)").as_deref(),
            Some("log/x.log")
        );
        assert_eq!(first_string_literal("(os.path.join('a'),)"), None);
    }

    #[test]
    fn dotenv_lines() {
        let earlier = [("BASE".to_string(), "/srv".to_string())];
        let got = parse_dotenv(
            "# comment\nexport A=1\nB = 'lit ${A}'\nC=\"two\\nlines\"\n\
             D=${BASE}/x #note\nE=${ZDRS_NOT_SET_ANYWHERE:-dflt}\nnot a line\n",
            &earlier,
        );
        let want = [
            ("A", "1"),
            ("B", "lit 1"),
            ("C", "two\nlines"),
            ("D", "/srv/x"),
            ("E", "dflt"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn event_log_of_the_root_logger() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("wsgi.ini");
        std::fs::write(
            &ini,
            "[logger_root]\nlevel = INFO\nhandlers = console,\n  eventlog\n\n\
             [handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\n\n\
             [handler_eventlog]\nclass = logging.handlers.RotatingFileHandler\n\
             args = ('var/log/event.log', 'a')\n",
        )
        .unwrap();
        assert_eq!(
            wsgi_event_log(&ini, Path::new("/srv/zope")),
            Some(PathBuf::from("/srv/zope/var/log/event.log"))
        );
    }
}
