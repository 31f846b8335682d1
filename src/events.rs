//! Instrumentation in one place: each thing worth counting is one typed event whose
//! [`emit`](RecordMalformed::emit) writes its log line (with structured fields) and moves its
//! counter, as Vector's internal events do. Call sites emit events; they never bump a counter
//! and write a log line separately, so the two cannot drift apart.
//!
//! Labels are low-cardinality (source, sink, kind, reason); fact keys, principals and secrets
//! are never fields of a counter (a log line may name an object, never a secret).

use std::time::Duration;

/// A record a source could not understand, skipped (the rest of its input goes on).
#[derive(Debug)]
pub struct RecordMalformed<'a> {
    /// Low-cardinality source label (`eventhubs`, `k8s:CLUSTER:KIND`, `replay`).
    pub source: &'a str,
    /// Where the record came from (file, partition and sequence, watch and object).
    pub input: &'a str,
    /// Record index within the input.
    pub record: u64,
    /// Line where it starts, for files.
    pub line: Option<usize>,
    /// Event Hubs partition, sequence number and offset of the event holding it.
    pub event: Option<(&'a str, i64, &'a str)>,
    /// What is wrong.
    pub problem: &'a str,
}

impl RecordMalformed<'_> {
    /// Logs the record's location and problem; the counter was moved by the batcher that
    /// decoded it (`accessdrift_source_records_malformed_total`).
    pub fn emit(self) {
        use tracing::field::display;
        // Displayed, not quoted: `partition=3 offset=1234`, as operators grep for them.
        let (partition, sequence, offset) = match self.event {
            Some((p, s, o)) => (Some(display(p)), Some(s), Some(display(o))),
            None => (None, None, None),
        };
        tracing::warn!(
            source = self.source,
            input = self.input,
            partition,
            sequence,
            offset,
            record = self.record,
            line = self.line,
            problem = self.problem,
            "skipping malformed record"
        );
    }
}

/// A batch committed by the store writer.
#[derive(Debug)]
pub struct BatchCommitted<'a> {
    /// The sending source.
    pub source: &'a str,
    /// Time to apply and commit.
    pub took: Duration,
    /// Facts and activities that changed stored state.
    pub applied: u64,
    /// Finding transitions committed.
    pub transitions: u64,
}

impl BatchCommitted<'_> {
    /// Counts the batch and its commit time.
    pub fn emit(self) {
        crate::metrics::global().batch_committed(self.source, self.took);
        tracing::debug!(
            source = self.source,
            applied = self.applied,
            transitions = self.transitions,
            took_ms = self.took.as_millis() as u64,
            "batch committed"
        );
    }
}

/// A batch rolled back (its source reads it again).
#[derive(Debug)]
pub struct BatchFailed<'a, E: std::fmt::Display> {
    /// The sending source.
    pub source: &'a str,
    /// Why.
    pub error: &'a E,
}

impl<E: std::fmt::Display> BatchFailed<'_, E> {
    /// Counts and logs the rollback.
    pub fn emit(self) {
        crate::metrics::global().batch_failed(self.source);
        tracing::error!(source = self.source, error = %self.error, "batch not committed");
    }
}

/// `n` alerts a sink accepted in one message.
#[derive(Debug)]
pub struct AlertsDelivered<'a> {
    /// `[[sinks]] name`.
    pub sink: &'a str,
    /// Alerts in the message (a digest holds several).
    pub alerts: usize,
    /// Time the sink took to accept.
    pub took: Duration,
    /// What the receiver answered.
    pub receipt: &'a str,
}

impl AlertsDelivered<'_> {
    /// Counts each alert delivered and the delivery time.
    pub fn emit(self) {
        let m = crate::metrics::global();
        for _ in 0..self.alerts {
            m.alert_delivered(self.sink, self.took);
        }
        tracing::debug!(sink = self.sink, alerts = self.alerts, receipt = %self.receipt, "delivered");
    }
}

/// A delivery attempt that failed (retried later, or dead-lettered).
#[derive(Debug)]
pub struct AlertsFailed<'a> {
    /// `[[sinks]] name`.
    pub sink: &'a str,
    /// Alerts in the message.
    pub alerts: usize,
    /// Time until the failure.
    pub took: Duration,
}

impl AlertsFailed<'_> {
    /// Counts each alert's failed attempt (the retry or dead letter logs its own line).
    pub fn emit(self) {
        let m = crate::metrics::global();
        for _ in 0..self.alerts {
            m.alert_failed(self.sink, self.took);
        }
    }
}

/// An alert moved to the dead-letter state: it will not be retried.
#[derive(Debug)]
pub struct AlertDeadLettered<'a> {
    /// `[[sinks]] name`.
    pub sink: &'a str,
    /// Its idempotency key.
    pub key: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub error: &'a str,
}

impl AlertDeadLettered<'_> {
    /// Counts and logs the dead letter.
    pub fn emit(self) {
        crate::metrics::global().alert_dead_lettered(self.sink);
        tracing::error!(
            sink = self.sink,
            key = self.key,
            attempts = self.attempts,
            error = self.error,
            "alert dead-lettered"
        );
    }
}

/// Why a Kubernetes watch restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// 410 Gone: routine (etcd compaction, a long disconnect); the watcher relists.
    Expired,
    /// The API server refused the credentials or the permission.
    Unauthorized,
    /// Any other failure, retried with backoff.
    Error,
}

impl RestartReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Expired => "expired",
            RestartReason::Unauthorized => "unauthorized",
            RestartReason::Error => "error",
        }
    }
}

/// A Kubernetes watch restarted.
#[derive(Debug)]
pub struct WatchRestarted<'a> {
    /// The watch's source name.
    pub source: &'a str,
    /// The kind watched (`RoleBinding`).
    pub kind: &'static str,
    /// Why.
    pub reason: RestartReason,
    /// What the API server or the client said.
    pub message: &'a str,
}

impl WatchRestarted<'_> {
    /// Counts the restart; an expiry is routine (info), anything else a warning.
    pub fn emit(self) {
        crate::metrics::global().watch_restarted(self.kind, self.reason.as_str());
        match self.reason {
            RestartReason::Expired => {
                tracing::info!(source = self.source, "watch expired (410 Gone): relisting")
            }
            // The source's readiness change logs the failure at warn, naming it for people.
            r => tracing::debug!(
                source = self.source,
                reason = r.as_str(),
                error = self.message,
                "watch restarted"
            ),
        }
    }
}

/// A Kubernetes watch started a relist after its first.
#[derive(Debug)]
pub struct Relisted<'a> {
    /// The watch's source name.
    pub source: &'a str,
    /// The kind watched.
    pub kind: &'static str,
}

impl Relisted<'_> {
    /// Counts the relist.
    pub fn emit(self) {
        crate::metrics::global().relisted(self.kind);
        tracing::info!(source = self.source, "relisting");
    }
}
