//! Severity of drift: how much access the drifted fact grants or takes away.

use super::{Catalog, DiffEntry, DriftChange, Severity};
use crate::config::roles::RoleTier;
use crate::domain::FactKind;
use serde_json::Value;

/// Cluster-setting paths whose change weakens the access model, with the weak value.
const WEAKENING: &[(&str, Value)] = &[
    ("disable_local_accounts", Value::Bool(false)),
    ("aad.managed", Value::Bool(false)),
    ("aad.enable_azure_rbac", Value::Bool(false)),
    ("enable_rbac", Value::Bool(false)),
    ("oidc_issuer_enabled", Value::Bool(false)),
    ("workload_identity_enabled", Value::Bool(false)),
];

/// Severity of a drift finding. `value` is the observed value, or the baseline one when missing.
pub fn drift_severity(
    kind: FactKind,
    change: DriftChange,
    value: &Value,
    diff: &[DiffEntry],
    catalog: &dyn Catalog,
) -> Severity {
    use DriftChange::*;
    use Severity::*;
    if value.get("platform_managed") == Some(&Value::Bool(true)) {
        return catalog.platform_managed_severity();
    }
    match kind {
        // An eligibility is standing access one activation away: the severity its role would
        // have as an assignment.
        FactKind::RoleAssignment | FactKind::RoleEligibility => {
            let role = value
                .get("role_definition_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let scope = value.get("scope").and_then(Value::as_str).unwrap_or("");
            // `/subscriptions/x` or a management group: everything below inherits it.
            let broad = scope.matches('/').count() <= 2 || scope.contains("/managementgroups/");
            match (catalog.role_tier(role), change) {
                (RoleTier::Privileged, Missing) => Medium,
                (RoleTier::Privileged, _) if broad => Critical,
                (RoleTier::Privileged, _) => High,
                (RoleTier::Sensitive, Missing) => Low,
                (RoleTier::Sensitive, _) => Medium,
                (RoleTier::Ordinary, _) => Low,
            }
        }
        // Never drift (not baselined); a value for completeness.
        FactKind::PimActivation => Low,
        FactKind::RoleDefinition => {
            let text = value.to_string();
            let grants_admin =
                text.contains("listclusteradmincredential") || text.contains("\"*\"");
            match change {
                Missing => Low,
                _ if grants_admin => High,
                _ => Medium,
            }
        }
        FactKind::ClusterSettings => match change {
            Changed if weakens(diff) => Critical,
            Changed => High,
            Unapproved | Missing => Medium,
        },
        FactKind::ManagedIdentity => match change {
            Missing => Low,
            _ => Medium,
        },
        FactKind::FederatedCredential => match change {
            Missing => Low,
            _ => High,
        },
        FactKind::ClusterRoleBinding | FactKind::RoleBinding => {
            let admin =
                value.pointer("/role_ref/name").and_then(Value::as_str) == Some("cluster-admin");
            match change {
                Missing => Low,
                _ if admin => Critical,
                _ => Medium,
            }
        }
        FactKind::ClusterRole | FactKind::Role | FactKind::ServiceAccount => match change {
            Missing => Low,
            _ => Medium,
        },
    }
}

fn weakens(diff: &[DiffEntry]) -> bool {
    diff.iter().any(|d| {
        WEAKENING
            .iter()
            .any(|(p, weak)| d.path == *p && d.actual.as_ref() == Some(weak))
            || (d.path == "aad" && d.actual == Some(Value::Null))
            || d.path == "aad.admin_group_object_ids[+]"
    })
}
