//! Bounded polls: nothing in the tests asserts that something was fast.

use std::thread;
use std::time::{Duration, Instant};

/// How long any condition may take to come true. Generous: the machine
/// running the tests may be busy compiling, and a broken daemon is never
/// fast enough anyway.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// How often a condition is looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `probe` every `every` until it returns something; panics with
/// `what` and `context()` once `limit` has passed.
pub fn poll_every<T>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        thread::sleep(every);
    }
}

/// [`poll_every`] at [`POLL`].
pub fn poll<T>(
    limit: Duration,
    what: &str,
    probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    poll_every(limit, POLL, what, probe, context)
}

/// [`poll`] within [`DEADLINE`].
pub fn wait_for<T>(
    what: &str,
    probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    poll(DEADLINE, what, probe, context)
}

/// Waits within [`DEADLINE`] until `done` holds.
pub fn until(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    wait_for(what, || done().then_some(()), context)
}
