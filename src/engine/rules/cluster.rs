//! Cluster-settings rules: the AKS access settings of one cluster, judged on their own.

use super::{last_segment, Hit};
use serde_json::{json, Value};

fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

/// Checks one `cluster_settings` fact.
pub(super) fn check(key: &str, v: &Value, out: &mut Vec<Hit>) {
    let cluster = last_segment(key);
    let aad = v.get("aad").filter(|a| a.is_object());
    let mut hit = |rule: &'static str, title: String, details: Value| {
        out.push(Hit {
            rule,
            title,
            details,
        })
    };
    if flag(v, "/disable_local_accounts") != Some(true) {
        hit(
            "AKS-LOCAL-ACCOUNTS",
            format!("Local accounts are enabled on cluster {cluster}"),
            json!({"cluster": key, "disable_local_accounts": false}),
        );
    }
    let managed = aad.and_then(|a| a.get("managed")).and_then(Value::as_bool) == Some(true);
    if !managed {
        hit(
            "AKS-ENTRA-UNMANAGED",
            format!("Cluster {cluster} has no managed Entra ID integration"),
            json!({"cluster": key, "aad": aad.cloned()}),
        );
    }
    let azure_rbac = aad
        .and_then(|a| a.get("enable_azure_rbac"))
        .and_then(Value::as_bool)
        == Some(true);
    if !azure_rbac {
        hit(
            "AKS-AZURE-RBAC-OFF",
            format!("Azure RBAC for Kubernetes is off on cluster {cluster}"),
            json!({"cluster": key, "enable_azure_rbac": false}),
        );
    }
    // Only meaningful with Entra integration: without it AKS-ENTRA-UNMANAGED says more.
    if managed {
        let groups = aad
            .and_then(|a| a.get("admin_group_object_ids"))
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        if !groups {
            hit(
                "AKS-NO-ADMIN-GROUPS",
                format!("Cluster {cluster} has no Entra admin group"),
                json!({"cluster": key, "admin_group_object_ids": []}),
            );
        }
    }
    if let Some(sp) = v
        .get("service_principal_client_id")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && *c != "msi")
    {
        hit(
            "AKS-SERVICE-PRINCIPAL",
            format!(
                "Cluster {cluster} authenticates with service principal {sp} (a secret to rotate)"
            ),
            json!({"cluster": key, "service_principal_client_id": sp}),
        );
    }
    let oidc = flag(v, "/oidc_issuer_enabled") == Some(true);
    let wi = flag(v, "/workload_identity_enabled") == Some(true);
    if !oidc || !wi {
        let what = match (oidc, wi) {
            (false, false) => "OIDC issuer and workload identity are",
            (false, true) => "OIDC issuer is",
            _ => "Workload identity is",
        };
        hit(
            "AKS-WORKLOAD-IDENTITY-OFF",
            format!("{what} off on cluster {cluster}"),
            json!({"cluster": key, "oidc_issuer_enabled": oidc, "workload_identity_enabled": wi}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{fired, hardened_cluster};
    use super::*;

    fn rules_of(v: &Value) -> Vec<&'static str> {
        let mut out = Vec::new();
        check("/subscriptions/s/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks", v, &mut out);
        out.into_iter().map(|h| h.rule).collect()
    }

    /// (rule, a change that makes it fire, a near miss that must not fire).
    #[test]
    fn cluster_settings_table() {
        type Edit = fn(&mut Value);
        let table: &[(&str, Edit, Edit)] = &[
            (
                "AKS-LOCAL-ACCOUNTS",
                |v| v["disable_local_accounts"] = json!(false),
                |v| v["enable_rbac"] = json!(true),
            ),
            (
                "AKS-ENTRA-UNMANAGED",
                |v| v["aad"] = Value::Null,
                |v| v["aad"]["tenant_id"] = json!("other-tenant"),
            ),
            (
                "AKS-AZURE-RBAC-OFF",
                |v| v["aad"]["enable_azure_rbac"] = json!(false),
                |v| v["enable_rbac"] = json!(true),
            ),
            (
                "AKS-NO-ADMIN-GROUPS",
                |v| v["aad"]["admin_group_object_ids"] = json!([]),
                // Without Entra integration the missing groups are AKS-ENTRA-UNMANAGED's.
                |v| v["aad"] = Value::Null,
            ),
            (
                "AKS-SERVICE-PRINCIPAL",
                |v| {
                    v["service_principal_client_id"] = json!("5c0f3a9e-0000-4000-8000-000000000001")
                },
                |v| v["service_principal_client_id"] = json!("msi"),
            ),
            (
                "AKS-WORKLOAD-IDENTITY-OFF",
                |v| v["workload_identity_enabled"] = json!(false),
                |v| v["oidc_issuer_enabled"] = json!(true),
            ),
        ];
        assert!(
            rules_of(&hardened_cluster()).is_empty(),
            "hardened cluster fires nothing"
        );
        for (rule, fire, miss) in table {
            let mut v = hardened_cluster();
            fire(&mut v);
            assert!(fired(&rules_of(&v), rule), "{rule} should fire on {v}");
            let mut v = hardened_cluster();
            miss(&mut v);
            assert!(!fired(&rules_of(&v), rule), "{rule} must not fire on {v}");
        }
    }
}
