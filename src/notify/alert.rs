//! The alert a sink receives: one finding transition, self-contained.

use crate::domain::{Actor, EventTime, FactKind, Severity};
use crate::engine::{DiffEntry, DriftChange, FindingKind, Status, Transition, TransitionKind};
use serde::{Deserialize, Serialize};

/// The transition an alert announces. Serialised (snake_case) only where a sink writes its
/// payload; routing and rendering match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertTransition {
    /// The finding opened.
    Opened,
    /// The finding opened again after it had resolved.
    Reopened,
    /// The finding's severity changed while it stayed open.
    SeverityChanged,
    /// The finding resolved (state returned, approved, or acknowledged).
    Resolved,
    /// The change behind the finding, first seen by the inventory, now has its author.
    Attributed,
}

impl AlertTransition {
    /// The name in payloads (`io.accessdrift.finding.<name>`), logs and span attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertTransition::Opened => "opened",
            AlertTransition::Reopened => "reopened",
            AlertTransition::SeverityChanged => "severity_changed",
            AlertTransition::Resolved => "resolved",
            AlertTransition::Attributed => "attributed",
        }
    }

    /// The alert transition of an engine transition; `None` for one that does not notify.
    pub fn of(k: &TransitionKind) -> Option<AlertTransition> {
        match k {
            TransitionKind::Opened => Some(AlertTransition::Opened),
            TransitionKind::Reopened => Some(AlertTransition::Reopened),
            TransitionKind::SeverityChanged { .. } => Some(AlertTransition::SeverityChanged),
            TransitionKind::Resolved => Some(AlertTransition::Resolved),
            TransitionKind::Attributed => Some(AlertTransition::Attributed),
            TransitionKind::Updated => None,
        }
    }
}

impl std::fmt::Display for AlertTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is sent for one notifying transition. Sinks render it; the JSON is the webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `installation:finding_id:transition_number`; equal keys are the same alert, and keys
    /// of two databases never collide (the installation id is random per database).
    pub idempotency_key: String,
    /// Key of the `opened`/`reopened` alert this one follows up (mail threading); on an
    /// opening alert, its own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// `[[clusters]]` names the alert concerns (routing, subject lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// `opened`, `reopened`, `severity_changed`, `resolved`.
    pub transition: AlertTransition,
    /// Finding id.
    pub finding_id: String,
    /// `drift`, `policy`, `activity`.
    pub kind: FindingKind,
    /// Rule id.
    pub rule: String,
    /// Severity after the transition.
    pub severity: Severity,
    /// Status after the transition.
    pub status: Status,
    /// One line for people.
    pub title: String,
    /// Fact kind.
    pub fact_kind: FactKind,
    /// Fact key.
    pub fact_key: String,
    /// Drift direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<DriftChange>,
    /// Field differences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<DiffEntry>,
    /// Who did it, as known.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// Correlation id of the causing record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// First seen.
    pub first_seen: EventTime,
    /// Last seen.
    pub last_seen: EventTime,
    /// Why it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Who approved it, on a resolved-as-approved alert (then `actor` is who made the change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When the inventory saw the change, while no audit record has said who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_by_inventory: Option<EventTime>,
    /// Trace id of the batch that opened the finding (see [`Alert::traceparent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Span id of that batch's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_span_id: Option<String>,
}

impl Alert {
    /// The alert for a notifying transition; `None` for one that does not notify.
    pub fn from_transition(t: &Transition) -> Option<Alert> {
        let f = &t.finding;
        Some(Alert {
            idempotency_key: f.idempotency_key(),
            thread: None,
            clusters: Vec::new(),
            transition: AlertTransition::of(&t.kind)?,
            finding_id: f.id.clone(),
            kind: f.kind,
            rule: f.rule.clone(),
            severity: f.severity,
            status: f.status,
            title: f.title.clone(),
            fact_kind: f.fact_kind,
            fact_key: f.fact_key.clone(),
            change: f.change,
            diff: f.diff.clone(),
            actor: f.actor.clone(),
            correlation_id: f.correlation_id.clone(),
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            resolution: f.resolution.clone(),
            approved_by: f.approved_by.clone(),
            seen_by_inventory: f.seen_by_inventory(),
            trace_id: f.trace_id.clone(),
            trace_span_id: f.trace_span_id.clone(),
        })
    }

    /// The W3C `traceparent` header for this alert (webhooks send it), linking the alert to
    /// the trace of the batch that opened its finding; `None` when traces were not exported.
    pub fn traceparent(&self) -> Option<String> {
        crate::telemetry::traceparent(self.trace_id.as_deref()?, self.trace_span_id.as_deref()?)
    }

    /// One line for a log or a terminal.
    pub fn one_line(&self) -> String {
        let who = match (&self.approved_by, self.actor.is_empty()) {
            (Some(by), _) => format!(" — approved by {by}"),
            (None, true) => match self.seen_by_inventory {
                Some(t) => format!(" (seen by inventory, {t})"),
                None => String::new(),
            },
            (None, false) => format!(" — by {}", self.actor.describe()),
        };
        format!(
            "[{}] {} {}: {}{} (finding {}, key {})",
            self.severity.as_str().to_uppercase(),
            self.kind.as_str(),
            self.transition,
            self.title,
            who,
            self.finding_id,
            self.local_key()
        )
    }

    /// The key without its installation prefix (`finding:n`): within one database that is
    /// unique already, and it keeps terminal output the same across rebuilt databases.
    pub fn local_key(&self) -> &str {
        match self.idempotency_key.split_once(':') {
            Some((_, rest)) if rest.contains(':') => rest,
            _ => &self.idempotency_key,
        }
    }
}

impl Alert {
    /// The synthetic alert of `notify --test`: plainly marked, with a unique key so receivers
    /// that drop duplicates still show it.
    pub fn test(sink: &str) -> Alert {
        let now = crate::domain::EventTime::now();
        Alert {
            idempotency_key: format!("test:{sink}:{}", now.0),
            thread: None,
            clusters: Vec::new(),
            transition: AlertTransition::Opened,
            finding_id: "test".to_string(),
            kind: FindingKind::Activity,
            rule: "accessdrift.test".to_string(),
            severity: Severity::Info,
            status: Status::Open,
            title: format!("Test alert from accessdrift to sink {sink} (no action needed)"),
            fact_kind: FactKind::ClusterSettings,
            fact_key: "test".to_string(),
            change: None,
            diff: Vec::new(),
            actor: Actor::default(),
            correlation_id: None,
            first_seen: now,
            last_seen: now,
            resolution: None,
            approved_by: None,
            seen_by_inventory: None,
            trace_id: None,
            trace_span_id: None,
        }
    }

    /// The cluster names for subject lines: `prod`, `prod, dev`, or the fact key's tail.
    pub fn where_(&self) -> String {
        if self.clusters.is_empty() {
            String::new()
        } else {
            self.clusters.join(", ")
        }
    }
}
