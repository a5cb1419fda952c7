//! sd_notify(3): readiness, reloads, stopping, the status line and the watchdog.

use std::time::{Duration, Instant};

use tracing::warn;

pub(super) const STATUS_EVERY: Duration = Duration::from_secs(5);

/// sd_notify(3), when `NOTIFY_SOCKET` is set; silent otherwise.
pub(super) struct Notifier {
    pub(super) enabled: bool,
    pub(super) watchdog: Option<Duration>,
    pub(super) last_ping: Option<Instant>,
    pub(super) last_status: Instant,
}

impl Notifier {
    pub(super) fn from_env() -> Self {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            last_status: Instant::now(),
        }
    }

    pub(super) fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                warn!("sd_notify: {e}");
            }
        }
    }

    pub(super) fn ready(&mut self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
        self.last_status = Instant::now();
    }

    /// With `MONOTONIC_USEC=` in the same message: `Type=notify-reload`
    /// (systemd 253+) ignores a `RELOADING=1` without it, and its reload
    /// hangs until it times out.
    pub(super) fn reloading(&self) {
        if !self.enabled {
            return;
        }
        let status = sd_notify::NotifyState::Status("reloading config and rules");
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[sd_notify::NotifyState::Reloading, now, status]),
            Err(e) => {
                warn!("sd_notify: no monotonic time for RELOADING=1: {e}");
                self.send(&[sd_notify::NotifyState::Reloading, status]);
            }
        }
    }

    pub(super) fn stopping(&self) {
        self.send(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping: committing the last batch"),
        ]);
    }

    pub(super) fn status_due(&self) -> bool {
        self.enabled && self.last_status.elapsed() >= STATUS_EVERY
    }

    pub(super) fn status(&mut self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
        self.last_status = Instant::now();
    }

    /// Pings at a quarter of the interval, and only when `healthy`.
    pub(super) fn watchdog(&mut self, healthy: bool) {
        let Some(interval) = self.watchdog else {
            return;
        };
        if healthy && self.last_ping.is_none_or(|t| t.elapsed() >= interval / 4) {
            self.send(&[sd_notify::NotifyState::Watchdog]);
            self.last_ping = Some(Instant::now());
        }
    }
}
