//! The sources' side of the store-writer: the handle a source submits batches with, the batch
//! and its typed reset, and the spans every batch is traced under. ONE thread (the pipeline's
//! writer) owns the read-write connection; a source waits for the acknowledgement, which comes
//! only after the batch, its deletes and its position are committed together.

use super::{Batch, Stats};
use crate::domain::{EventTime, FactKind};
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
        #[source]
        error: StoreError,
    },
    /// Reading the relist scope failed; nothing was written.
    #[error("reading the relist scope of {source_name}: {error}")]
    Scope {
        /// The sending source.
        source_name: String,
        /// What failed.
        #[source]
        error: StoreError,
    },
    /// The writer has stopped (shutdown, or it died): nothing more is committed.
    #[error("the store writer has stopped")]
    Stopped,
}

/// "Everything of this scope that I did not list is gone as of T": sent with the batch that
/// completes a listing, so the implied deletes commit with its last observations.
#[derive(Debug, Clone)]
pub enum Reset {
    /// A completed Kubernetes relist (Init … InitDone), or a `kind: List` replayed with
    /// `--relist`: one cluster, kind and scope.
    Relist(RelistScope),
    /// A completed inventory listing of one kind in one subscription (or above them all).
    Snapshot(SnapshotScope),
}

/// Which facts of a kind an inventory listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotArea {
    /// Facts in this subscription (keys or scopes under `/subscriptions/ID`).
    Subscription(String),
    /// Facts above every subscription (management groups, the root): listed with each
    /// subscription's inheritance, so covered only once every subscription's listing completed.
    AboveSubscriptions,
}

/// A completed inventory listing: facts of `kind` in `area` that it did not list and that
/// were last written before `at` are gone as of `at`.
#[derive(Debug, Clone)]
pub struct SnapshotScope {
    /// The kind listed.
    pub kind: FactKind,
    /// The facts it covers.
    pub area: SnapshotArea,
    /// Keys the listing returned.
    pub seen: HashSet<String>,
    /// When the listing started: the event time of the deletes it implies.
    pub at: EventTime,
    /// Provenance input of the deletes (`arm:/subscriptions/ID`).
    pub input: String,
}

impl SnapshotScope {
    /// Whether the fact `key` of this scope's kind lies in its area.
    pub fn covers(&self, key: &str) -> bool {
        // Role assignments are keyed by `scope|principal|role`; the rest by resource id.
        let scope = key.split('|').next().unwrap_or(key);
        match &self.area {
            SnapshotArea::Subscription(sub) => scope
                .strip_prefix("/subscriptions/")
                .and_then(|r| r.strip_prefix(sub.as_str()))
                .is_some_and(|r| r.is_empty() || r.starts_with('/')),
            SnapshotArea::AboveSubscriptions => !scope.starts_with("/subscriptions/"),
        }
    }
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

/// A batch on its way to the writer, with the channel its acknowledgement comes back on.
pub struct WriterBatch {
    /// The work.
    pub batch: Batch,
    /// Answered after commit (or rollback).
    pub ack: oneshot::Sender<Result<Stats, WriterError>>,
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
/// [`WriterHandle::submit`] (the [`super::Batcher`] opens and closes it).
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
    /// Batches sent and not yet committed (readiness reports it).
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Sends a batch (under its `ingest` span) and waits for its commit. Waiting is the
    /// back-pressure: a source never moves its position on before the writer has made it
    /// durable.
    pub async fn submit(&self, batch: Batch) -> Result<Stats, WriterError> {
        let (ack, done) = oneshot::channel();
        let span = batch.span.clone();
        if !batch.resets.is_empty() {
            span.record("accessdrift.relist", true);
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .tx
            .send(WriterBatch { batch, ack })
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
