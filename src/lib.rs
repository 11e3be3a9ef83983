//! zdaemon-rs: a process supervisor that reads zdaemon/ZEO/Zope configs.
//!
//! Layers, bottom up: [`zconfig`] turns ZConfig text into an untyped tree
//! with locations; [`config`] turns that tree (or TOML) into the typed model;
//! [`ctl`] implements the `zdctl` commands on top.

pub mod client;
pub mod config;
pub mod ctl;
pub mod eventlog;
pub mod notify;
pub mod packaging;
pub mod protocol;
pub mod pyrepr;
pub mod supervisor;
pub mod zconfig;
