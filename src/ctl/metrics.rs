//! `zdctl metrics`: every node's figures in the Prometheus text
//! exposition format (version 0.0.4), for node_exporter's textfile
//! collector or any scraper that runs a command. The exposition itself is
//! [`crate::report`]'s, which zdrun's `/metrics` serves too.

use super::EXIT_OK;
use super::daemon::Ctl;
use crate::client::Status;
use crate::report::{add_rss, exposition};

impl Ctl<'_> {
    /// `metrics`: print the exposition. A manager that is not running is
    /// reported in it (`zdrun_up 0`), with status 0: the output is valid,
    /// and a textfile collector should see the site down, not a stale file.
    pub(super) fn metrics(&mut self, st: Option<Status>) -> std::io::Result<u8> {
        let mut info = match &st {
            Some(_) => self.info_object()?,
            None => None,
        };
        if let (None, Some(st)) = (&info, &st) {
            // A Python zdrun has no `info`: its status reply is all there is.
            let pid = st.pid();
            let state = if pid != 0 { "running" } else { "stopped" };
            info = Some(serde_json::json!({"nodes": [{
                "name": "", "state": state, "pid": (pid != 0).then_some(pid),
                "ready": pid != 0 && !st.view.testing,
            }]}));
        }
        if let Some(i) = &mut info {
            add_rss(i);
        }
        let text = exposition(info.as_ref());
        self.out.write_all(text.as_bytes())?;
        Ok(EXIT_OK)
    }
}
