//! The engine: pure functions from (observed, baseline, existing finding) to finding transitions.
//! No I/O here; the pipeline feeds it inside the store's transaction.

pub mod activity;
pub mod attribution;
pub mod diff;
pub mod drift;
pub mod rules;
pub mod severity;

pub use crate::domain::{id, Severity};
pub use diff::DiffEntry;

use crate::domain::RoleTier;
use crate::domain::{Actor, EventTime, FactKind, Provenance};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The three kinds of finding (docs/architecture.md, findings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Observed state differs from the baseline.
    Drift,
    /// A rule judges the state itself (the rules catalogue).
    Policy,
    /// Something was done (credential listing).
    Activity,
}

impl FindingKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Drift => "drift",
            FindingKind::Policy => "policy",
            FindingKind::Activity => "activity",
        }
    }
}

/// Which way state drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftChange {
    /// Observed, not in the baseline.
    Unapproved,
    /// In the baseline, gone.
    Missing,
    /// Both, with different values.
    Changed,
}

impl DriftChange {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftChange::Unapproved => "unapproved",
            DriftChange::Missing => "missing",
            DriftChange::Changed => "changed",
        }
    }
}

/// Lifecycle of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Needs attention.
    Open,
    /// Someone owns it; activity findings end here.
    Acknowledged,
    /// The state returned to the baseline.
    Resolved,
    /// The baseline now approves the observed state.
    Approved,
    /// A policy finding silenced by a live `[[exceptions]]` entry (an accepted risk).
    Excepted,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::Approved => "approved",
            Status::Excepted => "excepted",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Open,
            Status::Acknowledged,
            Status::Resolved,
            Status::Approved,
            Status::Excepted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Open or acknowledged: still someone's problem.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::Acknowledged)
    }
}

/// One piece of evidence: the record that caused or repeated a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it happened.
    pub time: EventTime,
    /// The operation as logged.
    pub operation: String,
    /// Azure correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// Where the raw record is.
    pub location: String,
}

impl Evidence {
    /// The same event, wherever it was read: operation, correlation id and time identify it,
    /// so a redelivery from another partition or file is recognised. The input location is
    /// deliberately not part of the identity.
    pub fn same_event(&self, other: &Evidence) -> bool {
        self.time == other.time
            && self.operation == other.operation
            && self.correlation_id == other.correlation_id
    }
}

impl From<&Provenance> for Evidence {
    fn from(p: &Provenance) -> Self {
        Evidence {
            time: p.event_time,
            operation: p.operation.clone(),
            correlation_id: p.correlation_id.clone(),
            actor: p.actor.clone(),
            location: p.location.to_string(),
        }
    }
}

/// Most recent evidence kept per finding; older entries are counted in `occurrences` only.
pub const MAX_EVIDENCE: usize = 20;

/// A finding as the engine reasons about it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (12 hex).
    pub id: String,
    /// Drift, policy or activity.
    pub kind: FindingKind,
    /// Rule id (`drift.role_assignment`, `aks.admin_credential_listed`).
    pub rule: String,
    /// Urgency.
    pub severity: Severity,
    /// Lifecycle state.
    pub status: Status,
    /// One line for people.
    pub title: String,
    /// Kind of the fact concerned.
    pub fact_kind: FactKind,
    /// Key of the fact concerned.
    pub fact_key: String,
    /// For drift: which way.
    pub change: Option<DriftChange>,
    /// Baseline value (drift) or what the rule expects.
    pub expected: Option<Value>,
    /// Observed value.
    pub actual: Option<Value>,
    /// Field-level differences (changed drift).
    pub diff: Vec<DiffEntry>,
    /// Who caused the latest transition, as known.
    pub actor: Actor,
    /// Correlation id of the latest causing record.
    pub correlation_id: Option<String>,
    /// Latest records, newest last.
    pub evidence: Vec<Evidence>,
    /// Event time first seen.
    pub first_seen: EventTime,
    /// Event time last seen.
    pub last_seen: EventTime,
    /// When it left the active states.
    pub resolved_at: Option<EventTime>,
    /// Why it left (`state_returned`, `approved by …`, `acknowledged by …`).
    pub resolution: Option<String>,
    /// How many records confirmed it.
    pub occurrences: u64,
    /// Number of notifying transitions so far; with the id it makes the idempotency key.
    pub transitions: u64,
    /// Who approved it, when a baseline change resolved it as approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Trace id (32 hex) of the batch that opened the finding, when traces are exported: the
    /// alert's `traceparent` points there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Span id (16 hex) of that batch's span: the parent in the `traceparent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_span_id: Option<String>,
    /// Bumped by the store whenever expected, actual or status change: `approve --revision` pins it.
    #[serde(default)]
    pub revision: u64,
}

impl Finding {
    /// A new open finding about one fact, first seen at `time`, with nothing observed yet:
    /// the drift, policy and activity engines fill in the rest.
    pub fn new(
        id: String,
        kind: FindingKind,
        rule: String,
        severity: Severity,
        fact: (FactKind, &str),
        time: EventTime,
    ) -> Finding {
        Finding {
            id,
            kind,
            rule,
            severity,
            status: Status::Open,
            title: String::new(),
            fact_kind: fact.0,
            fact_key: fact.1.to_string(),
            change: None,
            expected: None,
            actual: None,
            diff: Vec::new(),
            actor: Actor::default(),
            correlation_id: None,
            evidence: Vec::new(),
            first_seen: time,
            last_seen: time,
            resolved_at: None,
            resolution: None,
            occurrences: 0,
            transitions: 0,
            approved_by: None,
            revision: 0,
            trace_id: None,
            trace_span_id: None,
        }
    }

    /// `finding_id:transition_number`: what sinks use to drop duplicate deliveries.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.transitions)
    }

    /// When the inventory saw the change, if that is all that is known of it: no actor, and
    /// the latest evidence is an inventory observation (`inventory:…`).
    pub fn seen_by_inventory(&self) -> Option<EventTime> {
        if !self.actor.is_empty() {
            return None;
        }
        let e = self.evidence.last()?;
        e.operation
            .starts_with(crate::domain::INVENTORY_OPERATION_PREFIX)
            .then_some(e.time)
    }

    /// Appends evidence unless the same event is already there; returns whether it was new.
    pub fn add_evidence(&mut self, e: Evidence) -> bool {
        if self.evidence.iter().any(|x| x.same_event(&e)) {
            return false;
        }
        self.evidence.push(e);
        if self.evidence.len() > MAX_EVIDENCE {
            self.evidence.remove(0);
        }
        true
    }
}

/// What happened to a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// A new finding.
    Opened,
    /// A resolved finding came back.
    Reopened,
    /// Still open, now more or less severe.
    SeverityChanged {
        /// The severity before.
        from: Severity,
    },
    /// Left the active states.
    Resolved,
    /// Content changed, nothing to tell anyone.
    Updated,
    /// A change the inventory saw now has its author: a late audit record named who made it.
    Attributed,
}

impl TransitionKind {
    /// Stable name in the outbox and alerts.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransitionKind::Opened => "opened",
            TransitionKind::Reopened => "reopened",
            TransitionKind::SeverityChanged { .. } => "severity_changed",
            TransitionKind::Resolved => "resolved",
            TransitionKind::Updated => "updated",
            TransitionKind::Attributed => "attributed",
        }
    }

    /// Whether this transition sends a notification: opening, reopening, resolving, a severity
    /// change and an attribution do; an update does not.
    pub fn notifies(&self) -> bool {
        !matches!(self, TransitionKind::Updated)
    }
}

/// A finding after a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// The finding as it now is.
    pub finding: Finding,
}

/// What the engine needs to know about roles and policy choices.
pub trait Catalog {
    /// Display name of a role definition GUID.
    fn role_name(&self, role_guid: &str) -> String;
    /// Privilege tier of a role definition GUID.
    fn role_tier(&self, role_guid: &str) -> RoleTier;
    /// Severity for drift on platform-managed Kubernetes objects.
    fn platform_managed_severity(&self) -> Severity;
}

impl Catalog for crate::config::Config {
    fn role_name(&self, role_guid: &str) -> String {
        crate::config::Config::role_name(self, role_guid)
    }
    fn role_tier(&self, role_guid: &str) -> RoleTier {
        crate::config::roles::builtin(role_guid).map_or(RoleTier::Sensitive, |r| r.tier)
    }
    fn platform_managed_severity(&self) -> Severity {
        self.severity.platform_managed
    }
}
