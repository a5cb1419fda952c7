//! One attempt counted once, however many lines log it: sshd writes its own
//! `Failed password` line and PAM's for the same try, from one process.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{room_for_one, sub_sat};

/// How long a process's evidence counts are remembered after its last line
/// (event time): sshd writes an attempt's lines within seconds, and a
/// connection lives at most `LoginGraceTime` (2 minutes by default).
const PROCESS_MEMORY: SignedDuration = SignedDuration::from_secs(600);
/// Processes remembered per key; the oldest goes first. An attacker runs a
/// few connections at a time, each its own process.
const MAX_PROCESSES_PER_KEY: usize = 16;

/// How many lines of each evidence kind one process wrote for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ProcessEvidence {
    pid: String,
    /// (kind, attempts), a handful of kinds at most.
    kinds: Vec<(u8, u64)>,
    last: Timestamp,
}

impl ProcessEvidence {
    fn attempts(&self) -> u64 {
        self.kinds.iter().map(|&(_, n)| n).max().unwrap_or(0)
    }
}

/// The attempts an event adds, given what its process already logged: the
/// growth of the largest per-kind count. sshd's `Failed password` and the
/// PAM line of the same try are two kinds, so the second adds nothing;
/// two tries of one kind add two.
pub(super) fn new_attempts(
    processes: &mut Vec<ProcessEvidence>,
    pid: &str,
    kind: u8,
    attempts: u64,
    time: Timestamp,
) -> u64 {
    let forget = sub_sat(time, PROCESS_MEMORY);
    processes.retain(|p| p.last > forget);
    let at = match processes.iter().position(|p| p.pid == pid) {
        Some(at) => at,
        None => {
            if processes.len() >= MAX_PROCESSES_PER_KEY {
                let oldest = processes
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, p)| p.last)
                    .map_or(0, |(i, _)| i);
                processes.swap_remove(oldest);
            }
            room_for_one(processes);
            processes.push(ProcessEvidence {
                pid: pid.to_owned(),
                kinds: Vec::new(),
                last: time,
            });
            processes.len() - 1
        }
    };
    let p = &mut processes[at];
    let before = p.attempts();
    match p.kinds.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n = n.saturating_add(attempts),
        None => {
            room_for_one(&mut p.kinds);
            p.kinds.push((kind, attempts));
        }
    }
    p.last = p.last.max(time);
    p.attempts() - before
}
