//! zdaemon-rs: a process supervisor that reads zdaemon/ZEO/Zope configs.
//!
//! Layers, bottom up (each uses only those before it):
//! - [`pyrepr`], [`system`]: Python's text forms; users and descriptors.
//! - [`zconfig`]: ZConfig text to an untyped tree with locations.
//! - [`config`]: that tree (or TOML) to the typed model, with its checks.
//! - [`protocol`]: zdaemon's control-socket requests and replies.
//! - [`cli`]: both programs' command lines (clap definitions).
//! - [`settings`]: what zdrun and zdctl need of a configuration, resolved
//!   and checked (paths, users, timeouts, program files).
//! - [`eventlog`], [`notify`]: zdrun's event log; systemd notifications.
//! - [`report`]: the status document and metrics both programs serve.
//! - [`client`]: the client half of the protocol, with its trust checks.
//! - [`packaging`]: completions, man pages and systemd units, from [`cli`]
//!   and [`settings`].
//! - [`supervisor`]: `zdrun`, the daemon; [`ctl`]: `zdctl`, the client.
//!   Neither uses the other.

pub mod cli;
pub mod client;
pub mod config;
pub mod ctl;
pub mod eventlog;
pub mod notify;
pub mod packaging;
pub mod protocol;
pub mod pyrepr;
pub mod report;
pub mod settings;
pub mod supervisor;
pub mod system;
pub mod zconfig;
