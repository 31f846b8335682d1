//! The seam every source plugs into: the [`Source`] trait and what a source task gets
//! ([`SourceContext`]: the writer handle, cancellation, its readiness), the batch a source
//! submits with its typed position and [`Reset`], and the `ingest`/`normalise` spans.
//!
//! This module sits below `sources`, `pipeline` and `daemon`: sources implement [`Source`],
//! the pipeline's writer consumes [`WriterBatch`]es, the daemon wires them together.

mod batcher;
mod health;
mod position;
mod record;
mod writer;

pub use batcher::{Batch, Batcher, Limits, Took};
pub use health::{Health, Readiness, SourceState};
pub use position::Position;
pub use record::{Decoded, Hint, SkipReason, Stats};
pub use writer::{
    channel, ingest_span, normalise_span, RelistScope, Reset, SnapshotArea, SnapshotScope,
    WriterBatch, WriterError, WriterHandle,
};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// What a source task gets from the daemon.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The writer; `submit` returns after commit.
    pub writer: WriterHandle,
    /// Fires on shutdown: stop reading, hand over what is held, return.
    pub cancel: CancellationToken,
    /// This source's readiness (and its name).
    pub readiness: Readiness,
}

/// A source the daemon runs as a task (a Kubernetes watch, the Event Hubs processor).
pub trait Source: Send {
    /// Name used for readiness, logs and checkpoints.
    fn name(&self) -> String;
    /// Runs until `ctx.cancel` fires; errors are retried inside, never returned.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()>;
}
