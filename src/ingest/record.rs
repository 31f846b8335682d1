//! What a source makes of one record ([`Decoded`]), why a record changed nothing
//! ([`SkipReason`], one list whether the source or the store decided), and what a committed
//! batch did ([`Stats`], the writer's acknowledgement).

use crate::domain::{FactKind, Observation, Provenance};
use crate::engine::TransitionKind;
use std::collections::BTreeMap;

/// Why a record changed nothing: what its source made of it, or what the store did.
/// Stable snake_case names appear in summaries and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// An Activity Log operation accessdrift does not watch (storage writes, sign-ins, health…).
    IrrelevantOperation,
    /// A record without any operation name (time-only or foreign records).
    NoOperation,
    /// A `resultType`/`status` that is not a phase (`Updated`, `0`, …).
    UnknownResult,
    /// Already applied by an earlier run (before the source checkpoint).
    BeforeCheckpoint,
    /// A Kubernetes kind accessdrift does not watch.
    IrrelevantKind,
    /// A watch BOOKMARK or ERROR event.
    WatchControl,
    /// Start or Accept of an operation, or a Success waiting for its body: joined by the
    /// other phases (possibly in a later batch or file), never applied on its own.
    Pending,
    /// The operation failed: nothing applies.
    Failed,
    /// A Success with no body and no earlier Start carrying one: only a hint.
    NoBody,
    /// The same operation was already applied (a duplicated record).
    Duplicate,
    /// Older than what the store already holds for the fact (out-of-order delivery).
    Stale,
    /// A resource-log record of another AKS category (`kube-apiserver`, `guard`, …).
    OtherLogCategory,
    /// An audit event that cannot attribute anything: a read, a failed or unfinished
    /// request, or a write of a kind accessdrift does not watch.
    AuditFiltered,
    /// An audit record of a cluster that is not in `[[clusters]]`.
    UnknownCluster,
}

impl SkipReason {
    /// Every reason, in discriminant order.
    pub const ALL: [SkipReason; 14] = [
        SkipReason::IrrelevantOperation,
        SkipReason::NoOperation,
        SkipReason::UnknownResult,
        SkipReason::BeforeCheckpoint,
        SkipReason::IrrelevantKind,
        SkipReason::WatchControl,
        SkipReason::Pending,
        SkipReason::Failed,
        SkipReason::NoBody,
        SkipReason::Duplicate,
        SkipReason::Stale,
        SkipReason::OtherLogCategory,
        SkipReason::AuditFiltered,
        SkipReason::UnknownCluster,
    ];

    /// Stable name for summaries and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::IrrelevantOperation => "irrelevant_operation",
            SkipReason::NoOperation => "no_operation",
            SkipReason::UnknownResult => "unknown_result",
            SkipReason::BeforeCheckpoint => "before_checkpoint",
            SkipReason::IrrelevantKind => "irrelevant_kind",
            SkipReason::WatchControl => "watch_control",
            SkipReason::Pending => "intermediate_phase",
            SkipReason::Failed => "failed_operation",
            SkipReason::NoBody => "no_body",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Stale => "stale",
            SkipReason::OtherLogCategory => "other_log_category",
            SkipReason::AuditFiltered => "audit_not_attributable",
            SkipReason::UnknownCluster => "unknown_cluster",
        }
    }
}

/// What a source made of one record.
// Most records are skips; a box per observation would cost more than moving the bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Something for the pipeline.
    Observation(Observation),
    /// Read, understood, and not relevant.
    Skipped(SkipReason),
    /// Not understood; the message names the field and the problem.
    Malformed(String),
}

/// Counts of what batches did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Changes that altered stored state (facts or activities).
    pub applied: u64,
    /// Changes equal to what was stored (e.g. metadata-only Kubernetes updates).
    pub unchanged: u64,
    /// Records that changed nothing, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Changed facts not evaluated because no baseline exists yet.
    pub awaiting_baseline: u64,
    /// Deletes that arrived before the write they delete, kept as tombstones.
    pub tombstoned: u64,
    /// Event times in the future beyond `max_clock_skew`, clamped to the wall clock.
    pub clamped: u64,
    /// Findings opened for the first time.
    pub opened: u64,
    /// Findings opened again.
    pub reopened: u64,
    /// Findings resolved (state returned or approved).
    pub resolved: u64,
    /// Findings whose severity changed.
    pub severity_changed: u64,
    /// Findings updated without a notification.
    pub updated: u64,
    /// Outbox rows queued.
    pub notifications: u64,
    /// Outbox rows queued, per sink (routing sends an alert to some sinks only).
    pub queued: BTreeMap<String, u64>,
    /// Facts that did not exist (or were deleted) before.
    pub added: u64,
    /// Facts whose value changed.
    pub changed: u64,
    /// Facts deleted.
    pub removed: u64,
    /// Findings that learnt who made their change after it was stored: a late Activity Log
    /// record of what a snapshot saw, or a Kubernetes audit record.
    pub attributed: u64,
    /// Kubernetes audit records stored to attribute a change.
    pub audited: u64,
    /// Changes the Activity Log reported without saying what they are (no body): the
    /// inventory reads the resource from ARM.
    pub hints: Vec<Hint>,
}

/// A resource an Activity Log record says changed, without the body that says how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Kind of the fact.
    pub kind: FactKind,
    /// The resource id to read (lower-case).
    pub resource_id: String,
    /// The record: who and when, kept on the observation the read makes.
    pub prov: Provenance,
}

impl Stats {
    /// Counts one skip.
    pub fn skip(&mut self, r: impl Into<SkipReason>) {
        *self.skipped.entry(r.into()).or_default() += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: &Stats) {
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        for (k, v) in &o.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
        self.awaiting_baseline += o.awaiting_baseline;
        self.tombstoned += o.tombstoned;
        self.clamped += o.clamped;
        self.opened += o.opened;
        self.reopened += o.reopened;
        self.resolved += o.resolved;
        self.severity_changed += o.severity_changed;
        self.updated += o.updated;
        self.notifications += o.notifications;
        for (k, v) in &o.queued {
            *self.queued.entry(k.clone()).or_default() += v;
        }
        self.added += o.added;
        self.changed += o.changed;
        self.removed += o.removed;
        self.attributed += o.attributed;
        self.audited += o.audited;
        self.hints.extend(o.hints.iter().cloned());
    }

    pub(crate) fn count(&mut self, k: &TransitionKind) {
        match k {
            TransitionKind::Opened => self.opened += 1,
            TransitionKind::Reopened => self.reopened += 1,
            TransitionKind::Resolved => self.resolved += 1,
            TransitionKind::SeverityChanged { .. } => self.severity_changed += 1,
            TransitionKind::Updated => self.updated += 1,
            TransitionKind::Attributed => self.attributed += 1,
        }
    }
}
