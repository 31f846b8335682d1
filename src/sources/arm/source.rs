//! The inventory as a daemon source: a snapshot at start (readiness waits for the first
//! complete one and names the part it is listing), then one every `snapshot_interval`, and
//! targeted reads of what the Activity Log names without a body in between.

use super::hints::{self, HintLimits};
use super::inventory::{Inventory, PartOutcome, SnapshotError, SnapshotReport};
use crate::ingest::{Hint, Source, SourceContext, SourceState};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// First wait after an incomplete snapshot; doubles up to the snapshot interval.
const RETRY_FIRST: Duration = Duration::from_secs(30);

/// The inventory source of `accessdrift run`.
pub struct ArmSource {
    inventory: Arc<Inventory>,
    interval: Duration,
    hints: Option<(mpsc::Receiver<Hint>, HintLimits)>,
}

impl ArmSource {
    /// A source snapshotting every `interval`, reading `hints` as they come.
    pub fn new(
        inventory: Inventory,
        interval: Duration,
        hints: Option<(mpsc::Receiver<Hint>, HintLimits)>,
    ) -> Self {
        ArmSource {
            inventory: Arc::new(inventory),
            interval,
            hints,
        }
    }
}

impl Source for ArmSource {
    fn name(&self) -> String {
        super::SOURCE.to_string()
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(run(*self, ctx))
    }
}

async fn run(src: ArmSource, ctx: SourceContext) {
    let hint_task = src.hints.map(|(rx, limits)| {
        tokio::spawn(hints::run(
            Arc::new(src.inventory.client().clone()),
            rx,
            ctx.writer.clone(),
            ctx.cancel.clone(),
            limits,
        ))
    });
    let mut retry = RETRY_FIRST;
    let mut synced = false;
    loop {
        ctx.readiness.set(if synced {
            SourceState::Synced
        } else {
            SourceState::Syncing
        });
        let readiness = ctx.readiness.clone();
        let result = src
            .inventory
            .snapshot(&ctx.writer, &ctx.cancel, |part| {
                readiness.set_waiting(Some(format!("listing {part}")))
            })
            .await;
        let wait = match result {
            Ok(report) if report.complete() => {
                synced = true;
                retry = RETRY_FIRST;
                ctx.readiness.set_waiting(None);
                ctx.readiness.set(SourceState::Synced);
                ctx.readiness.set_details(details(&report));
                src.interval
            }
            Ok(report) => {
                ctx.readiness.set_details(details(&report));
                let refused = report.parts.iter().find_map(|p| match &p.outcome {
                    PartOutcome::Failed {
                        error,
                        refused: true,
                        ..
                    } => Some(format!("{}: {error}", p.part)),
                    _ => None,
                });
                let failures = report.failures().join("; ");
                ctx.readiness
                    .set_waiting(Some(format!("incomplete: {failures}")));
                match refused {
                    Some(m) => ctx.readiness.set(SourceState::Unauthorized(m)),
                    None => ctx.readiness.set(SourceState::Error(failures)),
                }
                let w = retry;
                retry = (retry * 2).min(src.interval);
                w
            }
            Err(SnapshotError::Cancelled) => break,
            Err(e @ SnapshotError::Writer(_)) => {
                ctx.readiness.set(SourceState::Error(e.to_string()));
                let w = retry;
                retry = (retry * 2).min(src.interval);
                w
            }
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(t) = hint_task {
        let _ = t.await;
    }
    ctx.readiness.set(SourceState::Stopped);
}

/// `/readyz` figures of the last snapshot: when, and each part's count and outcome.
fn details(r: &SnapshotReport) -> serde_json::Value {
    let parts: Vec<serde_json::Value> = r
        .parts
        .iter()
        .map(|p| {
            serde_json::json!({
                "part": p.part.to_string(),
                "listed": p.listed,
                "completed": p.outcome == PartOutcome::Completed,
            })
        })
        .collect();
    serde_json::json!({"last_snapshot": r.at.to_string(), "complete": r.complete(), "parts": parts})
}
