//! The alert a sink receives: one finding transition, self-contained.

use crate::domain::{Actor, EventTime};
use crate::engine::{DiffEntry, Transition};
use serde::{Deserialize, Serialize};

/// What is sent for one notifying transition. Sinks render it; the JSON is the webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `finding_id:transition_number`; equal keys are the same alert.
    pub idempotency_key: String,
    /// `opened`, `reopened`, `severity_changed`, `resolved`.
    pub transition: String,
    /// Finding id.
    pub finding_id: String,
    /// `drift`, `policy`, `activity`.
    pub kind: String,
    /// Rule id.
    pub rule: String,
    /// Severity after the transition.
    pub severity: String,
    /// Status after the transition.
    pub status: String,
    /// One line for people.
    pub title: String,
    /// Fact kind.
    pub fact_kind: String,
    /// Fact key.
    pub fact_key: String,
    /// Drift direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
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
    /// Trace id of the batch that opened the finding (see [`Alert::traceparent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Span id of that batch's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_span_id: Option<String>,
}

impl Alert {
    /// The alert for a notifying transition.
    pub fn from_transition(t: &Transition) -> Alert {
        let f = &t.finding;
        Alert {
            idempotency_key: f.idempotency_key(),
            transition: t.kind.as_str().to_string(),
            finding_id: f.id.clone(),
            kind: f.kind.as_str().to_string(),
            rule: f.rule.clone(),
            severity: f.severity.as_str().to_string(),
            status: f.status.as_str().to_string(),
            title: f.title.clone(),
            fact_kind: f.fact_kind.as_str().to_string(),
            fact_key: f.fact_key.clone(),
            change: f.change.map(|c| c.as_str().to_string()),
            diff: f.diff.clone(),
            actor: f.actor.clone(),
            correlation_id: f.correlation_id.clone(),
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            resolution: f.resolution.clone(),
            approved_by: f.approved_by.clone(),
            trace_id: f.trace_id.clone(),
            trace_span_id: f.trace_span_id.clone(),
        }
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
            (None, true) => String::new(),
            (None, false) => format!(" — by {}", self.actor.describe()),
        };
        format!(
            "[{}] {} {}: {}{} (finding {}, key {})",
            self.severity.to_uppercase(),
            self.kind,
            self.transition,
            self.title,
            who,
            self.finding_id,
            self.idempotency_key
        )
    }
}
