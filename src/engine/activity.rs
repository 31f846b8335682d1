//! Activity rules: things done rather than states. They stay open until acknowledged.

use super::{id, Evidence, Finding, FindingKind, Severity, Status, Transition, TransitionKind};
use crate::domain::{Activity, ActivityKind, FactKind, Provenance};
use serde_json::{json, Value};

/// Rule id of an admin-credential listing (catalogue id: a contract).
pub const ADMIN_CREDENTIAL_RULE: &str = "AKS-ADMIN-CREDENTIAL-USED";
/// Rule id of `az aks command invoke` (runCommand).
pub const COMMAND_INVOKE_RULE: &str = "AKS-COMMAND-INVOKE";
/// Rule id of a Kubernetes write made with a local account.
pub const LOCAL_ACCOUNT_RULE: &str = "K8S-LOCAL-ACCOUNT-USED";

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
        .or(a.username.as_deref())
        .unwrap_or("unknown");
    id::stable_id(&[
        "activity",
        rule(activity.kind),
        &activity.subject,
        &who.to_ascii_lowercase(),
    ])
}

/// The catalogue rule id of an activity kind.
pub fn rule(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::AdminCredentialListed => ADMIN_CREDENTIAL_RULE,
        ActivityKind::CommandInvoked => COMMAND_INVOKE_RULE,
        ActivityKind::LocalAccountUsed => LOCAL_ACCOUNT_RULE,
    }
}

/// Evaluates one activity. `baseline_cluster` is the approved settings of the subject cluster.
pub fn evaluate(
    activity: &Activity,
    prov: &Provenance,
    baseline_cluster: Option<&Value>,
    existing: Option<&Finding>,
) -> Option<Transition> {
    evaluate_with(activity, prov, baseline_cluster, None, None, existing)
}

/// Evaluates one activity with the observed settings of its cluster and the configured
/// severity of its rule (`[rules.ID] severity`), if any.
pub fn evaluate_with(
    activity: &Activity,
    prov: &Provenance,
    baseline_cluster: Option<&Value>,
    observed_cluster: Option<&Value>,
    configured: Option<Severity>,
    existing: Option<&Finding>,
) -> Option<Transition> {
    let off = |v: Option<&Value>| {
        v.and_then(|v| v.get("disable_local_accounts"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let (in_baseline, observed) = (off(baseline_cluster), off(observed_cluster));
    let local_accounts_off = in_baseline || observed;
    let meta = super::rules::rule(rule(activity.kind));
    let default = meta.map_or(Severity::High, |r| r.severity);
    // With local accounts disabled the listing should be impossible; if it worked, the
    // baseline is wrong or someone turned them back on — either way, page.
    let backdoor = matches!(
        activity.kind,
        ActivityKind::AdminCredentialListed | ActivityKind::LocalAccountUsed
    );
    let severity = if backdoor && local_accounts_off {
        Severity::Critical
    } else {
        configured.unwrap_or(default)
    };
    let cluster = activity
        .subject
        .rsplit('/')
        .next()
        .unwrap_or(&activity.subject);
    let title = match activity.kind {
        ActivityKind::AdminCredentialListed => format!(
            "Cluster admin credential listed on {cluster}{}",
            match (in_baseline, observed) {
                (true, _) => " while the baseline says local accounts are disabled",
                (false, true) => " while its settings say local accounts are disabled",
                _ => "",
            }
        ),
        ActivityKind::CommandInvoked => {
            format!("Command invoked in cluster {cluster} (az aks command invoke)")
        }
        ActivityKind::LocalAccountUsed => format!(
            "Local account {} wrote to cluster {cluster} ({}){}",
            prov.actor
                .impersonated
                .as_deref()
                .or(prov.actor.username.as_deref())
                .unwrap_or("?"),
            prov.operation
                .strip_prefix("k8s-audit:")
                .unwrap_or(&prov.operation)
                .replace(':', " "),
            match (in_baseline, observed) {
                (true, _) => " while the baseline says local accounts are disabled",
                (false, true) => " while its settings say local accounts are disabled",
                _ => "",
            }
        ),
    };
    let expected = match (activity.kind, meta) {
        (ActivityKind::AdminCredentialListed | ActivityKind::LocalAccountUsed, _)
            if baseline_cluster.is_some() || observed_cluster.is_some() =>
        {
            let mut e = json!({"disable_local_accounts": local_accounts_off});
            if let Some(m) = meta {
                e["remediation"] = json!(m.remediation);
            }
            Some(e)
        }
        (_, Some(m)) => Some(json!({"rule": m.title, "remediation": m.remediation})),
        _ => None,
    };
    let mut f = match existing {
        Some(e) => e.clone(),
        None => {
            let mut f = Finding::new(
                finding_id(activity, prov),
                FindingKind::Activity,
                rule(activity.kind).to_string(),
                severity,
                (FactKind::ClusterSettings, &activity.subject),
                prov.event_time,
            );
            f.title = title.clone();
            f.expected = expected;
            f.actual = Some(json!({"operation": prov.operation}));
            f.actor = prov.actor.clone();
            f.correlation_id = prov.correlation_id.clone();
            f
        }
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
