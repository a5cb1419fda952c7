//! Sockets handed over by systemd (socket activation, `LISTEN_FDS`): how a
//! receiver listens on port 514 without the daemon ever holding
//! `CAP_NET_BIND_SERVICE`. systemd binds the ports of
//! `canhgac-syslog.socket` as root and passes them in; a syslog input whose
//! `listen` address and transport equal an inherited socket's takes that
//! socket instead of binding one.
//!
//! Turning a descriptor number into a socket is the one place that needs
//! `unsafe` (`FromRawFd`); the `listenfd` crate does it, checking first
//! that the descriptor is a socket of the asked type, and that `LISTEN_PID`
//! names this process, so descriptors meant for another are never taken.

use super::Bound;

/// Every socket systemd passed us, as UDP sockets and TCP listeners.
/// Descriptors of other kinds are left alone (and logged).
pub fn inherited() -> Vec<Bound> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut bound = Vec::new();
    for i in 0..fds.len() {
        let taken = match fds.take_tcp_listener(i) {
            Ok(Some(l)) => Some(Bound::Tcp(l)),
            Ok(None) => None,
            Err(_) => match fds.take_udp_socket(i) {
                Ok(Some(s)) => Some(Bound::Udp(s)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(
                        "inherited descriptor {} is neither a TCP listener nor a UDP socket: {e}",
                        i + 3
                    );
                    None
                }
            },
        };
        if let Some(b) = taken {
            match b.local_addr() {
                Ok(addr) => tracing::info!("socket from systemd: {} {addr}", b.transport().name()),
                Err(e) => tracing::warn!("socket from systemd without an address: {e}"),
            }
            bound.push(b);
        }
    }
    bound
}
