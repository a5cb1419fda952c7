//! SIGHUP: the config and rules are read and compiled on a thread of their own while the
//! inputs go on being read, then swapped in between two reads. Everything that can fail
//! (rules, feeds, an input that cannot open) fails before anything running is given up, so a
//! refused reload leaves the daemon as it was. Feeds are loaded and reloaded here too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::inputs::{Input, NewInputs, Opener, Resume};
use super::state::{new_analyzer, rebuild_detector};
use super::Pipeline;
use crate::analyze::{Analyzer, Matchers};
use crate::config::{Config, InputConfig};
use crate::feeds::reload::Reloader;
use crate::feeds::{Feed, FeedSet, Outcome};
use crate::input::source::Position;
use crate::input::watch::Waker;
use crate::metrics::Metrics;
use crate::rules::matcher::Matcher;
use crate::rules::RuleSet;
use crate::timestamp::TimeParser;

/// A config's rule set, bound to its feeds (their files not read yet: see
/// [`load_feeds`]), with the matcher of every input type the config uses.
pub(super) struct Compiled {
    pub(super) rules: Arc<RuleSet>,
    pub(super) matchers: Matchers,
}

/// Compiles the rules of `config`; feeds declared as in `previous` keep
/// their indicators. Every input type's matcher is built here, so a pattern
/// that only fails once combined (size limits) is refused here, not mid-run,
/// and the analyzer is handed them built.
pub(super) fn load_rules(config: &Config, previous: Option<&FeedSet>) -> Result<Compiled, String> {
    let mut rules = RuleSet::load(&config.rules).map_err(|e| e.to_string())?;
    let feeds = FeedSet::new(config.feeds.clone(), previous);
    rules
        .bind_feeds(Arc::new(feeds))
        .map_err(|e| e.to_string())?;
    let mut matchers = Matchers::new();
    for i in &config.inputs {
        if !matchers.contains_key(&i.input_type) {
            let m = Matcher::new(&rules, &i.input_type)?;
            matchers.insert(i.input_type.clone(), Arc::new(m));
        }
    }
    Ok(Compiled {
        rules: Arc::new(rules),
        matchers,
    })
}

/// What a SIGHUP asks for, read and compiled on a thread of its own: with a
/// large rule set that takes longer than the pipeline may stand still.
pub(super) struct Prepared {
    pub(super) config: Config,
    pub(super) compiled: Compiled,
}

/// A reload being prepared.
pub(super) struct PreparingReload {
    pub(super) result: Receiver<Result<Prepared, String>>,
    /// Another SIGHUP came meanwhile: the files may have changed again
    /// after they were read, so they are read once more.
    pub(super) again: bool,
}

impl PreparingReload {
    pub(super) fn start(
        file: PathBuf,
        previous: Arc<FeedSet>,
        waker: Waker,
    ) -> Result<Self, String> {
        let (tx, result) = mpsc::channel();
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let prepared = Config::load(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|config| {
                        let compiled = load_rules(&config, Some(&previous))?;
                        Ok(Prepared { config, compiled })
                    });
                // The pipeline may have stopped meanwhile.
                let _ = tx.send(prepared);
                waker.wake();
            })
            .map_err(|e| format!("cannot start the reload thread: {e}"))?;
        Ok(PreparingReload {
            result,
            again: false,
        })
    }
}

/// Reads every feed file that changed, now, reporting as the reloader does.
pub(super) fn load_feeds(feeds: &FeedSet, metrics: &Metrics) {
    for (i, outcome) in feeds.refresh(true) {
        if let Some(feed) = feeds.get(i) {
            report_feed(metrics, feed, &outcome);
        }
    }
}

/// A feed file's news, in the log and the metrics. Refused files are
/// logged with every bad line as `file:line:col: message`, as `check`
/// prints them.
pub(super) fn report_feed(metrics: &Metrics, feed: &Feed, outcome: &Outcome) {
    let name = feed.name();
    let result = match outcome {
        Outcome::Loaded {
            indicators,
            skipped,
            elapsed,
        } => {
            info!(
                feed = name,
                indicators,
                skipped,
                seconds = elapsed.as_secs_f64(),
                "feed loaded"
            );
            metrics
                .feed_last_load
                .with_label_values(&[name])
                .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
            "success"
        }
        Outcome::Invalid {
            errors,
            bad_lines,
            kept,
        } => {
            for e in errors {
                error!("{e}");
            }
            error!(
                feed = name,
                bad_lines, "feed file refused; the {kept} indicators loaded before stay in use"
            );
            "failure"
        }
        Outcome::Unreadable { message, kept } => {
            error!(
                feed = name,
                "{message}; the {kept} indicators loaded before stay in use"
            );
            "failure"
        }
        Outcome::Incomplete { reason, kept } => {
            warn!(
                feed = name,
                "{reason}; the {kept} indicators loaded before stay in use"
            );
            "incomplete"
        }
    };
    metrics.feed_loads.with_label_values(&[name, result]).inc();
    metrics
        .feed_indicators
        .with_label_values(&[name])
        .set(feed.len() as i64);
}

pub(super) fn start_reloader(
    feeds: &Arc<FeedSet>,
    metrics: &Arc<Metrics>,
    every: Duration,
    at_once: bool,
) -> Result<Option<Reloader>, String> {
    if feeds
        .feeds()
        .iter()
        .all(|f| !matches!(f.decl().source, crate::feeds::FeedSource::File(_)))
    {
        return Ok(None);
    }
    let m = Arc::clone(metrics);
    Reloader::start(Arc::clone(feeds), every, at_once, move |feed, outcome| {
        report_feed(&m, feed, outcome)
    })
    .map(Some)
    .map_err(|e| format!("cannot start the feed reloader: {e}"))
}

impl Pipeline {
    /// SIGHUP: the config and rules are read and compiled on a thread of
    /// their own while the inputs go on being read (see
    /// [`Pipeline::reload_when_prepared`]).
    pub(super) fn prepare_reload(&mut self) {
        if let Some(p) = &mut self.preparing {
            p.again = true;
            return;
        }
        self.notifier.reloading();
        let feeds = Arc::clone(&self.analyzer.rules().feeds);
        match PreparingReload::start(self.config.file.clone(), feeds, self.wakeup.waker()) {
            Ok(p) => self.preparing = Some(p),
            Err(e) => self.reloaded(Err(e)),
        }
    }

    /// Puts a prepared config and rules in place of the running ones.
    /// Anything wrong with them is logged, as `check` would print it, and
    /// the running set stays.
    pub(super) fn reload_when_prepared(&mut self) {
        let Some(p) = &self.preparing else {
            return;
        };
        let result = match p.result.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err("the reload thread ended without a result".to_owned())
            }
        };
        let again = p.again;
        self.preparing = None;
        let result = result.and_then(|prepared| self.try_reload(prepared));
        self.reloaded(result);
        if again {
            self.prepare_reload();
        }
    }

    pub(super) fn reloaded(&mut self, result: Result<(), String>) {
        self.metrics
            .reloads
            .with_label_values(&[if result.is_ok() { "success" } else { "failure" }])
            .inc();
        self.metrics.reload_ok.set(i64::from(result.is_ok()));
        if result.is_ok() {
            // Said of the config in force, not of one a reload refused.
            super::log_inputs_left_out(&self.config);
        }
        match result {
            Ok(()) => info!(
                rules = self.analyzer.rules().rules.len(),
                digest = %self.analyzer.rules().digest(),
                inputs = self.inputs.len(),
                "reloaded"
            ),
            Err(e) => error!("reload refused, the running config and rules stay:\n{e}"),
        }
        let status = self.status();
        self.notifier.ready(&status);
    }

    /// For a reload: the inputs of `config` that are not `kept`, opened
    /// (a changed one resumes where its `closed` self was), and new line
    /// sources for the kept ones under the new analyzer.
    pub(super) fn open_inputs(
        &self,
        config: &Config,
        analyzer: &mut Analyzer,
        kept: &HashMap<String, Input>,
        closed: &[(InputConfig, Position)],
    ) -> Result<NewInputs, String> {
        let stored = self.writer.recovery().ok();
        let opener = Opener {
            config,
            waker: self.wakeup.waker(),
            inherited: &self.inherited,
        };
        let mut new = NewInputs::default();
        for cfg in &config.inputs {
            if kept.contains_key(&cfg.name) {
                let source = analyzer.source(
                    &cfg.input_type,
                    TimeParser::new(config.time_zone.clone(), Timestamp::now()),
                )?;
                new.sources.insert(cfg.name.clone(), source);
                continue;
            }
            let resume = match closed.iter().find(|(c, _)| c.name == cfg.name) {
                Some((_, p)) => Resume::from_position(p.clone()),
                None => stored
                    .as_ref()
                    .map(|r| Resume::stored(r, &cfg.name))
                    .unwrap_or_default(),
            };
            let input = opener.open(analyzer, cfg, resume)?;
            new.opened.insert(cfg.name.clone(), input);
        }
        Ok(new)
    }

    /// A refused reload: the inputs it closed are opened again as they
    /// were, where they were, beside the ones it kept, in the running order.
    pub(super) fn restore_inputs(
        &mut self,
        mut kept: HashMap<String, Input>,
        closed: Vec<(InputConfig, Position)>,
    ) {
        let opener = Opener {
            config: &self.config,
            waker: self.wakeup.waker(),
            inherited: &self.inherited,
        };
        let mut inputs = Vec::new();
        for cfg in &self.config.inputs {
            if let Some(i) = kept.remove(&cfg.name) {
                inputs.push(i);
            } else if let Some((_, p)) = closed.iter().find(|(c, _)| c.name == cfg.name) {
                match opener.open(&mut self.analyzer, cfg, Resume::from_position(p.clone())) {
                    Ok(i) => inputs.push(i),
                    Err(e) => error!("input {} could not be opened again: {e}", cfg.name),
                }
            }
        }
        self.inputs = inputs;
    }

    pub(super) fn try_reload(&mut self, prepared: Prepared) -> Result<(), String> {
        let Prepared {
            config,
            compiled: Compiled { rules, matchers },
        } = prepared;
        // Feeds taken over are shared with the running reloader, and keep
        // their indicators; what changed and new feeds are loaded by the new
        // reloader on its thread and swapped in when read, never here.
        let feed_reloader = start_reloader(
            &rules.feeds,
            &self.metrics,
            config.pipeline.sweep_interval,
            true,
        )?;
        for (what, old, new) in [
            ("agency", self.config.agency.clone(), config.agency.clone()),
            (
                "state_dir",
                self.config.state_dir.display().to_string(),
                config.state_dir.display().to_string(),
            ),
            (
                "listen",
                self.config.listen.to_string(),
                config.listen.to_string(),
            ),
        ] {
            if old != new {
                warn!("{what} changed from {old} to {new}: takes effect at the next restart");
            }
        }
        if config.forward != self.config.forward {
            warn!("[forward] changed: takes effect at the next restart");
        }
        let integrity_changed = config.integrity != self.config.integrity
            || config.time_zone_name != self.config.time_zone_name;
        if integrity_changed {
            // What the old watcher found goes into this commit; the new one
            // starts once it is stored (see `integrity_restart`).
            if let Some(w) = self.integrity.take() {
                for f in w.stop() {
                    self.pending_finding(f);
                }
            }
            self.integrity_restart = true;
        }
        // Store what was read under the old rules, so the new detector
        // starts from stored state; a failure here is not fatal: the batch
        // keeps its ids through the snapshot below.
        self.flush_grown = true;
        if !self.all_stored() || !self.grown.is_empty() {
            if let Err(e) = self.commit() {
                warn!("commit before reload failed, the batch stays pending: {e}");
            }
        }
        let old_ids: Vec<String> = self
            .analyzer
            .rules()
            .rules
            .iter()
            .map(|r| r.id.clone())
            .collect();
        let detector = rebuild_detector(
            &rules,
            &config.pipeline,
            &old_ids,
            self.analyzer.detector().snapshot(),
            0,
        );
        // Rule indices may have moved: the stored keys are rewritten.
        self.state_compact = true;
        let mut analyzer = new_analyzer(&config, rules, matchers, detector, &self.flagged);
        analyzer.continue_counts(&self.analyzer);
        // Inputs that change or go are closed before any is opened, so a
        // receiver moved to another input can bind its address again.
        let mut kept: HashMap<String, Input> = HashMap::new();
        let mut closed: Vec<(InputConfig, Position)> = Vec::new();
        for i in self.inputs.drain(..) {
            if config.inputs.contains(&i.config) {
                kept.insert(i.config.name.clone(), i);
            } else {
                closed.push((i.config.clone(), i.reader.position()));
            }
        }
        // Everything that can fail comes before anything is given up: an
        // input that cannot open (a port in use, a journal that will not
        // start) refuses the reload, and the running inputs go on reading.
        let new_inputs = self.open_inputs(&config, &mut analyzer, &kept, &closed);
        let mut new_inputs = match new_inputs {
            Ok(n) => n,
            Err(e) => {
                self.restore_inputs(kept, closed);
                return Err(e);
            }
        };
        let mut inputs = Vec::new();
        for cfg in &config.inputs {
            if let Some(opened) = new_inputs.opened.remove(&cfg.name) {
                inputs.push(opened);
                continue;
            }
            let (Some(mut i), Some(source)) =
                (kept.remove(&cfg.name), new_inputs.sources.remove(&cfg.name))
            else {
                continue;
            };
            // Certificates are read again; one that no longer loads (the
            // config check read it a moment ago) keeps the old.
            if let Err(e) = i.reader.reload() {
                warn!("{e}; the input keeps its running certificate");
            }
            inputs.push(Input {
                source,
                unrecognised_published: 0,
                ..i
            });
        }
        self.inputs = inputs;
        self.analyzer = analyzer;
        if let Some(r) = std::mem::replace(&mut self.feed_reloader, feed_reloader) {
            r.stop();
        }
        self.rules_changed();
        self.http.reload(&config);
        self.config = Config {
            // Settings that need a restart keep their running values.
            agency: self.config.agency.clone(),
            state_dir: self.config.state_dir.clone(),
            listen: self.config.listen,
            forward: self.config.forward.clone(),
            ..config
        };
        self.sweep();
        Ok(())
    }
}
