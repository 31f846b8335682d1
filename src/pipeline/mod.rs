//! The pipeline: one batch of observations → one transaction of facts, findings, outbox, checkpoint.

mod audit;
mod azure;
mod crash;
mod policy;
pub mod replay;
mod resolve;
pub(crate) mod writer;

pub use crate::ingest::{SkipReason, Stats};
use crash::CrashPoint;
pub use resolve::Resolution;

use crate::config::Config;
use crate::domain::{Activity, ChangeOp, EventTime, FactKind, Observation, Provenance};
use crate::engine::drift::{self, Cause, DriftInput, Observed};
use crate::engine::{activity, Evidence, Transition, TransitionKind};

use crate::store::{Checkpoint, FactApply, FactRow, Store, StoreError, Tx};
use serde_json::Value;
use std::collections::BTreeMap;

/// Pipeline failures: only the store can fail; bad input is counted, never an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed; the batch was rolled back and will be read again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs batches against a store with a configuration.
pub struct Pipeline<'a> {
    store: &'a mut Store,
    /// The configuration, plus the names of custom roles the store has seen (from the
    /// inventory or the Activity Log), so titles name them without `[role_names]`.
    config: std::borrow::Cow<'a, Config>,
    sinks: Vec<String>,
    batches: u64,
    crash: Option<CrashPoint>,
    clock: fn() -> EventTime,
}

impl<'a> Pipeline<'a> {
    /// A pipeline that queues alerts for the named sinks.
    pub fn new(store: &'a mut Store, config: &'a Config, sinks: Vec<String>) -> Self {
        let mut config = std::borrow::Cow::Borrowed(config);
        // A store that cannot be read here fails again, with its error, on the first batch.
        if let Ok(defs) = store
            .read()
            .and_then(|tx| tx.facts_of_kind(FactKind::RoleDefinition))
        {
            for (key, value) in defs {
                learn_role_name(&mut config, &key, &value);
            }
        }
        Pipeline {
            store,
            config,
            sinks,
            batches: 0,
            crash: CrashPoint::from_env(),
            clock: EventTime::now,
        }
    }

    /// The same pipeline with another wall clock (tests of expiry and clamping).
    pub fn with_clock(mut self, clock: fn() -> EventTime) -> Self {
        self.clock = clock;
        self
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
        for obs in &batch {
            if let Some(ChangeOp::Upsert(f)) = &obs.candidate {
                if f.kind == FactKind::RoleDefinition {
                    learn_role_name(&mut self.config, &f.key, &f.value);
                }
            }
        }
        // `evaluate`: the changes applied to the state and judged (drift, rules), inside the
        // caller's transaction span (`apply` in the daemon, `replay_file` in a replay).
        let span = tracing::info_span!(
            "evaluate",
            batch.records = batch.len(),
            batch.number = self.batches
        );
        let _guard = span.enter();
        let config: &Config = &self.config;
        let sinks = self.sinks.clone();
        let crash = self.crash.clone();
        let batch_no = self.batches;
        let maybe_crash = |stage: &str| CrashPoint::check(&crash, batch_no, stage);
        let now = (self.clock)();
        let pcfg = &config.pipeline;
        let latest_allowed = now.add_nanos(nanos(pcfg.max_clock_skew));
        let tx = self.store.tx()?;
        // Expiry counts wall-clock time since ingest, never event time: a far-future record
        // cannot expire its neighbours, and a replay of old files keeps its phases. It runs
        // before the batch is read, so a phase past its TTL cannot join.
        tx.expire_pending(
            now.add_nanos(-nanos(pcfg.pending_ttl)),
            now.add_nanos(-nanos(pcfg.marker_ttl)),
        )?;
        tx.expire_tombstones(now.add_nanos(-nanos(pcfg.marker_ttl)))?;
        tx.expire_attribution(now.add_nanos(-nanos(audit::retention(config))))?;
        let mut cx = BatchCtx::new(&tx, config, &sinks, now);
        policy::sweep(&mut cx)?;
        let has_baseline = tx.baseline_version()?.is_some();
        let mut watermarks: BTreeMap<String, EventTime> = BTreeMap::new();
        for mut obs in batch {
            if obs.prov.event_time > latest_allowed {
                tracing::warn!(
                    location = %obs.prov.location,
                    event_time = %obs.prov.event_time,
                    clamped_to = %latest_allowed,
                    "event time is later than the wall clock plus max_clock_skew: clamped"
                );
                obs.prov.event_time = latest_allowed;
                cx.stats.clamped += 1;
            }
            let wm = watermarks
                .entry(obs.prov.source.clone())
                .or_insert(EventTime::UNKNOWN);
            *wm = (*wm).max(obs.prov.event_time);
            apply_observation(&mut cx, obs, has_baseline)?;
        }
        let stats = std::mem::take(&mut cx.stats);
        maybe_crash("facts");
        maybe_crash("findings");

        let mut batch_watermark = EventTime::UNKNOWN;
        for (source, t) in &watermarks {
            let key = format!("watermark:{source}");
            let stored = tx.meta(&key)?.and_then(|w| w.parse().ok()).map(EventTime);
            let wm = stored.map_or(*t, |s| s.max(*t));
            tx.set_meta(&key, &wm.0.to_string())?;
            batch_watermark = batch_watermark.max(wm);
        }
        if let Some((source, cp)) = checkpoint {
            tx.set_checkpoint(source, cp, batch_watermark)?;
        }
        maybe_crash("before_commit");
        tx.commit()?;
        maybe_crash("after_commit");
        Ok(stats)
    }
}

/// Adds the display name of a custom role definition fact (`role_name` of its value) unless
/// `[role_names]` names that GUID already: the configuration wins.
fn learn_role_name(config: &mut std::borrow::Cow<'_, Config>, key: &str, value: &Value) {
    let Some(name) = value.get("role_name").and_then(Value::as_str) else {
        return;
    };
    let guid = crate::config::roles::role_guid(key);
    if name.is_empty()
        || config
            .role_names
            .keys()
            .any(|g| g.eq_ignore_ascii_case(&guid))
    {
        return;
    }
    config.to_mut().role_names.insert(guid, name.to_string());
}

/// What every evaluation step of one transaction shares: the transaction, the configuration,
/// the sinks alerts are routed to, the batch's wall-clock time, and the counts so far.
pub struct BatchCtx<'t, 'c> {
    /// The transaction everything happens in.
    pub tx: &'t Tx<'c>,
    /// The configuration (rules, severities, routing).
    pub config: &'t Config,
    /// The sinks alerts are queued for.
    pub sinks: &'t [String],
    /// Wall-clock time of the batch (expiries, exceptions, activity windows).
    pub now: EventTime,
    /// What the transaction did so far.
    pub stats: Stats,
    /// Findings the current observation moved (the ones its audit record will name).
    touched: Vec<String>,
    /// Whether any audit record waits for its change (looked up once per batch).
    audits_waiting: Option<bool>,
}

impl<'t, 'c> BatchCtx<'t, 'c> {
    /// A context with no counts yet.
    pub fn new(tx: &'t Tx<'c>, config: &'t Config, sinks: &'t [String], now: EventTime) -> Self {
        BatchCtx {
            tx,
            config,
            sinks,
            now,
            stats: Stats::default(),
            touched: Vec::new(),
            audits_waiting: None,
        }
    }
}

/// Applies one observation and judges what it changed. Drift is evaluated after every change,
/// not once per batch on the final state: a grant revoked 40 s later in the same batch is
/// still a finding, and where the batches are cut changes nothing.
fn apply_observation(
    cx: &mut BatchCtx<'_, '_>,
    obs: Observation,
    has_baseline: bool,
) -> Result<(), StoreError> {
    let (tx, now) = (cx.tx, cx.now);
    let hint = azure::hint_of(&obs);
    let (op, mut prov) = match resolve::resolve(tx, obs, now)? {
        Resolution::Skip(r) => {
            if let (Some(h), SkipReason::Pending | SkipReason::NoBody) = (hint, r) {
                cx.stats.hints.push(h);
            }
            cx.stats.skip(r);
            return Ok(());
        }
        Resolution::Apply(op, prov) => (op, prov),
    };
    if let Some(h) = azure::pim_hint(&op, &prov) {
        cx.stats.hints.push(h);
    }
    if let ChangeOp::Audit(a) = &op {
        return audit::apply(cx, a, &prov);
    }
    // The audit record may have come first: the change then says who from the start.
    let took = audit::actor_for_change(cx, &op, &mut prov)?;
    cx.touched.clear();
    let (applied, stale_value) = match &op {
        ChangeOp::Upsert(f) => (tx.upsert_fact(f, &prov)?, Some(&f.value)),
        ChangeOp::Delete { kind, target } => (tx.delete_fact(*kind, target, &prov, now)?, None),
        ChangeOp::Audit(_) => return Ok(()),
        ChangeOp::Activity(a) => {
            if apply_activity(cx, a, &prov)? {
                cx.stats.applied += 1;
            } else {
                cx.stats.skip(SkipReason::Duplicate);
            }
            return Ok(());
        }
    };
    match applied {
        FactApply::Changed {
            kind,
            key,
            previous,
        } => {
            cx.stats.applied += 1;
            match (&op, &previous) {
                (ChangeOp::Upsert(_), None) => cx.stats.added += 1,
                (ChangeOp::Upsert(_), Some(_)) => cx.stats.changed += 1,
                _ => cx.stats.removed += 1,
            }
            policy::on_fact_changed(cx, (kind, &key, previous.as_ref()), &prov)?;
            if has_baseline {
                evaluate_fact(cx, kind, &key, None)?;
                // An activation that came after the assignment it made: judge that again.
                if kind == FactKind::PimActivation && matches!(op, ChangeOp::Upsert(_)) {
                    evaluate_fact(cx, FactKind::RoleAssignment, &key, None)?;
                }
            } else {
                cx.stats.awaiting_baseline += 1;
            }
            audit::after_change(cx, &op, &prov, took, has_baseline)?;
        }
        FactApply::Unchanged => {
            cx.stats.unchanged += 1;
            if has_baseline {
                let (kind, key) = match &op {
                    ChangeOp::Upsert(f) => (f.kind, f.key.clone()),
                    ChangeOp::Delete {
                        kind,
                        target: crate::domain::FactRef::Key(k),
                    } => (*kind, k.clone()),
                    _ => return Ok(()),
                };
                azure::attribute(cx, kind, &key, &prov)?;
            }
        }
        FactApply::Stale { kind, key } => {
            cx.stats.skip(SkipReason::Stale);
            policy::on_superseded(cx, kind, &key, stale_value, &prov)?;
            if has_baseline {
                evaluate_superseded(cx, kind, &key, stale_value, &prov)?;
            }
        }
        FactApply::Tombstoned => cx.stats.tombstoned += 1,
    }
    Ok(())
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Evaluates one activity and persists its transition; false when it was already recorded.
fn apply_activity(
    cx: &mut BatchCtx<'_, '_>,
    a: &Activity,
    prov: &Provenance,
) -> Result<bool, StoreError> {
    let (tx, config, now) = (cx.tx, cx.config, cx.now);
    let baseline_cluster = tx.baseline_value(FactKind::ClusterSettings, &a.subject)?;
    let observed_cluster = tx
        .fact(FactKind::ClusterSettings, &a.subject)?
        .and_then(|r| r.value);
    let existing = tx.finding(&activity::finding_id(a, prov))?;
    let severity = match crate::engine::rules::rule(activity::rule(a.kind)) {
        Some(rule) => match policy::gate(config, rule, &a.subject, now) {
            // Disabled or excepted: the record is applied (it is not a duplicate), no finding.
            crate::engine::rules::Gate::Disabled | crate::engine::rules::Gate::Excepted { .. } => {
                return Ok(
                    existing.is_none_or(|f| !f.evidence.iter().any(|e| e.same_event(&prov.into())))
                );
            }
            crate::engine::rules::Gate::On(s) => (s != rule.severity).then_some(s),
        },
        None => None,
    };
    match activity::evaluate_with(
        a,
        prov,
        baseline_cluster.as_ref(),
        observed_cluster.as_ref(),
        severity,
        existing.as_ref(),
    ) {
        Some(t) => {
            persist(cx, &t)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Evaluates drift of one fact against the baseline and persists its transition.
/// `baseline_cause` is set when a baseline change (not an observation) triggered this.
pub fn evaluate_fact(
    cx: &mut BatchCtx<'_, '_>,
    kind: FactKind,
    key: &str,
    baseline_cause: Option<(&str, EventTime)>,
) -> Result<(), StoreError> {
    let (tx, config) = (cx.tx, cx.config);
    if !kind.is_baselined() {
        return Ok(());
    }
    let row = tx.fact(kind, key)?;
    let cause = match (baseline_cause, &row) {
        (Some((by, at)), _) => Cause::Baseline { by, at },
        (None, Some(r)) => Cause::Observation(&r.prov),
        (None, None) => return Ok(()),
    };
    let baseline = match (&row, kind) {
        // The role assignment a PIM activation of an approved eligibility made is approved
        // while the activation lasts: time-bound access is not drift.
        (Some(r), FactKind::RoleAssignment)
            if r.value.is_some() && azure::activation_approved(tx, key, cx.now)? =>
        {
            r.value.clone()
        }
        _ => tx.baseline_value(kind, key)?,
    };
    let existing = tx.finding(&drift::finding_id(kind, key))?;
    let input = DriftInput {
        kind,
        key,
        observed: observed(row.as_ref()),
        baseline: baseline.as_ref(),
        existing: existing.as_ref(),
        cause,
        fact_prov: row.as_ref().map(|r| &r.prov),
    };
    if let Some(t) = drift::evaluate(&input, config) {
        persist(cx, &t)?;
    }
    Ok(())
}

fn observed(row: Option<&FactRow>) -> Observed<'_> {
    match row {
        Some(r) => r
            .value
            .as_ref()
            .map_or(Observed::Deleted, Observed::Present),
        None => Observed::Unknown,
    }
}

/// A write that lost to a newer one (it arrived late) still tells what the fact held between
/// the two. When that value was drift, the finding must exist as if the records had come in
/// order: opened by this write, resolved by the newer one; or, while a finding is already
/// open, this write joins its evidence. Delivery order then changes nothing.
fn evaluate_superseded(
    cx: &mut BatchCtx<'_, '_>,
    kind: FactKind,
    key: &str,
    value: Option<&Value>,
    prov: &Provenance,
) -> Result<(), StoreError> {
    let (tx, config) = (cx.tx, cx.config);
    if !kind.is_baselined() {
        return Ok(());
    }
    let baseline = tx.baseline_value(kind, key)?;
    let drifted = match (value, &baseline) {
        (Some(v), Some(b)) => v != b,
        (Some(_), None) => true,
        (None, Some(_)) => true,
        (None, None) => false,
    };
    let Some(current) = tx.fact(kind, key)? else {
        return Ok(());
    };
    if current.value.as_ref() == value {
        // The state this record made is the state stored (a snapshot saw it first).
        return azure::attribute(cx, kind, key, prov);
    }
    if !drifted || current.event_time <= prov.event_time {
        return Ok(());
    }
    let id = drift::finding_id(kind, key);
    let existing = tx.finding(&id)?;
    let evidence = Evidence::from(prov);
    if let Some(f) = &existing {
        if f.evidence.iter().any(|e| e.same_event(&evidence)) {
            return Ok(()); // this interval was reported already (a redelivery)
        }
        if f.status.is_active() {
            let mut f = f.clone();
            f.add_evidence(evidence);
            f.first_seen = f.first_seen.min(prov.event_time);
            f.occurrences += 1;
            let t = Transition {
                kind: TransitionKind::Updated,
                finding: f,
            };
            return persist(cx, &t);
        }
    }
    let past = match value {
        Some(v) => Observed::Present(v),
        None => Observed::Deleted,
    };
    let opened = drift::evaluate(
        &DriftInput {
            kind,
            key,
            observed: past,
            baseline: baseline.as_ref(),
            existing: existing.as_ref(),
            cause: Cause::Observation(prov),
            fact_prov: Some(prov),
        },
        config,
    );
    let Some(opened) = opened else {
        return Ok(());
    };
    persist(cx, &opened)?;
    let now = drift::evaluate(
        &DriftInput {
            kind,
            key,
            observed: observed(Some(&current)),
            baseline: baseline.as_ref(),
            existing: Some(&opened.finding),
            cause: Cause::Observation(&current.prov),
            fact_prov: Some(&current.prov),
        },
        config,
    );
    if let Some(t) = now {
        persist(cx, &t)?;
    }
    Ok(())
}

/// The transition with the current trace stamped on its finding, when it opens (or reopens)
/// the finding inside an exported trace; `None` to keep it as it is. Also records the
/// transition as an event on the current span (`accessdrift.*` attributes, no fact values).
fn stamp_trace(t: &Transition) -> Option<Transition> {
    let f = &t.finding;
    tracing::debug!(
        accessdrift.finding.id = %f.id,
        accessdrift.finding.kind = f.kind.as_str(),
        accessdrift.rule = %f.rule,
        accessdrift.severity = f.severity.as_str(),
        accessdrift.transition = t.kind.as_str(),
        "finding transition"
    );
    use crate::engine::TransitionKind::{Opened, Reopened};
    if !matches!(t.kind, Opened | Reopened) {
        return None;
    }
    let (trace_id, span_id) = crate::telemetry::current_trace()?;
    let mut t = t.clone();
    t.finding.trace_id = Some(trace_id);
    t.finding.trace_span_id = Some(span_id);
    Some(t)
}

/// Stores the finding and, for a notifying transition, queues one alert per sink whose
/// routing (`[[sinks]]`) takes it. Keys carry the installation id; mail threads follow the
/// alert that opened the finding's current episode.
fn persist(cx: &mut BatchCtx<'_, '_>, t: &Transition) -> Result<(), StoreError> {
    let sinks = cx.sinks;
    persist_to(cx, t, sinks)
}

/// [`persist`], queueing for `sinks` only (an `attributed` follow-up skips the sinks whose
/// held alert already got the actor).
fn persist_to(
    cx: &mut BatchCtx<'_, '_>,
    t: &Transition,
    sinks: &[String],
) -> Result<(), StoreError> {
    let traced = stamp_trace(t);
    let t = traced.as_ref().unwrap_or(t);
    cx.tx.put_finding(&t.finding)?;
    cx.touched.push(t.finding.id.clone());
    cx.stats.count(&t.kind);
    tracing::debug!(finding.id = %t.finding.id, transition = t.kind.as_str(), severity = t.finding.severity.as_str(), "finding transition");
    for sink in crate::notify::queue(cx.tx, cx.config, t, sinks)? {
        cx.stats.notifications += 1;
        *cx.stats.queued.entry(sink).or_default() += 1;
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
    let mut keys: Vec<(FactKind, String)> = tx
        .facts()?
        .into_iter()
        .filter(|f| f.kind.is_baselined())
        .map(|f| (f.kind, f.key))
        .collect();
    keys.extend(tx.baseline()?.into_iter().map(|b| (b.kind, b.key)));
    keys.sort();
    keys.dedup();
    let mut cx = BatchCtx::new(tx, config, sinks, at);
    for (kind, key) in keys {
        evaluate_fact(&mut cx, kind, &key, Some((by, at)))?;
    }
    policy::sweep(&mut cx)?;
    Ok(cx.stats)
}
