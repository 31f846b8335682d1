//! The store-writer's loop: ONE thread owns the read-write connection and the pipeline, takes
//! the batches sources submit through [`crate::ingest::WriterHandle`], commits each with its
//! reset and position, and only then acknowledges it.

use super::{Pipeline, Stats};
use crate::config::Config;
use crate::domain::{ChangeOp, FactRef, Location, Observation, Provenance};
use crate::ingest::{Batch, Position, RelistScope, Reset, SnapshotScope, WriterBatch, WriterError};
use crate::store::{Checkpoint, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// Commits batches: the one path from a decoded batch to the store, used by the daemon's
/// writer thread and by `replay` alike, with the same `apply` span and the same metrics.
pub struct Writer<'p, 'a> {
    pipeline: &'p mut Pipeline<'a>,
}

impl<'p, 'a> Writer<'p, 'a> {
    /// A writer over `pipeline` (the read-write connection is its alone while it lives).
    pub fn new(pipeline: &'p mut Pipeline<'a>) -> Self {
        Writer { pipeline }
    }

    /// Applies and commits one batch with its reset and position, under an `apply` span that
    /// is a child of the batch's `ingest` span. A failure rolls everything back.
    pub fn commit(&mut self, batch: Batch) -> Result<Stats, WriterError> {
        let source = batch.source;
        let apply_span = tracing::info_span!(
            parent: &batch.span,
            "apply",
            db.system.name = "sqlite",
            db.operation.name = "apply_batch",
            accessdrift.facts.applied = tracing::field::Empty,
            accessdrift.findings.transitions = tracing::field::Empty,
            accessdrift.alerts.queued = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        // Entered on this thread only (no await inside): the pipeline's spans nest under it.
        let position = batch.position.as_ref().map(Position::to_checkpoint);
        let result = apply_span.in_scope(|| {
            apply(
                self.pipeline,
                batch.observations,
                position,
                batch.resets,
                &source,
            )
        });
        match &result {
            Ok(stats) => {
                record_commit(&source, stats);
                crate::events::BatchCommitted {
                    source: &source,
                    took: started.elapsed(),
                    applied: stats.applied,
                    transitions: transitions(stats),
                }
                .emit();
                apply_span.record("accessdrift.facts.applied", stats.applied);
                apply_span.record("accessdrift.findings.transitions", transitions(stats));
                apply_span.record("accessdrift.alerts.queued", stats.notifications);
            }
            Err(e) => {
                for s in [&apply_span, &batch.span] {
                    s.record("error.type", e.kind());
                    s.record("otel.status_code", "error");
                }
                crate::events::BatchFailed {
                    source: &source,
                    error: e,
                }
                .emit();
            }
        }
        result
    }
}

/// Runs the writer until every [`crate::ingest::WriterHandle`] is dropped: what was sent
/// before is committed. `on_commit` sees each commit's counts (the daemon wakes the notifier
/// when alerts were queued and hands resources named without a body to the inventory).
pub fn run(
    mut store: Store,
    config: &Config,
    sinks: Vec<String>,
    mut rx: mpsc::Receiver<WriterBatch>,
    backlog: &AtomicUsize,
    on_commit: impl Fn(&Stats),
) {
    let mut pipeline = Pipeline::new(&mut store, config, sinks);
    let mut writer = Writer::new(&mut pipeline);
    while let Some(WriterBatch { batch, ack }) = rx.blocking_recv() {
        let result = writer.commit(batch);
        backlog.fetch_sub(1, Ordering::Relaxed);
        if let Ok(stats) = &result {
            on_commit(stats);
        }
        // The source may have stopped waiting (shutdown): its batch is committed regardless.
        let _ = ack.send(result);
    }
    tracing::debug!("store writer stopped: every source has finished");
}

fn transitions(s: &Stats) -> u64 {
    s.opened + s.reopened + s.resolved + s.severity_changed
}

/// The store's skips, transitions and queued alerts of a committed batch, as counters.
fn record_commit(source: &str, s: &Stats) {
    let m = crate::metrics::global();
    for (reason, n) in &s.skipped {
        m.record_skipped(source, reason.as_str(), *n);
    }
    m.transitions("opened", s.opened);
    m.transitions("reopened", s.reopened);
    m.transitions("resolved", s.resolved);
    m.transitions("severity_changed", s.severity_changed);
    for (sink, n) in &s.queued {
        m.alerts_queued(sink, *n);
    }
}

fn apply(
    pipeline: &mut Pipeline<'_>,
    mut observations: Vec<Observation>,
    position: Option<Checkpoint>,
    resets: Vec<Reset>,
    source: &str,
) -> Result<Stats, WriterError> {
    for reset in resets {
        match reset {
            Reset::Relist(scope) => relist_deletes(pipeline, &scope, source, &mut observations)?,
            Reset::Snapshot(scope) => {
                snapshot_deletes(pipeline, &scope, source, &mut observations)?
            }
        }
    }
    pipeline
        .apply_batch(observations, position.as_ref().map(|p| (source, p)))
        .map_err(|super::PipelineError::Store(error)| WriterError::Pipeline {
            source_name: source.to_string(),
            error,
        })
}

/// The deletes a completed relist implies: facts of its scope that it did not list.
fn relist_deletes(
    pipeline: &mut Pipeline<'_>,
    scope: &RelistScope,
    source: &str,
    observations: &mut Vec<Observation>,
) -> Result<(), WriterError> {
    // Reading the scope and applying the deletes happen in this one thread, so no other
    // write to these facts can come in between (the CLI changes the baseline, not facts).
    let stored = pipeline
        .store()
        .read()
        .and_then(|tx| {
            tx.live_keys_in_scope(scope.kind, &scope.key_prefix, scope.owner_input.as_deref())
        })
        .map_err(|error| WriterError::Scope {
            source_name: source.to_string(),
            error,
        })?;
    let missing: Vec<String> = stored
        .into_iter()
        .filter(|k| !scope.seen.contains(k))
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            source,
            kind = scope.kind.as_str(),
            deleted = missing.len(),
            "relist: deleting facts the cluster no longer has"
        );
    }
    observations.extend(implied_deletes(
        scope.kind,
        missing,
        crate::sources::kubernetes::SOURCE,
        format!("k8s:relist-missing:{}", scope.kind.as_str()),
        &scope.input,
        scope.at,
    ));
    Ok(())
}

/// The deletes a completed inventory listing implies: facts of its kind and area it did not
/// list. Each delete is at the listing's start, so a fact written after it (an Activity Log
/// event newer than the snapshot) wins over it in the store, as any later write does.
fn snapshot_deletes(
    pipeline: &mut Pipeline<'_>,
    scope: &SnapshotScope,
    source: &str,
    observations: &mut Vec<Observation>,
) -> Result<(), WriterError> {
    let prefix = match &scope.area {
        crate::ingest::SnapshotArea::Subscription(sub) => format!("/subscriptions/{sub}"),
        crate::ingest::SnapshotArea::AboveSubscriptions => String::new(),
    };
    let stored = pipeline
        .store()
        .read()
        .and_then(|tx| tx.live_keys_in_scope(scope.kind, &prefix, None))
        .map_err(|error| WriterError::Scope {
            source_name: source.to_string(),
            error,
        })?;
    let missing: Vec<String> = stored
        .into_iter()
        .filter(|k| scope.covers(k) && !scope.seen.contains(k))
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            source,
            kind = scope.kind.as_str(),
            area = ?scope.area,
            deleted = missing.len(),
            "inventory: deleting facts Azure no longer lists"
        );
    }
    observations.extend(implied_deletes(
        scope.kind,
        missing,
        crate::domain::INVENTORY_SOURCE,
        format!(
            "{}{}:missing",
            crate::domain::INVENTORY_OPERATION_PREFIX,
            scope.kind.as_str()
        ),
        &scope.input,
        scope.at,
    ));
    Ok(())
}

/// The deletes a completed listing implies for the `missing` keys, at the listing's time.
fn implied_deletes<'a>(
    kind: crate::domain::FactKind,
    missing: Vec<String>,
    source: &'a str,
    operation: String,
    input: &'a str,
    at: crate::domain::EventTime,
) -> impl Iterator<Item = Observation> + 'a {
    missing.into_iter().map(move |key| {
        Observation::immediate(
            ChangeOp::Delete {
                kind,
                target: FactRef::Key(key),
            },
            Provenance {
                source: source.to_string(),
                event_time: at,
                correlation_id: None,
                resource_version: None,
                operation: operation.clone(),
                actor: Default::default(),
                location: Location {
                    input: input.to_string(),
                    index: 0,
                },
            },
        )
    })
}
