//! The checks ZConfig's log handler factories make when a handler section
//! closes: rotation settings of `<logfile>`, and that `format` can format.

use super::model::LogFile;

/// `<logfile>` rules, in the order ZConfig applies them.
pub(crate) fn check_logfile(h: &LogFile) -> Result<(), String> {
    let rotating = !h.when.is_empty() || h.max_size != 0 || h.old_files != 0;
    if h.path == "STDOUT" || h.path == "STDERR" {
        if rotating {
            return Err(format!("cannot rotate {}", h.path));
        }
        if h.delay {
            return Err(format!("cannot delay opening {}", h.path));
        }
        if h.encoding.is_some() {
            return Err(format!("cannot specify encoding for {}", h.path));
        }
    } else if rotating || h.interval != 0 {
        if h.old_files == 0 {
            return Err("old-files must be set for log rotation".into());
        }
        if !h.when.is_empty() {
            if h.max_size != 0 {
                return Err("can't set *both* max_bytes and when".into());
            }
        } else if h.max_size == 0 {
            return Err("max-bytes or when must be set for log rotation".into());
        }
    }
    Ok(())
}

/// Attributes a Python `LogRecord` offers to a format.
const RECORD_FIELDS: &[&str] = &[
    "name",
    "msg",
    "args",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "exc_info",
    "exc_text",
    "stack_info",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "taskName",
    "message",
    "asctime",
];

/// Check that `format` names only record fields (unless arbitrary fields
/// are allowed) and is well formed for its style.
pub(crate) fn check_format(format: &str, style: &str, arbitrary: bool) -> Result<(), String> {
    let fields = match style {
        "classic" => classic_fields(format)?,
        "format" => brace_fields(format)?,
        _ => dollar_fields(format, style == "template")?,
    };
    let unknown = fields.iter().find(|f| !RECORD_FIELDS.contains(&f.as_str()));
    if let (false, Some(f)) = (arbitrary, unknown) {
        return Err(format!("invalid format: unknown log record field {f:?}"));
    }
    Ok(())
}

/// Names in `%(name)s` placeholders.
fn classic_fields(format: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('%') {
            rest = r;
            continue;
        }
        let Some(r) = after.strip_prefix('(') else {
            // A positional `%s` formats the whole mapping: legal, if odd.
            rest = after;
            continue;
        };
        let Some(close) = r.find(')') else {
            return Err("invalid format: incomplete format key".into());
        };
        out.push(r[..close].to_string());
        let spec = &r[close + 1..];
        let conv = spec.find(|c: char| !"#0- +123456789.*lhL".contains(c));
        match conv.and_then(|j| spec[j..].chars().next()) {
            Some(c) if "diouxXeEfFgGcrsa".contains(c) => {
                rest = &spec[conv.unwrap_or(0) + c.len_utf8()..];
            }
            _ => return Err("invalid format: incomplete format".into()),
        }
    }
    Ok(out)
}

/// Names in `{name}` placeholders; positional `{}` is refused as ZConfig does.
fn brace_fields(format: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = format.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
            }
            '{' => {
                let end = format[i..]
                    .find('}')
                    .ok_or("invalid format: unmatched '{'")?;
                let inner = &format[i + 1..i + end];
                let name: String = inner.chars().take_while(|c| !"!:.[".contains(*c)).collect();
                if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
                    return Err("format formats cannot use positional placeholders".into());
                }
                out.push(name);
                while chars.peek().is_some_and(|p| p.0 < i + end + 1) {
                    chars.next();
                }
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
            }
            '}' => return Err("invalid format: single '}' encountered".into()),
            _ => {}
        }
    }
    Ok(out)
}

/// Names in `$name` / `${name}` placeholders.
fn dollar_fields(format: &str, strict: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let (name, used) = if let Some(r) = after.strip_prefix('$') {
            rest = r;
            continue;
        } else if let Some(r) = after.strip_prefix('{') {
            match r.find('}') {
                Some(j) => (&r[..j], j + 2),
                None if strict => return Err("invalid format: invalid placeholder".into()),
                None => ("", 1),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        if name.is_empty() {
            if strict {
                return Err("invalid format: invalid placeholder".into());
            }
        } else {
            out.push(name.to_string());
        }
        rest = &after[used.min(after.len())..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic() {
        assert!(check_format("%(asctime)s %(levelname)-8s %(message)s", "classic", false).is_ok());
        assert!(check_format("100%% %(message)s", "classic", false).is_ok());
        assert!(check_format("%(nope)s", "classic", false).is_err());
        assert!(check_format("%(nope)s", "classic", true).is_ok());
        assert!(check_format("%(message)", "classic", false).is_err());
    }

    #[test]
    fn other_styles() {
        assert!(check_format("{asctime} {message}", "format", false).is_ok());
        assert!(check_format("{} {message}", "format", false).is_err());
        assert!(check_format("$asctime ${message}", "template", false).is_ok());
        assert!(check_format("$nope", "safe-template", false).is_err());
    }
}
