//! Findings of the web-root integrity watcher, numbered by the detector and committed with
//! the incidents from logs.

use std::sync::Arc;
use std::time::Instant;

use super::Pipeline;
use crate::integrity::watch::{Surroundings, Watcher};
use crate::integrity::Finding;

impl Pipeline {
    /// Starts the integrity watcher for the configured web roots.
    pub(super) fn start_integrity(&mut self) -> Result<(), String> {
        self.integrity_restart = false;
        let roots = &self.config.integrity.roots;
        for r in roots {
            let name = [r.name.as_str()];
            for m in [
                &self.metrics.integrity_files,
                &self.metrics.integrity_flagged,
            ] {
                m.with_label_values(&name);
            }
            self.metrics.integrity_errors.with_label_values(&name);
            self.metrics.integrity_hashed.with_label_values(&name);
            for outcome in ["raised", "expected", "restored"] {
                self.metrics
                    .integrity_changes
                    .with_label_values(&[&r.name, outcome]);
            }
        }
        if roots.is_empty() {
            return Ok(());
        }
        self.integrity = Some(Watcher::start(Surroundings {
            config: self.config.integrity.clone(),
            tz: self.config.time_zone.clone(),
            db: self.config.db_path(),
            flagged: self.flagged.clone(),
            metrics: Arc::clone(&self.metrics),
            wake: self.wakeup.waker(),
        })?);
        Ok(())
    }

    /// Takes what the integrity watcher found into the pending batch.
    pub(super) fn take_findings(&mut self) {
        let mut found = Vec::new();
        if let Some(w) = &self.integrity {
            while let Some(f) = w.try_recv() {
                found.push(f);
            }
        }
        for f in found {
            self.pending_finding(f);
        }
    }

    pub(super) fn pending_finding(&mut self, mut finding: Finding) {
        let detector = self.analyzer.detector_mut();
        finding.number(|| detector.reserve_id());
        if !finding.incidents.is_empty() {
            self.counters.incidents_opened += finding.incidents.len() as u64;
        }
        self.pending.since.get_or_insert_with(Instant::now);
        self.pending.integrity_incidents.extend(finding.incidents);
        self.pending.integrity_ops.extend(finding.ops);
    }
}
