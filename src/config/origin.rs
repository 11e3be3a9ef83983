//! Where a setting came from -- a line of a file or a command-line option --
//! kept beside the typed model so that checks made after loading (zdrun's
//! start, `zdctl check`) can name the line to fix.
//!
//! An origin is not part of a setting's meaning: every [`Origin`] equals
//! every other, so a line that moves changes no comparison (a reload does
//! not restart a program whose settings merely moved in the file).

use std::fmt;

use crate::zconfig::Location;

/// Where one value was set.
#[derive(Clone, Debug, Default)]
pub enum Origin {
    /// A default, or a model built in code.
    #[default]
    Unknown,
    /// A line of a configuration file.
    File(Location),
    /// A command-line option, e.g. `-s`.
    Option(&'static str),
}

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Origin {
    /// What an error message starts with: `FILE:LINE: `, `option -s: `,
    /// or nothing when the origin is unknown.
    pub fn prefix(&self) -> String {
        match self {
            Origin::Unknown => String::new(),
            o => format!("{o}: "),
        }
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, Origin::Unknown)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Unknown => Ok(()),
            Origin::File(l) => write!(f, "{l}"),
            Origin::Option(o) => write!(f, "option {o}"),
        }
    }
}

/// Where each key of a section was set, and where the section starts (the
/// origin of the keys left at their defaults).
#[derive(Clone, Debug, Default)]
pub struct Origins {
    pub section: Origin,
    keys: Vec<(&'static str, Origin)>,
}

impl PartialEq for Origins {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Origins {
    pub fn new(section: Origin) -> Self {
        Origins {
            section,
            keys: Vec::new(),
        }
    }

    /// Record where `key` was set (a later call wins).
    pub fn set(&mut self, key: &'static str, origin: Origin) {
        match self.keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, o)) => *o = origin,
            None => self.keys.push((key, origin)),
        }
    }

    /// Where `key` was set, if it was.
    pub fn given(&self, key: &str) -> Option<&Origin> {
        self.keys.iter().find(|(k, _)| *k == key).map(|(_, o)| o)
    }

    /// Where `key` was set, else where its section starts.
    pub fn of(&self, key: &str) -> &Origin {
        self.given(key).unwrap_or(&self.section)
    }
}
