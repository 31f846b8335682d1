//! Activity rules: things done rather than states. They stay open until acknowledged.

use super::{id, Evidence, Finding, FindingKind, Severity, Status, Transition, TransitionKind};
use crate::domain::{Activity, ActivityKind, FactKind, Provenance};
use serde_json::{json, Value};

/// Rule id of an admin-credential listing.
pub const ADMIN_CREDENTIAL_RULE: &str = "aks.admin_credential_listed";

/// The finding id for an activity by one caller on one subject: repeats by the same caller
/// fold into one open finding; another caller gets a finding of their own. The caller is
/// keyed by object id (stable), not by UPN (renamed users, guest UPNs).
pub fn finding_id(activity: &Activity, prov: &Provenance) -> String {
    let a = &prov.actor;
    let who = a
        .object_id
        .as_deref()
        .or(a.app_id.as_deref())
        .or(a.upn.as_deref())
        .unwrap_or("unknown");
    id::stable_id(&[
        "activity",
        rule(activity.kind),
        &activity.subject,
        &who.to_ascii_lowercase(),
    ])
}

fn rule(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::AdminCredentialListed => ADMIN_CREDENTIAL_RULE,
    }
}

/// Evaluates one activity. `baseline_cluster` is the approved settings of the subject cluster.
pub fn evaluate(
    activity: &Activity,
    prov: &Provenance,
    baseline_cluster: Option<&Value>,
    existing: Option<&Finding>,
) -> Option<Transition> {
    let local_accounts_off = baseline_cluster
        .and_then(|v| v.get("disable_local_accounts"))
        .and_then(Value::as_bool)
        == Some(true);
    // With local accounts disabled the listing should be impossible; if it worked, the
    // baseline is wrong or someone turned them back on — either way, page.
    let severity = if local_accounts_off {
        Severity::Critical
    } else {
        Severity::High
    };
    let cluster = activity
        .subject
        .rsplit('/')
        .next()
        .unwrap_or(&activity.subject);
    let title = match activity.kind {
        ActivityKind::AdminCredentialListed => format!(
            "Cluster admin credential listed on {cluster}{}",
            if local_accounts_off {
                " while the baseline says local accounts are disabled"
            } else {
                ""
            }
        ),
    };
    let mut f = match existing {
        Some(e) => e.clone(),
        None => Finding {
            id: finding_id(activity, prov),
            kind: FindingKind::Activity,
            rule: rule(activity.kind).to_string(),
            severity,
            status: Status::Open,
            title: title.clone(),
            fact_kind: FactKind::ClusterSettings,
            fact_key: activity.subject.clone(),
            change: None,
            expected: baseline_cluster
                .map(|_| json!({"disable_local_accounts": local_accounts_off})),
            actual: Some(json!({"operation": prov.operation})),
            diff: Vec::new(),
            actor: prov.actor.clone(),
            correlation_id: prov.correlation_id.clone(),
            evidence: Vec::new(),
            first_seen: prov.event_time,
            last_seen: prov.event_time,
            resolved_at: None,
            resolution: None,
            occurrences: 0,
            transitions: 0,
            approved_by: None,
            trace_id: None,
            trace_span_id: None,
            revision: 0,
        },
    };
    if !f.add_evidence(Evidence::from(prov)) {
        return None;
    }
    f.occurrences += 1;
    f.last_seen = f.last_seen.max(prov.event_time);
    f.actor = prov.actor.clone();
    f.correlation_id = prov.correlation_id.clone();
    f.title = title;
    let previous = f.severity;
    f.severity = severity;
    let kind = match existing {
        None => TransitionKind::Opened,
        Some(e) if e.status != Status::Open => {
            f.status = Status::Open;
            f.resolved_at = None;
            f.resolution = None;
            TransitionKind::Reopened
        }
        Some(_) if previous != severity => TransitionKind::SeverityChanged { from: previous },
        Some(_) => TransitionKind::Updated,
    };
    if kind.notifies() {
        f.transitions += 1;
    }
    Some(Transition { kind, finding: f })
}
