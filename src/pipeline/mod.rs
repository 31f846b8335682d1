//! The pipeline: one batch of observations → one transaction of facts, findings, outbox, checkpoint.

mod crash;
pub mod replay;
mod resolve;

use crash::CrashPoint;
pub use resolve::Resolution;

use crate::config::Config;
use crate::domain::{Activity, ChangeOp, EventTime, FactKind, Observation, Provenance};
use crate::engine::drift::{self, Cause, DriftInput, Observed};
use crate::engine::{activity, Transition, TransitionKind};
use crate::notify::Alert;
use crate::sources::SkipReason;
use crate::store::{Checkpoint, FactApply, Store, StoreError, Tx};
use std::collections::{BTreeMap, HashSet};

/// Pipeline failures: only the store can fail; bad input is counted, never an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed; the batch was rolled back and will be read again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts of what batches did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Changes that altered stored state (facts or activities).
    pub applied: u64,
    /// Changes equal to what was stored (e.g. metadata-only Kubernetes updates).
    pub unchanged: u64,
    /// Records that changed nothing, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Changed facts not evaluated because no baseline exists yet.
    pub awaiting_baseline: u64,
    /// Findings opened for the first time.
    pub opened: u64,
    /// Findings opened again.
    pub reopened: u64,
    /// Findings resolved (state returned or approved).
    pub resolved: u64,
    /// Findings whose severity changed.
    pub severity_changed: u64,
    /// Findings updated without a notification.
    pub updated: u64,
    /// Outbox rows queued.
    pub notifications: u64,
}

impl Stats {
    /// Counts one skip.
    pub fn skip(&mut self, r: SkipReason) {
        *self.skipped.entry(r).or_default() += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: &Stats) {
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        for (k, v) in &o.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
        self.awaiting_baseline += o.awaiting_baseline;
        self.opened += o.opened;
        self.reopened += o.reopened;
        self.resolved += o.resolved;
        self.severity_changed += o.severity_changed;
        self.updated += o.updated;
        self.notifications += o.notifications;
    }

    fn count(&mut self, k: &TransitionKind) {
        match k {
            TransitionKind::Opened => self.opened += 1,
            TransitionKind::Reopened => self.reopened += 1,
            TransitionKind::Resolved => self.resolved += 1,
            TransitionKind::SeverityChanged { .. } => self.severity_changed += 1,
            TransitionKind::Updated => self.updated += 1,
        }
    }
}

/// Runs batches against a store with a configuration.
pub struct Pipeline<'a> {
    store: &'a mut Store,
    config: &'a Config,
    sinks: Vec<String>,
    batches: u64,
    crash: Option<CrashPoint>,
}

impl<'a> Pipeline<'a> {
    /// A pipeline that queues alerts for the named sinks.
    pub fn new(store: &'a mut Store, config: &'a Config, sinks: Vec<String>) -> Self {
        Pipeline {
            store,
            config,
            sinks,
            batches: 0,
            crash: CrashPoint::from_env(),
        }
    }

    /// The store, for reads between batches.
    pub fn store(&mut self) -> &mut Store {
        self.store
    }

    /// Applies one batch and, with it, advances `checkpoint`, all in one transaction.
    pub fn apply_batch(
        &mut self,
        batch: Vec<Observation>,
        checkpoint: Option<(&str, &Checkpoint)>,
    ) -> Result<Stats, PipelineError> {
        self.batches += 1;
        let span = tracing::info_span!(
            "ingest_batch",
            batch.records = batch.len(),
            batch.number = self.batches
        );
        let _guard = span.enter();
        let config = self.config;
        let sinks = self.sinks.clone();
        let crash = self.crash.clone();
        let batch_no = self.batches;
        let maybe_crash = |stage: &str| CrashPoint::check(&crash, batch_no, stage);
        let tx = self.store.tx()?;
        let mut stats = Stats::default();
        let has_baseline = tx.baseline_version()?.is_some();
        let mut touched: Vec<(FactKind, String)> = Vec::new();
        let mut seen: HashSet<(FactKind, String)> = HashSet::new();
        let mut max_time = EventTime::UNKNOWN;

        for obs in batch {
            max_time = max_time.max(obs.prov.event_time);
            let (op, prov) = match resolve::resolve(&tx, obs)? {
                Resolution::Skip(r) => {
                    stats.skip(r);
                    continue;
                }
                Resolution::Apply(op, prov) => (op, prov),
            };
            let applied = match &op {
                ChangeOp::Upsert(f) => tx.upsert_fact(f, &prov)?,
                ChangeOp::Delete { kind, target } => tx.delete_fact(*kind, target, &prov)?,
                ChangeOp::Activity(a) => {
                    if apply_activity(&tx, a, &prov, &sinks, &mut stats)? {
                        stats.applied += 1;
                    } else {
                        stats.skip(SkipReason::Duplicate);
                    }
                    continue;
                }
            };
            match applied {
                FactApply::Changed { kind, key } => {
                    stats.applied += 1;
                    if seen.insert((kind, key.clone())) {
                        touched.push((kind, key));
                    }
                }
                FactApply::Unchanged => stats.unchanged += 1,
                FactApply::Stale => stats.skip(SkipReason::Stale),
                FactApply::UnknownTarget => stats.skip(SkipReason::UnknownTarget),
            }
        }
        maybe_crash("facts");

        if has_baseline {
            let span = tracing::info_span!("evaluate", facts.touched = touched.len());
            let _g = span.enter();
            for (kind, key) in &touched {
                evaluate_fact(&tx, config, *kind, key, None, &sinks, &mut stats)?;
            }
        } else {
            stats.awaiting_baseline += touched.len() as u64;
        }
        maybe_crash("findings");

        let ttl = i64::try_from(config.pipeline.pending_ttl.as_nanos()).unwrap_or(i64::MAX);
        let watermark = tx
            .meta("watermark")?
            .and_then(|w| w.parse().ok())
            .map_or(max_time, |w: i64| EventTime(w).max(max_time));
        tx.set_meta("watermark", &watermark.0.to_string())?;
        tx.expire_pending(watermark.add_nanos(-ttl))?;
        if let Some((source, cp)) = checkpoint {
            tx.set_checkpoint(source, cp, watermark)?;
        }
        maybe_crash("before_commit");
        tx.commit()?;
        maybe_crash("after_commit");
        Ok(stats)
    }
}

/// Evaluates one activity and persists its transition; false when it was already recorded.
fn apply_activity(
    tx: &Tx<'_>,
    a: &Activity,
    prov: &Provenance,
    sinks: &[String],
    stats: &mut Stats,
) -> Result<bool, StoreError> {
    let baseline_cluster = tx.baseline_value(FactKind::ClusterSettings, &a.subject)?;
    let existing = tx.finding(&activity::finding_id(a, prov))?;
    match activity::evaluate(a, prov, baseline_cluster.as_ref(), existing.as_ref()) {
        Some(t) => {
            persist(tx, &t, sinks, stats)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Evaluates drift of one fact against the baseline and persists its transition.
/// `baseline_cause` is set when a baseline change (not an observation) triggered this.
pub fn evaluate_fact(
    tx: &Tx<'_>,
    config: &Config,
    kind: FactKind,
    key: &str,
    baseline_cause: Option<(&str, EventTime)>,
    sinks: &[String],
    stats: &mut Stats,
) -> Result<(), StoreError> {
    let row = tx.fact(kind, key)?;
    let baseline = tx.baseline_value(kind, key)?;
    let existing = tx.finding(&drift::finding_id(kind, key))?;
    let observed = match &row {
        Some(r) => r
            .value
            .as_ref()
            .map_or(Observed::Deleted, Observed::Present),
        None => Observed::Unknown,
    };
    let cause = match (baseline_cause, &row) {
        (Some((by, at)), _) => Cause::Baseline { by, at },
        (None, Some(r)) => Cause::Observation(&r.prov),
        (None, None) => return Ok(()),
    };
    let input = DriftInput {
        kind,
        key,
        observed,
        baseline: baseline.as_ref(),
        existing: existing.as_ref(),
        cause,
    };
    if let Some(t) = drift::evaluate(&input, config) {
        persist(tx, &t, sinks, stats)?;
    }
    Ok(())
}

fn persist(
    tx: &Tx<'_>,
    t: &Transition,
    sinks: &[String],
    stats: &mut Stats,
) -> Result<(), StoreError> {
    tx.put_finding(&t.finding)?;
    stats.count(&t.kind);
    tracing::debug!(finding.id = %t.finding.id, transition = t.kind.as_str(), severity = t.finding.severity.as_str(), "finding transition");
    if t.kind.notifies() {
        let alert = Alert::from_transition(t);
        let payload = serde_json::to_string(&alert).unwrap_or_default();
        let at = t.finding.resolved_at.unwrap_or(t.finding.last_seen);
        for sink in sinks {
            if tx.enqueue(
                &alert.idempotency_key,
                sink,
                &alert.finding_id,
                &alert.transition,
                &alert.severity,
                &payload,
                at,
            )? {
                stats.notifications += 1;
            }
        }
    }
    Ok(())
}

/// Re-evaluates every fact and baseline entry after a baseline change, in the caller's transaction.
pub fn reevaluate_all(
    tx: &Tx<'_>,
    config: &Config,
    by: &str,
    at: EventTime,
    sinks: &[String],
) -> Result<Stats, StoreError> {
    let mut keys: Vec<(FactKind, String)> =
        tx.facts()?.into_iter().map(|f| (f.kind, f.key)).collect();
    keys.extend(tx.baseline()?.into_iter().map(|b| (b.kind, b.key)));
    keys.sort();
    keys.dedup();
    let mut stats = Stats::default();
    for (kind, key) in keys {
        evaluate_fact(tx, config, kind, &key, Some((by, at)), sinks, &mut stats)?;
    }
    Ok(stats)
}
