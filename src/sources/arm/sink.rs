//! A part's observations on their way to the writer: chunked, each chunk one batch at the
//! snapshot's time, the last one carrying the part's reset.

use super::inventory::SnapshotError;
use super::{OPERATION_PREFIX, SOURCE};
use crate::domain::{ChangeOp, EventTime, FactKind, Location, Observation, Provenance};
use crate::ingest::{ingest_span, Batch, Position, Reset, Stats, WriterHandle};

/// Observations per writer batch: bounded memory, short transactions.
const CHUNK: usize = 5_000;

/// Observations of one part, flushed to the writer in chunks.
pub(super) struct Sink<'a> {
    pub(super) writer: &'a WriterHandle,
    pub(super) at: EventTime,
    pub(super) input: String,
    pub(super) buf: Vec<Observation>,
    pub(super) stats: Stats,
    pub(super) index: u64,
}

impl<'a> Sink<'a> {
    pub(super) fn new(writer: &'a WriterHandle, at: EventTime, input: String) -> Self {
        Sink {
            writer,
            at,
            input,
            buf: Vec::new(),
            stats: Stats::default(),
            index: 0,
        }
    }

    fn prov(&mut self, kind: FactKind) -> Provenance {
        self.index += 1;
        Provenance {
            source: SOURCE.to_string(),
            event_time: self.at,
            correlation_id: None,
            resource_version: None,
            operation: format!("{OPERATION_PREFIX}{}", kind.as_str()),
            actor: Default::default(),
            location: Location {
                input: self.input.clone(),
                index: self.index - 1,
            },
        }
    }

    pub(super) async fn push(&mut self, op: ChangeOp, kind: FactKind) -> Result<(), SnapshotError> {
        let prov = self.prov(kind);
        self.buf.push(Observation::immediate(op, prov));
        if self.buf.len() >= CHUNK {
            self.flush(Vec::new()).await?;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self, resets: Vec<Reset>) -> Result<(), SnapshotError> {
        if self.buf.is_empty() && resets.is_empty() {
            return Ok(());
        }
        let observations = std::mem::take(&mut self.buf);
        let span = ingest_span(SOURCE);
        span.record("messaging.batch.message_count", observations.len());
        let batch = Batch {
            source: SOURCE.to_string(),
            inputs: observations.len() as u64,
            observations,
            position: Some(Position::Snapshot { at: self.at }),
            resets,
            span,
        };
        let stats = self.writer.submit(batch).await?;
        self.stats.merge(&stats);
        Ok(())
    }
}
