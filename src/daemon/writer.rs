//! The store-writer: ONE thread owns the read-write connection and the pipeline; sources send
//! it batches over a bounded channel and wait for the acknowledgement, which comes only after
//! the batch, its deletes and its position are committed together.

use crate::config::Config;
use crate::domain::{ChangeOp, EventTime, FactKind, FactRef, Location, Observation, Provenance};
use crate::pipeline::{Pipeline, PipelineError, Stats};
use crate::store::{Checkpoint, Store, StoreError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

/// Writer failures, as seen by the source that sent the batch.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The batch was rolled back; the source keeps its position and sends it again.
    #[error("batch from {source_name} rolled back: {error}")]
    Pipeline {
        /// The sending source.
        source_name: String,
        /// What failed.
        error: PipelineError,
    },
    /// Reading the relist scope failed; nothing was written.
    #[error("reading the relist scope of {source_name}: {error}")]
    Scope {
        /// The sending source.
        source_name: String,
        /// What failed.
        error: StoreError,
    },
    /// The writer has stopped (shutdown, or it died): nothing more is committed.
    #[error("the store writer has stopped")]
    Stopped,
}

/// A completed relist (Kubernetes Init … InitDone): one cluster, kind and scope.
#[derive(Debug, Clone)]
pub struct RelistScope {
    /// The fact kind listed.
    pub kind: FactKind,
    /// Keys of the scope start with this (`cluster/`, or `cluster/namespace/`).
    pub key_prefix: String,
    /// With a label selector, only facts last written from this provenance input are in scope.
    pub owner_input: Option<String>,
    /// Provenance input of the deletes (the watch's name).
    pub input: String,
    /// Keys the relist returned.
    pub seen: HashSet<String>,
    /// When the relist completed: the event time of the deletes it implies.
    pub at: EventTime,
}

/// One unit of work for the writer.
pub struct WriterBatch {
    /// The sending source (checkpoint name).
    pub source: String,
    /// Changes, in order.
    pub observations: Vec<Observation>,
    /// The source's position after these observations, committed with them.
    pub position: Option<Checkpoint>,
    /// Set on the batch that ends a relist: missing facts of the scope are deleted in it.
    pub relist_done: Option<RelistScope>,
    /// Answered after commit (or rollback).
    pub ack: oneshot::Sender<Result<Stats, WriterError>>,
    /// The batch's root span (`ingest`): the writer's `apply` span is its child, so a batch is
    /// one trace from the source to the findings it opens.
    pub span: tracing::Span,
}

/// What sources hold to submit batches; cheap to clone.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriterBatch>,
    backlog: Arc<AtomicUsize>,
}

impl WriterError {
    /// A stable, low-cardinality name for `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            WriterError::Pipeline { .. } => "store",
            WriterError::Scope { .. } => "store_scope",
            WriterError::Stopped => "writer_stopped",
        }
    }
}

/// The root span of one source batch (`ingest`): each batch is its own trace, whatever span
/// the source task runs in. A source opens it when the batch's first input arrives, runs the
/// decoding of each input in a [`normalise_span`] child, records what it knows (Event Hubs:
/// `messaging.system` = `eventhubs`, `messaging.destination.name`,
/// `messaging.destination.partition.id`, `messaging.consumer.group.name`, and
/// `messaging.batch.message_count`: events or objects) and submits with
/// [`WriterHandle::submit`].
pub fn ingest_span(source: &str) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "ingest",
        otel.kind = "consumer",
        accessdrift.source = source,
        messaging.batch.message_count = tracing::field::Empty,
        messaging.system = tracing::field::Empty,
        messaging.destination.name = tracing::field::Empty,
        messaging.destination.partition.id = tracing::field::Empty,
        messaging.consumer.group.name = tracing::field::Empty,
        accessdrift.relist = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// The decoding of one input (a watch event, an Event Hubs event) into observations, under
/// its batch's `ingest` span. Synchronous work: enter it, never across an `.await`.
pub fn normalise_span(ingest: &tracing::Span) -> tracing::Span {
    tracing::info_span!(
        parent: ingest,
        "normalise",
        accessdrift.records = tracing::field::Empty,
        accessdrift.observations = tracing::field::Empty,
    )
}

impl WriterHandle {
    /// Sends a batch under its `ingest` span (see [`ingest_span`]) and waits for its commit.
    /// Waiting is the back-pressure: a source never moves its position on before the writer
    /// has made it durable.
    pub async fn submit(
        &self,
        span: tracing::Span,
        source: &str,
        observations: Vec<Observation>,
        position: Option<Checkpoint>,
        relist_done: Option<RelistScope>,
    ) -> Result<Stats, WriterError> {
        let (ack, done) = oneshot::channel();
        if relist_done.is_some() {
            span.record("accessdrift.relist", true);
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .tx
            .send(WriterBatch {
                source: source.to_string(),
                observations,
                position,
                relist_done,
                ack,
                span: span.clone(),
            })
            .instrument(span.clone())
            .await;
        if sent.is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return Err(WriterError::Stopped);
        }
        done.instrument(span)
            .await
            .unwrap_or(Err(WriterError::Stopped))
    }
}

/// The channel between sources and the writer.
pub fn channel(
    capacity: usize,
    backlog: Arc<AtomicUsize>,
) -> (WriterHandle, mpsc::Receiver<WriterBatch>) {
    let (tx, rx) = mpsc::channel(capacity);
    (WriterHandle { tx, backlog }, rx)
}

/// Runs the writer until every [`WriterHandle`] is dropped: what was sent before is committed.
/// `on_commit` is called after each commit that queued alerts (it wakes the notifier).
pub fn run(
    mut store: Store,
    config: &Config,
    sinks: Vec<String>,
    mut rx: mpsc::Receiver<WriterBatch>,
    backlog: &AtomicUsize,
    on_commit: impl Fn(),
) {
    let mut pipeline = Pipeline::new(&mut store, config, sinks.clone());
    let metrics = crate::metrics::global();
    while let Some(batch) = rx.blocking_recv() {
        let source = batch.source.clone();
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
        let result = apply_span.in_scope(|| {
            apply(
                &mut pipeline,
                batch.observations,
                batch.position,
                batch.relist_done,
                &source,
            )
        });
        backlog.fetch_sub(1, Ordering::Relaxed);
        match &result {
            Ok(stats) => {
                record_commit(metrics, &source, stats, started.elapsed());
                apply_span.record("accessdrift.facts.applied", stats.applied);
                apply_span.record("accessdrift.findings.transitions", transitions(stats));
                apply_span.record("accessdrift.alerts.queued", stats.notifications);
                if stats.notifications > 0 {
                    on_commit();
                }
            }
            Err(e) => {
                metrics.batch_failed(&source);
                for s in [&apply_span, &batch.span] {
                    s.record("error.type", e.kind());
                    s.record("otel.status_code", "error");
                }
                tracing::error!(source = %source, error = %e, "batch not committed")
            }
        }
        // The source may have stopped waiting (shutdown): its batch is committed regardless.
        let _ = batch.ack.send(result);
    }
    tracing::debug!("store writer stopped: every source has finished");
}

fn transitions(s: &Stats) -> u64 {
    s.opened + s.reopened + s.resolved + s.severity_changed
}

fn record_commit(m: &crate::metrics::Metrics, source: &str, s: &Stats, took: std::time::Duration) {
    m.batch_committed(source, took);
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
    relist: Option<RelistScope>,
    source: &str,
) -> Result<Stats, WriterError> {
    if let Some(scope) = relist {
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
        let operation = format!("k8s:relist-missing:{}", scope.kind.as_str());
        observations.extend(missing.into_iter().map(|key| {
            Observation::immediate(
                ChangeOp::Delete {
                    kind: scope.kind,
                    target: FactRef::Key(key),
                },
                Provenance {
                    source: crate::sources::kubernetes::SOURCE.to_string(),
                    event_time: scope.at,
                    correlation_id: None,
                    operation: operation.clone(),
                    actor: Default::default(),
                    location: Location {
                        input: scope.input.clone(),
                        index: 0,
                    },
                },
            )
        }));
    }
    pipeline
        .apply_batch(observations, position.as_ref().map(|p| (source, p)))
        .map_err(|error| WriterError::Pipeline {
            source_name: source.to_string(),
            error,
        })
}
