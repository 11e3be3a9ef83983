//! sd_notify: telling systemd (a `Type=notify` unit) how zdrun is doing.
//! The protocol is one datagram of `KEY=VALUE` lines to the socket named
//! by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// Half the watchdog interval, when systemd asked for keep-alives.
    pub watchdog: Option<Duration>,
}

/// Variables systemd sets for zdrun alone; programs must not inherit them
/// (a program could otherwise notify, or be watched, in zdrun's name).
pub const PRIVATE_VARS: &[&str] = &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

impl Notifier {
    /// A notifier if systemd gave us a socket; `None` otherwise.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_str()?.to_string();
        let addr = match name.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?
            }
            #[cfg(not(target_os = "linux"))]
            Some(_) => return None,
            None => SocketAddr::from_pathname(&name).ok()?,
        };
        let sock = UnixDatagram::unbound().ok()?;
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        Some(Notifier {
            sock,
            addr,
            watchdog,
        })
    }

    /// Send one message; systemd's absence is not our problem.
    pub fn send(&self, msg: &str) {
        let _ = self.sock.send_to_addr(msg.as_bytes(), &self.addr);
    }

    /// `RELOADING=1` with the monotonic timestamp newer systemd wants.
    pub fn reloading(&self) {
        let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}
