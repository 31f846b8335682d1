//! One owned partition: receive events, decode their Activity Log records, and commit them
//! in batches together with the partition's checkpoint.

use super::stats::EventHubsStats;
use crate::domain::Location;
use crate::ingest::SourceContext;
use crate::ingest::{ingest_span, normalise_span, Batcher, Limits, Position, Took};
use crate::sources::frame::{Frames, Item, Shape};
use crate::sources::kube_audit::Clusters;
use crate::sources::router::RecordRouter;
use crate::sources::Decoded;
use crate::store::{EventHubsPartition, EventHubsPosition};
use azure_messaging_eventhubs::models::ReceivedEventData;
use futures::StreamExt;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The `source` label of the Event Hubs record counters: one series for the source, not
/// one per partition (partitions are labels of the lag gauges).
const METRICS_SOURCE: &str = "eventhubs";

/// Why a partition's consumption ended (the processor reopens it from the committed checkpoint).
#[derive(Debug)]
pub enum PartitionEnd {
    /// Shutdown: what was received is committed.
    Cancelled,
    /// The link or connection ended (dropped, stolen, closed): reopen later. `received` is
    /// how many events this receiver delivered before (0: it never worked).
    Disconnected {
        /// What the SDK said.
        why: String,
        /// Events received on this link.
        received: u64,
    },
    /// The writer refused a batch (rolled back): reopen from the committed checkpoint.
    WriterFailed(String),
}

/// What a partition task needs.
pub struct PartitionRun {
    /// Identity of the partition (its checkpoint name comes from it).
    pub partition: EventHubsPartition,
    /// Events per transaction.
    pub max_batch: usize,
    /// Longest an event waits for its batch.
    pub max_wait: Duration,
    /// Last committed sequence number (events at or before it are redeliveries).
    pub committed: Option<i64>,
    /// Shared figures.
    pub stats: EventHubsStats,
    /// Events received on this link so far (duplicates included).
    pub received: u64,
    /// Where audit records' resource ids point.
    pub clusters: Clusters,
}

/// The batch being gathered: the batcher, plus what the partition's figures need.
struct Batch {
    batcher: Batcher,
    /// The last event taken: its position and enqueue time.
    last: Option<(EventHubsPosition, Option<SystemTime>)>,
    events: u64,
    records: u64,
}

impl PartitionRun {
    /// Consumes `events` until it ends or `ctx.cancel` fires.
    pub async fn run<S>(mut self, ctx: &SourceContext, events: S) -> PartitionEnd
    where
        S: futures::Stream<Item = azure_messaging_eventhubs::Result<ReceivedEventData>> + Unpin,
    {
        let mut events = events;
        let router = RecordRouter::new(self.clusters.clone());
        let mut batch = Batch {
            batcher: Batcher::new(
                self.partition.source_name(),
                METRICS_SOURCE,
                Limits {
                    max_inputs: self.max_batch,
                    max_observations: usize::MAX,
                    max_wait: Some(self.max_wait),
                    // Foreign categories move the checkpoint too: a restart does not reread them.
                    commit_position_alone: true,
                },
            ),
            last: None,
            events: 0,
            records: 0,
        };
        let end = loop {
            let deadline = batch.batcher.deadline();
            let next = tokio::select! {
                _ = ctx.cancel.cancelled() => break PartitionEnd::Cancelled,
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => None,
                e = events.next() => Some(e),
            };
            match next {
                None => {
                    if let Err(e) = self.flush(ctx, &mut batch).await {
                        break e;
                    }
                }
                Some(None) => {
                    break PartitionEnd::Disconnected {
                        why: "the event stream ended".into(),
                        received: self.received,
                    }
                }
                Some(Some(Err(e))) => {
                    break PartitionEnd::Disconnected {
                        why: e.to_string(),
                        received: self.received,
                    }
                }
                Some(Some(Ok(ev))) => {
                    self.take(&router, &ev, &mut batch);
                    if batch.batcher.is_full() {
                        if let Err(e) = self.flush(ctx, &mut batch).await {
                            break e;
                        }
                    }
                }
            }
        };
        // Events received in order before the end are as good as any: commit them, unless
        // the writer itself is what failed.
        if !matches!(end, PartitionEnd::WriterFailed(_)) {
            if let Err(e) = self.flush(ctx, &mut batch).await {
                return e;
            }
        }
        end
    }

    /// The root span of one batch, with the messaging semantic-convention attributes.
    fn ingest_span(&self) -> tracing::Span {
        let span = ingest_span(&self.partition.source_name());
        let p = &self.partition;
        span.record("messaging.system", "eventhubs");
        span.record("messaging.destination.name", p.eventhub.as_str());
        span.record(
            "messaging.destination.partition.id",
            p.partition_id.as_str(),
        );
        span.record("messaging.consumer.group.name", p.consumer_group.as_str());
        span
    }

    fn id(&self) -> &str {
        &self.partition.partition_id
    }

    /// Decodes one event into the batch (or drops it as a redelivery).
    fn take(&mut self, router: &RecordRouter, ev: &ReceivedEventData, batch: &mut Batch) {
        self.received += 1;
        let Some(seq) = ev.sequence_number() else {
            self.stats.update(self.id(), |p| p.malformed += 1);
            let problem = "event without a sequence number".to_string();
            batch
                .batcher
                .push(Decoded::Malformed(problem.clone()), |_| {});
            crate::events::RecordMalformed {
                source: METRICS_SOURCE,
                input: &format!(
                    "eventhubs:{}/{} partition {} offset {:?}",
                    self.partition.namespace,
                    self.partition.eventhub,
                    self.partition.partition_id,
                    ev.offset()
                ),
                record: 0,
                line: None,
                event: None,
                problem: &problem,
            }
            .emit();
            return;
        };
        let offset = ev.offset().clone().unwrap_or_else(|| seq.to_string());
        let seen = batch
            .last
            .as_ref()
            .map(|(p, _)| p.sequence_number)
            .or(self.committed);
        if seen.is_some_and(|s| seq <= s) {
            // The service resends from an older position after a reconnect: already applied.
            self.stats.update(self.id(), |p| p.duplicates += 1);
            crate::metrics::global().record_skipped(METRICS_SOURCE, "redelivered_event", 1);
            tracing::debug!(partition = %self.id(), sequence = seq, "redelivered event dropped");
            return;
        }
        let input = format!(
            "eventhubs:{}/{} partition {} sequence {seq}",
            self.partition.namespace, self.partition.eventhub, self.partition.partition_id
        );
        let normalise = normalise_span(batch.batcher.span(|| self.ingest_span()));
        let _entered = normalise.enter(); // synchronous from here to the end: no await
        let body = ev.event_data().body().unwrap_or_default();
        let mut decoded = Vec::new();
        decode_body(router, body, &mut decoded);
        normalise.record("accessdrift.records", decoded.len());
        normalise.record(
            "accessdrift.observations",
            decoded
                .iter()
                .filter(|d| matches!(d, Decoded::Observation(_)))
                .count(),
        );
        for (index, d) in decoded.into_iter().enumerate() {
            batch.records += 1;
            let took = batch.batcher.push(d, |o| {
                o.prov.location = Location {
                    input: input.clone(),
                    index: index as u64,
                }
            });
            match took {
                Took::Observation => {}
                Took::Skipped(reason) => self.stats.update(self.id(), |p| {
                    *p.skipped.entry(reason.as_str().to_string()).or_default() += 1
                }),
                Took::Malformed(problem) => {
                    self.stats.update(self.id(), |p| p.malformed += 1);
                    crate::events::RecordMalformed {
                        source: METRICS_SOURCE,
                        input: &input,
                        record: index as u64,
                        line: None,
                        event: Some((&self.partition.partition_id, seq, &offset)),
                        problem: &problem,
                    }
                    .emit();
                }
            }
        }
        batch.events += 1;
        let position = EventHubsPosition {
            offset,
            sequence_number: seq,
        };
        batch
            .batcher
            .input_done(Some(Position::Partition(position.clone())));
        batch.last = Some((position, ev.enqueued_time()));
    }

    /// Commits the batch with the partition's checkpoint and waits for the writer.
    async fn flush(&mut self, ctx: &SourceContext, batch: &mut Batch) -> Result<(), PartitionEnd> {
        let last = batch.last.take();
        let (events, records) = (
            std::mem::take(&mut batch.events),
            std::mem::take(&mut batch.records),
        );
        let Some(work) = batch.batcher.take(Vec::new()) else {
            return Ok(());
        };
        let Some((pos, enqueued)) = last else {
            return Ok(());
        };
        match ctx.writer.submit(work).await {
            Ok(stats) => {
                self.committed = Some(pos.sequence_number);
                self.stats
                    .committed(self.id(), pos.sequence_number, enqueued);
                self.stats.update(self.id(), |p| {
                    p.events += events;
                    p.records += records;
                });
                tracing::debug!(
                    partition = %self.id(),
                    sequence = pos.sequence_number,
                    events,
                    applied = stats.applied,
                    opened = stats.opened,
                    "Event Hubs batch committed"
                );
                Ok(())
            }
            Err(e) => Err(PartitionEnd::WriterFailed(e.to_string())),
        }
    }
}
/// Cuts an event body into records: `{"records":[…]}`, one record, or an array of them, each
/// decoded by its category. Anything that is not a record is reported, never fatal.
pub fn decode_body(router: &RecordRouter, body: &[u8], out: &mut Vec<Decoded>) {
    if body.iter().all(u8::is_ascii_whitespace) {
        out.push(Decoded::Malformed("empty event body".into()));
        return;
    }
    let mut frames = Frames::new(body);
    for item in frames.by_ref() {
        match item {
            Item::Malformed(e) => out.push(Decoded::Malformed(format!(
                "event body at byte {}: {}",
                e.offset, e.problem
            ))),
            Item::Frame(f) => match f.shape {
                Shape::Record => out.push(router.decode(&body[f.start..f.end])),
                Shape::WatchEvent | Shape::KubeObject => out.push(Decoded::Malformed(
                    "a Kubernetes object, not a resource-log record".into(),
                )),
            },
        }
    }
    // A file may grow; an event body is complete, so a value left open is truncated.
    if let Some(at) = frames.incomplete_from() {
        out.push(Decoded::Malformed(format!(
            "event body ends inside the JSON value that starts at byte {at} (truncated)"
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SkipReason;

    #[test]
    fn bodies_of_every_shape_decode_and_bad_ones_are_reported() {
        let rec = |op: &str| {
            format!(
                r#"{{"time":"2024-05-01T10:00:00Z","operationName":"{op}","category":"Administrative","resultType":"Success","resourceId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/a"}}"#
            )
        };
        let signin = r#"{"time":"2024-05-01T10:00:00Z","operationName":"Sign-in activity","category":"SignInLogs"}"#;
        let p = RecordRouter::default();
        for (body, want) in [
            (
                format!(
                    r#"{{"records":[{},{signin}]}}"#,
                    rec("MICROSOFT.STORAGE/STORAGEACCOUNTS/WRITE")
                ),
                vec!["skip", "skip"],
            ),
            (rec("Microsoft.Storage/storageAccounts/write"), vec!["skip"]),
            (format!("[{signin},{signin}]"), vec!["skip", "skip"]),
            ("{\"records\":[{\"operationName\":".into(), vec!["bad"]),
            ("   ".into(), vec!["bad"]),
            ("not json".into(), vec!["bad"]),
        ] {
            let mut out = Vec::new();
            decode_body(&p, body.as_bytes(), &mut out);
            let got: Vec<&str> = out
                .iter()
                .map(|d| match d {
                    Decoded::Observation(_) => "obs",
                    Decoded::Skipped(SkipReason::IrrelevantOperation) => "skip",
                    Decoded::Skipped(_) => "skip-other",
                    Decoded::Malformed(_) => "bad",
                })
                .collect();
            assert_eq!(got, want, "{body}");
        }
    }
}
