//! Azure grant rules: privileged roles over a watched cluster, custom roles that reach the
//! admin credential.

use super::{describe_scope, last_segment, s, Context, FactView, Hit};
use serde_json::{json, Value};

/// Roles whose holders can list the admin credential of, or change, every cluster below.
pub const PRIVILEGED_OVER_CLUSTER: &[&str] = &[
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", // Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c", // Contributor
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", // User Access Administrator
    "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8", // AKS Cluster Admin Role
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b", // AKS RBAC Cluster Admin
    "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8", // AKS Contributor Role
];

/// The action that returns the static cluster-admin kubeconfig.
pub const ADMIN_CREDENTIAL_ACTION: &str =
    "microsoft.containerservice/managedclusters/listclusteradmincredential/action";

/// True when `scope` is the cluster itself or any scope that contains it (management groups
/// and the root contain every subscription).
pub fn at_or_above(scope: &str, cluster: &str) -> bool {
    scope == cluster
        || scope == "/"
        || scope.contains("/managementgroups/")
        || cluster
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

pub(super) fn check_assignment<V: FactView>(
    _key: &str,
    v: &Value,
    ctx: &Context<'_>,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    let role = s(v, "/role_definition_id");
    if !PRIVILEGED_OVER_CLUSTER.contains(&role) {
        return Ok(());
    }
    let scope = s(v, "/scope");
    let clusters = ctx.clusters_covered(view, scope)?;
    if clusters.is_empty() {
        return Ok(());
    }
    let principal = s(v, "/principal_id");
    let role_name = ctx.catalog.role_name(role);
    let names: Vec<&str> = clusters.iter().map(|c| last_segment(c)).collect();
    // Above the cluster, say which clusters it covers; on the cluster itself that is noise.
    let covers = if clusters.len() == 1 && clusters[0] == scope {
        String::new()
    } else {
        format!(" (covers cluster {})", names.join(", "))
    };
    out.push(Hit {
        rule: "AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER",
        title: format!(
            "{role_name} on {} for principal {principal}{covers}",
            describe_scope(scope),
        ),
        details: json!({
            "principal_id": principal,
            "role": role_name,
            "role_definition_id": role,
            "scope": scope,
            "clusters": clusters,
        }),
    });
    Ok(())
}

/// An active PIM activation: time-bound access someone turned on, reported while it lasts.
pub(super) fn check_activation(_key: &str, v: &Value, ctx: &Context<'_>, out: &mut Vec<Hit>) {
    let role = s(v, "/role_definition_id");
    let scope = s(v, "/scope");
    let principal = s(v, "/principal_id");
    let role_name = ctx.catalog.role_name(role);
    let until = match v.get("end").and_then(Value::as_str) {
        Some(end) => format!(" until {end}"),
        None => String::new(),
    };
    out.push(Hit {
        rule: "AZ-PIM-ACTIVATION",
        title: format!(
            "PIM activation of {role_name} on {} for principal {principal}{until}",
            describe_scope(scope)
        ),
        details: json!({
            "principal_id": principal,
            "role": role_name,
            "role_definition_id": role,
            "scope": scope,
            "end": v.get("end"),
            "eligibility": v.get("eligibility"),
        }),
    });
}

/// `pattern` (an Azure action with `*` wildcards, lower-case) matches `action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    crate::config::rules::glob_match(pattern, action)
}

pub(super) fn check_definition(key: &str, v: &Value, out: &mut Vec<Hit>) {
    let perms = v
        .get("permissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in &perms {
        let strs = |f: &str| -> Vec<String> {
            p.get(f)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default()
        };
        let granting: Vec<String> = strs("actions")
            .into_iter()
            .filter(|a| action_matches(a, ADMIN_CREDENTIAL_ACTION))
            .collect();
        let excluded = strs("not_actions")
            .iter()
            .any(|a| action_matches(a, ADMIN_CREDENTIAL_ACTION));
        if granting.is_empty() || excluded {
            continue;
        }
        let name = v
            .get("role_name")
            .and_then(Value::as_str)
            .unwrap_or_else(|| last_segment(key));
        out.push(Hit {
            rule: "AZ-CUSTOM-ROLE-ADMIN-CREDENTIAL",
            title: format!(
                "Custom role {name:?} can list the cluster admin credential (through {})",
                granting.join(", ")
            ),
            details: json!({
                "role_name": name,
                "actions": granting,
                "assignable_scopes": v.get("assignable_scopes"),
            }),
        });
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::domain::FactKind::*;

    #[test]
    fn privileged_role_above_cluster_table() {
        let rg = format!("{SUB}/resourcegroups/rg");
        let other_rg = format!("{SUB}/resourcegroups/rg2");
        let ns = format!("{CLUSTER}/namespaces/payments");
        let p = "11111111-0000-4000-8000-000000000001";
        for (scope, role, want) in [
            (SUB.to_string(), OWNER, true),
            (rg.clone(), CONTRIBUTOR, true),
            (
                CLUSTER.to_string(),
                "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
                true,
            ),
            (
                "/providers/microsoft.management/managementgroups/root".into(),
                OWNER,
                true,
            ),
            // near misses: a sibling resource group, a reader, a namespace below the cluster,
            // and a resource group whose name only starts like the cluster's.
            (other_rg, OWNER, false),
            (rg.clone(), READER, false),
            (ns, "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b", false),
            (format!("{SUB}/resourcegroups/r"), OWNER, false),
        ] {
            let (key, v) = assignment(&scope, p, role);
            let mem = Mem::default().with(RoleAssignment, &key, v);
            assert_eq!(
                fired(
                    &eval(&mem, RoleAssignment, &key),
                    "AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER"
                ),
                want,
                "{role} at {scope}"
            );
        }
    }

    #[test]
    fn an_observed_cluster_is_watched_without_config() {
        let other = format!(
            "{SUB}/resourcegroups/rg9/providers/microsoft.containerservice/managedclusters/edge"
        );
        let (key, v) = assignment(&format!("{SUB}/resourcegroups/rg9"), "p", OWNER);
        let mut mem = Mem::default().with(RoleAssignment, &key, v);
        assert!(!fired(
            &eval(&mem, RoleAssignment, &key),
            "AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER"
        ));
        mem.put(ClusterSettings, &other, hardened_cluster());
        assert!(fired(
            &eval(&mem, RoleAssignment, &key),
            "AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER"
        ));
    }

    #[test]
    fn custom_role_admin_credential_table() {
        let role = |actions: &[&str], not: &[&str]| json!({"role_name": "ops", "permissions": [{"actions": actions, "not_actions": not, "data_actions": [], "not_data_actions": []}], "assignable_scopes": [SUB]});
        for (v, want) in [
            (role(&[ADMIN_CREDENTIAL_ACTION], &[]), true),
            (role(&["*"], &[]), true),
            (role(&["microsoft.containerservice/*"], &[]), true),
            (role(&["microsoft.containerservice/managedclusters/*/action"], &[]), true),
            // near misses: the user credential, a wildcard with the action excluded, reads
            (role(&["microsoft.containerservice/managedclusters/listclusterusercredential/action"], &[]), false),
            (role(&["*"], &[ADMIN_CREDENTIAL_ACTION]), false),
            (role(&["*/read"], &[]), false),
        ] {
            let mut out = Vec::new();
            check_definition("/subscriptions/s/providers/microsoft.authorization/roledefinitions/x", &v, &mut out);
            assert_eq!(!out.is_empty(), want, "{v}");
        }
    }
}
