//! The live Kubernetes source: one kube-runtime watcher per watched kind (and namespace),
//! projecting each object at the edge and sending batches to the store-writer.
//!
//! Only projections leave this module: objects are dropped as soon as they are projected, so
//! memory stays at the size of the facts, never of a reflector store of API objects.

use super::client::classify;
use super::spec::{WatchSpec, WatchedKind};
use super::{decode_object, project, EventType, SOURCE};
use crate::config::KubernetesConfig;
use crate::domain::{EventTime, FactKind, Location};
use crate::events::RestartReason;
use crate::ingest::SourceContext;
use crate::ingest::SourceState;
use crate::ingest::{
    ingest_span, normalise_span, Batcher, Limits, Position, RelistScope, Reset, Took,
};
use crate::sources::Decoded;
use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;

/// State of one watch between events.
struct Watch {
    ctx: SourceContext,
    cluster: String,
    spec: WatchSpec,
    label_selector: Option<String>,
    /// The batch being gathered (its `ingest` span is opened by its first object).
    batcher: Batcher,
    /// Objects received on this watch: the index of each in evidence locations.
    received: u64,
    /// Keys seen since the last Init, while a relist is in progress.
    relist: Option<HashSet<String>>,
    synced_once: bool,
    resource_version: String,
    malformed: u64,
    /// Consecutive batches the writer refused; paces the relists that follow.
    failures: u32,
}

/// Runs one watch until cancelled. Errors are logged, reflected in readiness and retried with
/// kube-runtime's backoff; they never end the task.
pub async fn run(ctx: SourceContext, client: Client, cfg: KubernetesConfig, spec: WatchSpec) {
    let mut w = Watch {
        cluster: cfg.cluster.clone(),
        label_selector: cfg.label_selector.clone(),
        batcher: Batcher::new(
            ctx.readiness.name(),
            ctx.readiness.name(),
            Limits {
                max_inputs: cfg.batch_max_events,
                max_observations: cfg.batch_max_events,
                max_wait: Some(cfg.batch_max_wait),
                commit_position_alone: false,
            },
        ),
        received: 0,
        relist: None,
        synced_once: false,
        resource_version: String::new(),
        malformed: 0,
        failures: 0,
        ctx,
        spec,
    };
    w.ctx.readiness.set(SourceState::Connecting);
    let mut stream = w.stream(client.clone());
    loop {
        let deadline = w.batcher.deadline();
        let ok = tokio::select! {
            biased;
            _ = w.ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                w.flush(None).await
            }
            next = stream.next() => match next {
                Some(Ok(ev)) => w.handle(ev).await,
                Some(Err(e)) => {
                    w.failed(&e);
                    true
                }
                // The backoff never gives up; an ended stream is restarted all the same.
                None => false,
            },
        };
        if !ok {
            // The writer refused a batch (or the stream ended): relist, but not in a tight loop.
            w.failures += 1;
            let pause = Duration::from_secs(1 << w.failures.min(5));
            tokio::select! {
                _ = w.ctx.cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            stream = w.stream(client.clone());
        }
    }
    // Events already received are committed; a relist cut short deletes nothing.
    w.relist = None;
    w.flush(None).await;
    w.ctx.readiness.set(SourceState::Stopped);
}

impl Watch {
    fn stream(
        &mut self,
        client: Client,
    ) -> BoxStream<'static, Result<Event<DynamicObject>, watcher::Error>> {
        self.batcher.clear();
        self.relist = None;
        let ar = self.spec.kind.api_resource();
        let api: Api<DynamicObject> = match &self.spec.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &ar),
            None => Api::all_with(client, &ar),
        };
        let mut wc = watcher::Config::default();
        if let Some(sel) = &self.label_selector {
            wc = wc.labels(sel);
        }
        watcher::watcher(api, wc).default_backoff().boxed()
    }

    fn name(&self) -> &str {
        self.ctx.readiness.name()
    }

    /// Provenance input of this watch's facts; it carries the selector, which scopes relists.
    fn input(&self) -> String {
        match &self.label_selector {
            Some(sel) => format!("{}?labelSelector={sel}", self.name()),
            None => self.name().to_string(),
        }
    }

    fn failed(&mut self, e: &watcher::Error) {
        // A relist cut by an error starts over with the next Init.
        self.relist = None;
        if let watcher::Error::WatchError(s) = e {
            if s.code == 410 {
                // Routine (etcd compaction, long disconnect): the watcher relists next.
                crate::events::WatchRestarted {
                    source: self.name(),
                    kind: self.spec.kind.kind,
                    reason: RestartReason::Expired,
                    message: &s.message,
                }
                .emit();
                return;
            }
        }
        let f = classify(e, &self.spec.kind);
        crate::events::WatchRestarted {
            source: self.name(),
            kind: self.spec.kind.kind,
            reason: if f.unauthorized {
                RestartReason::Unauthorized
            } else {
                RestartReason::Error
            },
            message: &f.message,
        }
        .emit();
        self.ctx.readiness.set(if f.unauthorized {
            SourceState::Unauthorized(f.message)
        } else {
            SourceState::Error(f.message)
        });
    }

    /// Handles one watcher event; false when the stream must be rebuilt (a batch failed).
    async fn handle(&mut self, ev: Event<DynamicObject>) -> bool {
        match ev {
            Event::Init => {
                if !self.flush(None).await {
                    return false;
                }
                self.relist = Some(HashSet::new());
                if self.synced_once {
                    crate::events::Relisted {
                        source: self.name(),
                        kind: self.spec.kind.kind,
                    }
                    .emit();
                }
                self.ctx.readiness.set(if self.synced_once {
                    SourceState::Relisting
                } else {
                    SourceState::Syncing
                });
                true
            }
            Event::InitApply(obj) => self.push(obj, EventType::Added).await,
            Event::Apply(obj) => self.push(obj, EventType::Modified).await,
            Event::Delete(obj) => self.push(obj, EventType::Deleted).await,
            Event::InitDone => {
                let Some(seen) = self.relist.take() else {
                    return true;
                };
                let scope = RelistScope {
                    kind: fact_kind(&self.spec.kind),
                    key_prefix: match &self.spec.namespace {
                        Some(ns) => format!("{}/{ns}/", self.cluster),
                        None => format!("{}/", self.cluster),
                    },
                    owner_input: self.label_selector.as_ref().map(|_| self.input()),
                    input: self.input(),
                    seen,
                    at: EventTime::now(),
                };
                if !self.flush(Some(scope)).await {
                    return false;
                }
                self.failures = 0;
                self.synced_once = true;
                self.ctx.readiness.set(SourceState::Synced);
                true
            }
        }
    }

    async fn push(&mut self, obj: DynamicObject, ty: EventType) -> bool {
        // The batch's trace starts with its first object; each object is normalised in a
        // child span, entered only for this synchronous part.
        let name = self.name().to_string();
        let normalise = normalise_span(self.batcher.span(|| ingest_span(&name)));
        let before = self.batcher.len();
        normalise.in_scope(|| self.normalise(obj, ty));
        normalise.record("accessdrift.records", 1);
        normalise.record("accessdrift.observations", self.batcher.len() - before);
        drop(normalise);
        self.batcher.input_done(Some(Position::Watch {
            resource_version: self.resource_version.clone(),
        }));
        if self.batcher.is_empty() && self.relist.is_none() {
            // Nothing to commit: the trace of a skipped object ends with its normalisation.
            self.batcher.end_empty_trace();
            return true;
        }
        if self.batcher.is_full() {
            return self.flush(None).await;
        }
        true
    }

    /// Decodes one object into the buffer (or counts it as skipped or malformed).
    fn normalise(&mut self, obj: DynamicObject, ty: EventType) {
        if let Some(rv) = &obj.metadata.resource_version {
            self.resource_version.clone_from(rv);
        }
        let name = obj.metadata.name.clone().unwrap_or_default();
        self.received += 1;
        let mut v = match serde_json::to_value(&obj) {
            Ok(v) => v,
            Err(e) => {
                let took = self.batcher.push(Decoded::Malformed(e.to_string()), |_| {});
                self.malformed(&name, took);
                return;
            }
        };
        drop(obj);
        // Items inside a list carry no kind.
        v["kind"] = serde_json::Value::String(self.spec.kind.kind.to_string());
        let kind = fact_kind(&self.spec.kind);
        if let (Some(seen), Ok(key)) = (&mut self.relist, project::key(kind, &v, &self.cluster)) {
            // Seen even if its projection fails below: a bad object must not delete a fact.
            seen.insert(key);
        }
        let location = Location {
            input: self.input(),
            index: self.received,
        };
        let took = self
            .batcher
            .push(decode_object(&v, ty, &self.cluster), |o| {
                // Object timestamps are often months old: a live change happened when received.
                o.prov.event_time = EventTime::now();
                o.prov.source = SOURCE.to_string();
                o.prov.location = location;
            });
        self.malformed(&name, took);
    }

    /// Logs a malformed object (the batcher counted it); other outcomes need nothing more.
    fn malformed(&mut self, name: &str, took: Took) {
        let Took::Malformed(problem) = took else {
            return;
        };
        self.malformed += 1;
        crate::events::RecordMalformed {
            source: self.name(),
            input: &format!("{} object {name:?}", self.input()),
            record: self.received,
            line: None,
            event: None,
            problem: &problem,
        }
        .emit();
    }

    /// Commits the buffer (and the relist's deletes) and waits for the writer; false when the
    /// writer rolled it back, so the caller relists to converge.
    async fn flush(&mut self, relist: Option<RelistScope>) -> bool {
        // Objects that changed nothing end their trace here (ingest and normalise only).
        let Some(batch) = self
            .batcher
            .take(relist.map(Reset::Relist).into_iter().collect())
        else {
            return true;
        };
        let source = batch.source.clone();
        match self.ctx.writer.submit(batch).await {
            Ok(stats) => {
                tracing::debug!(source = %source, applied = stats.applied, unchanged = stats.unchanged, opened = stats.opened, resolved = stats.resolved, "batch committed");
                true
            }
            Err(e) => {
                self.relist = None;
                self.ctx
                    .readiness
                    .set(SourceState::Error(format!("{e}; relisting to converge")));
                false
            }
        }
    }
}

fn fact_kind(k: &WatchedKind) -> FactKind {
    project::fact_kind(k.kind).unwrap_or(FactKind::ServiceAccount)
}
