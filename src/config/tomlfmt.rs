//! TOML as a second text format of the same model: serde does the typing;
//! this adds line numbers to its errors and the cross-key checks that the
//! ZConfig path makes when a section closes.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors, ErrorKind};
use super::logcheck;
use super::model::{Config, EventLog, Handler};
use crate::zconfig::Location;

pub(crate) fn load_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let at = |line: u32, kind: ErrorKind| ConfigError {
        location: Location::new(path.into(), line),
        kind,
        section: None,
        included_from: Vec::new(),
    };
    let config: Config = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        ConfigErrors(vec![at(line, ErrorKind::Toml(e.message().to_string()))])
    })?;
    let mut errors = Vec::new();
    let logs = config
        .eventlog
        .iter()
        .chain(config.runner.iter().filter_map(|r| r.eventlog.as_ref()));
    for log in logs {
        for (problem, needle) in handler_problems(log) {
            let line = text.find(&needle).map(|i| line_of(text, i)).unwrap_or(1);
            errors.push(at(line, ErrorKind::Invalid(problem)));
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Problems of each handler, with text to find its place in the file.
fn handler_problems(log: &EventLog) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in &log.handlers {
        let (format, style, arbitrary) = match h {
            Handler::Logfile(f) => {
                if let Err(m) = logcheck::check_logfile(f) {
                    out.push((m, f.path.clone()));
                }
                (&f.format, &f.style, f.arbitrary_fields)
            }
            Handler::Syslog(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::Win32Eventlog(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::HttpLogger(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::EmailNotifier(h) => (&h.format, &h.style, h.arbitrary_fields),
        };
        if let Err(m) = logcheck::check_format(format, style, arbitrary) {
            out.push((m, "format".to_string()));
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> u32 {
    let upto = &text.as_bytes()[..offset.min(text.len())];
    1 + upto.iter().filter(|b| **b == b'\n').count() as u32
}
