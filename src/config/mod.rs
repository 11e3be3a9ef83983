//! The typed configuration: loading ZConfig files or TOML into [`Config`],
//! command-line overrides, and the canonical views `zdctl show` prints.

pub mod datatypes;
mod error;
pub mod health;
pub mod http;
pub mod limits;
mod logcheck;
pub mod model;
mod origin;
pub mod overrides;
mod reader;
mod schema;
pub mod show;
mod storages;
mod tomlfmt;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use model::*;
pub use origin::{Origin, Origins};
pub use schema::zope::{DosProtection, ZopeConf};
pub use schema::{detect_kind, find_cycle};

use crate::zconfig;

/// Which text format a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    ZConfig,
    Toml,
}

impl Format {
    /// `.toml` files are TOML; everything else is ZConfig syntax.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::ZConfig,
        }
    }
}

/// Load a configuration file in either format.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    match Format::of(path) {
        Format::Toml => {
            let text = zconfig::read_text(path).map_err(|kind| io_error(path, kind))?;
            tomlfmt::load_str(&text, path)
        }
        Format::ZConfig => {
            let text = zconfig::read_text(path).map_err(|kind| io_error(path, kind))?;
            load_zconfig_str(&text, path)
        }
    }
}

/// Load ZConfig text as if read from `path`.
pub fn load_zconfig_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let doc = zconfig::parse_str(text, path).map_err(syntax_errors)?;
    from_document(&doc)
}

/// Load TOML text as if read from `path`.
pub fn load_toml_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    tomlfmt::load_str(text, path)
}

/// Convert a parsed ZConfig document into the typed model.
pub fn from_document(doc: &zconfig::Document) -> Result<Config, ConfigErrors> {
    let (config, errors) = schema::convert(doc);
    let mut errors = errors.list;
    if errors.is_empty() {
        Ok(config)
    } else {
        // Conversion visits sections before keys; report in file order.
        errors.sort_by(|a, b| {
            (&a.location.file, a.location.line).cmp(&(&b.location.file, b.location.line))
        });
        Err(ConfigErrors(errors))
    }
}

/// Print `config` as TOML that loads back to the same model.
pub fn to_toml(config: &Config) -> Result<String, String> {
    tomlfmt::to_string(config)
}

fn syntax_errors(errors: Vec<zconfig::SyntaxError>) -> ConfigErrors {
    ConfigErrors(errors.into_iter().map(ConfigError::from).collect())
}

fn io_error(path: &Path, kind: zconfig::SyntaxErrorKind) -> ConfigErrors {
    let line = match kind {
        zconfig::SyntaxErrorKind::InvalidUtf8 { line, .. } => line,
        _ => 0,
    };
    ConfigErrors(vec![ConfigError {
        location: zconfig::Location::new(path.into(), line),
        kind: ErrorKind::Syntax(kind),
        section: None,
        included_from: Vec::new(),
    }])
}
