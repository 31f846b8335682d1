//! Drift: compare one fact's observed value with its baseline and move its finding along.

use super::severity::drift_severity;
use super::{
    diff, id, Catalog, DriftChange, Evidence, Finding, FindingKind, Status, Transition,
    TransitionKind,
};
use crate::domain::{EventTime, FactKind, Provenance};

use serde_json::Value;

/// What the store knows of a fact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed<'a> {
    /// Present with this value.
    Present(&'a Value),
    /// Seen deleted.
    Deleted,
    /// Never observed: absence is not known, so a baseline entry is not "missing".
    Unknown,
}

/// Why the engine is looking at this fact now.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause<'a> {
    /// A record changed the observed state.
    Observation(&'a Provenance),
    /// The baseline changed (capture, approve, import) by this person at this time.
    Baseline {
        /// Who changed the baseline.
        by: &'a str,
        /// When (wall clock).
        at: EventTime,
    },
}

/// Everything the drift decision needs about one fact.
#[derive(Debug, Clone)]
pub struct DriftInput<'a> {
    /// Fact kind.
    pub kind: FactKind,
    /// Fact key.
    pub key: &'a str,
    /// Observed state.
    pub observed: Observed<'a>,
    /// Approved value, if any.
    pub baseline: Option<&'a Value>,
    /// The finding for this fact, if one was ever opened.
    pub existing: Option<&'a Finding>,
    /// What triggered the evaluation.
    pub cause: Cause<'a>,
    /// Provenance of the stored fact (the change that produced the observed value): a
    /// finding opened by a baseline change names the person who made the change.
    pub fact_prov: Option<&'a Provenance>,
}

/// The id of the drift finding of a fact.
pub fn finding_id(kind: FactKind, key: &str) -> String {
    id::stable_id(&["drift", kind.as_str(), key])
}

/// Rule id of drift on a fact kind.
pub fn rule_id(kind: FactKind) -> String {
    format!("drift.{}", kind.as_str())
}

/// Decides the transition, if any, for one fact.
pub fn evaluate(input: &DriftInput<'_>, catalog: &dyn Catalog) -> Option<Transition> {
    let observed = match input.observed {
        Observed::Present(v) => Some(v),
        _ => None,
    };
    let change = match (input.observed, input.baseline) {
        (Observed::Present(_), None) => Some(DriftChange::Unapproved),
        (Observed::Deleted, Some(_)) => Some(DriftChange::Missing),
        (Observed::Present(o), Some(b)) if o != b => Some(DriftChange::Changed),
        _ => None,
    };
    let time = match &input.cause {
        Cause::Observation(p) => p.event_time,
        Cause::Baseline { at, .. } => *at,
    };
    // Who made the observed state what it is: the record at hand, or, when a baseline change
    // re-judges a stored fact, the record that produced that fact.
    let origin = match &input.cause {
        Cause::Observation(p) => Some(*p),
        Cause::Baseline { .. } => input.fact_prov,
    };
    let Some(change) = change else {
        let f = input.existing.filter(|f| f.status.is_active())?;
        let mut f = f.clone();
        f.resolved_at = Some(time);
        f.transitions += 1;
        match &input.cause {
            Cause::Baseline { by, .. } => {
                f.status = Status::Approved;
                f.resolution = Some(format!("approved by {by}"));
                f.approved_by = Some((*by).to_string());
            }
            Cause::Observation(p) => {
                f.status = Status::Resolved;
                f.resolution = Some("state returned to the baseline".into());
                f.actor = p.actor.clone();
                f.correlation_id = p.correlation_id.clone();
                f.add_evidence(Evidence::from(*p));
            }
        }
        return Some(Transition {
            kind: TransitionKind::Resolved,
            finding: f,
        });
    };

    let diff = match (input.baseline, observed) {
        (Some(b), Some(o)) => diff::diff(b, o),
        _ => Vec::new(),
    };
    let subject_value = observed.or(input.baseline).unwrap_or(&Value::Null);
    let severity = drift_severity(input.kind, change, subject_value, &diff, catalog);
    let title = title(input.kind, input.key, change, subject_value, &diff, catalog);

    let mut f = match input.existing {
        Some(e) => e.clone(),
        None => Finding::new(
            finding_id(input.kind, input.key),
            FindingKind::Drift,
            rule_id(input.kind),
            severity,
            (input.kind, input.key),
            time,
        ),
    };
    let before = f.clone();
    f.change = Some(change);
    f.expected = input.baseline.cloned();
    f.actual = observed.cloned();
    f.diff = diff;
    f.title = title;
    let previous_severity = f.severity;
    f.severity = severity;
    if let Cause::Observation(p) = &input.cause {
        f.last_seen = f.last_seen.max(time);
        f.occurrences += 1;
        f.add_evidence(Evidence::from(*p));
    }
    if let Some(p) = origin {
        f.actor = p.actor.clone();
        f.correlation_id = p.correlation_id.clone();
        if matches!(input.cause, Cause::Baseline { .. }) && f.evidence.is_empty() {
            f.add_evidence(Evidence::from(p));
        }
    }
    f.approved_by = None;
    let kind = match input.existing {
        None => TransitionKind::Opened,
        Some(e) if !e.status.is_active() => {
            f.status = Status::Open;
            f.resolved_at = None;
            f.resolution = None;
            TransitionKind::Reopened
        }
        Some(_) if previous_severity != severity => TransitionKind::SeverityChanged {
            from: previous_severity,
        },
        Some(_) => {
            let same = before.change == f.change
                && before.expected == f.expected
                && before.actual == f.actual
                && before.title == f.title;
            if same {
                return None;
            }
            TransitionKind::Updated
        }
    };
    if kind.notifies() {
        f.transitions += 1;
    }
    Some(Transition { kind, finding: f })
}

fn short(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

fn title(
    kind: FactKind,
    key: &str,
    change: DriftChange,
    v: &Value,
    diff: &[super::DiffEntry],
    catalog: &dyn Catalog,
) -> String {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let what = match kind {
        FactKind::RoleAssignment => format!(
            "role assignment {} for principal {} at {}",
            catalog.role_name(&s("/role_definition_id")),
            s("/principal_id"),
            s("/scope")
        ),
        FactKind::RoleEligibility => format!(
            "PIM eligibility {} for principal {} at {} ({})",
            catalog.role_name(&s("/role_definition_id")),
            s("/principal_id"),
            s("/scope"),
            match v.get("end").and_then(Value::as_str) {
                Some(end) => format!("until {end}"),
                None => "permanent".to_string(),
            }
        ),
        FactKind::PimActivation => format!(
            "PIM activation of {} for principal {} at {}",
            catalog.role_name(&s("/role_definition_id")),
            s("/principal_id"),
            s("/scope")
        ),
        FactKind::RoleDefinition => format!(
            "custom role {:?}",
            v.get("role_name")
                .and_then(Value::as_str)
                .unwrap_or(short(key))
        ),
        FactKind::ClusterSettings => format!("AKS access settings of {}", short(key)),
        FactKind::ManagedIdentity => format!("managed identity {}", short(key)),
        FactKind::FederatedCredential => format!(
            "federated credential {} (subject {})",
            short(key),
            s("/subject")
        ),
        FactKind::ClusterRoleBinding | FactKind::RoleBinding => {
            format!(
                "{} {key} → {} {}",
                kind_label(kind),
                s("/role_ref/kind"),
                s("/role_ref/name")
            )
        }
        _ => format!("{} {key}", kind_label(kind)),
    };
    let lead = match change {
        DriftChange::Unapproved => "Unapproved",
        DriftChange::Missing => "Missing approved",
        DriftChange::Changed => "Changed",
    };
    let mut t = format!("{lead} {what}");
    if change == DriftChange::Changed && !diff.is_empty() {
        let parts: Vec<String> = diff.iter().take(3).map(ToString::to_string).collect();
        t.push_str(&format!(": {}", parts.join("; ")));
        if diff.len() > 3 {
            t.push_str(&format!(" (+{} more)", diff.len() - 3));
        }
    }
    t
}

fn kind_label(kind: FactKind) -> &'static str {
    match kind {
        FactKind::ClusterRoleBinding => "ClusterRoleBinding",
        FactKind::RoleBinding => "RoleBinding",
        FactKind::ClusterRole => "ClusterRole",
        FactKind::Role => "Role",
        FactKind::ServiceAccount => "ServiceAccount",
        _ => "fact",
    }
}
