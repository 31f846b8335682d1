//! Canonical projections of Kubernetes RBAC objects: only what grants or maps access.

use crate::domain::{EventTime, FactKind};
use crate::sources::activity_log::fields::looks_like_guid;
use serde_json::{json, Value};

/// Labels that mark objects the platform (Kubernetes or AKS) manages.
const PLATFORM_LABELS: [(&str, Option<&str>); 2] = [
    ("kubernetes.io/bootstrapping", Some("rbac-defaults")),
    ("addonmanager.kubernetes.io/mode", None),
];

const WI_CLIENT_ID: &str = "azure.workload.identity/client-id";
const WI_TENANT_ID: &str = "azure.workload.identity/tenant-id";

/// The fact kind of a Kubernetes kind name, if watched.
pub fn fact_kind(kind: &str) -> Option<FactKind> {
    Some(match kind {
        "ClusterRoleBinding" => FactKind::ClusterRoleBinding,
        "RoleBinding" => FactKind::RoleBinding,
        "ClusterRole" => FactKind::ClusterRole,
        "Role" => FactKind::Role,
        "ServiceAccount" => FactKind::ServiceAccount,
        _ => return None,
    })
}

/// `cluster/name` or `cluster/namespace/name`; errors name the missing field.
pub fn key(kind: FactKind, obj: &Value, cluster: &str) -> Result<String, String> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("field `metadata.name` is missing")?;
    let cluster_scoped = matches!(kind, FactKind::ClusterRoleBinding | FactKind::ClusterRole);
    if cluster_scoped {
        return Ok(format!("{cluster}/{name}"));
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!("field `metadata.namespace` is missing on namespaced {kind} {name:?}")
        })?;
    Ok(format!("{cluster}/{ns}/{name}"))
}

/// True when platform labels mark the object as managed by Kubernetes or AKS.
pub fn platform_managed(obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    PLATFORM_LABELS.iter().any(|(k, want)| {
        match labels.and_then(|l| l.get(*k)).and_then(Value::as_str) {
            Some(v) => want.is_none_or(|w| w == v),
            None => false,
        }
    })
}

/// The latest time the object itself records (creation, field managers, deletion).
pub fn object_time(obj: &Value) -> EventTime {
    let meta = obj.get("metadata");
    let mut times = Vec::new();
    for f in ["creationTimestamp", "deletionTimestamp"] {
        if let Some(t) = meta.and_then(|m| m.get(f)).and_then(Value::as_str) {
            times.push(t);
        }
    }
    if let Some(mf) = meta
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    {
        times.extend(
            mf.iter()
                .filter_map(|e| e.get("time").and_then(Value::as_str)),
        );
    }
    times
        .into_iter()
        .filter_map(EventTime::parse)
        .max()
        .unwrap_or(EventTime::UNKNOWN)
}

fn sorted_strings(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// Entra object ids are GUIDs whose case carries no meaning; other names are case-sensitive.
fn subject_name(s: &str) -> String {
    if looks_like_guid(s) {
        s.to_ascii_lowercase()
    } else {
        s.to_string()
    }
}

fn binding(obj: &Value) -> Result<Value, String> {
    let rr = obj.get("roleRef").ok_or("field `roleRef` is missing")?;
    let role_kind = rr
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("field `roleRef.kind` is missing")?;
    let role_name = rr
        .get("name")
        .and_then(Value::as_str)
        .ok_or("field `roleRef.name` is missing")?;
    let mut subjects: Vec<Value> = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let mut v = json!({
                        "kind": s.get("kind").and_then(Value::as_str).unwrap_or(""),
                        "name": subject_name(s.get("name").and_then(Value::as_str).unwrap_or("")),
                    });
                    if let Some(ns) = s
                        .get("namespace")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                    {
                        v["namespace"] = json!(ns);
                    }
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    subjects.sort_by_cached_key(|v| v.to_string());
    subjects.dedup();
    Ok(json!({
        "role_ref": {"kind": role_kind, "name": role_name},
        "subjects": subjects,
    }))
}

fn role(obj: &Value) -> Value {
    let mut rules: Vec<Value> = obj
        .get("rules")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| {
                    json!({
                        "api_groups": sorted_strings(r.get("apiGroups")),
                        "resources": sorted_strings(r.get("resources")),
                        "verbs": sorted_strings(r.get("verbs")),
                        "resource_names": sorted_strings(r.get("resourceNames")),
                        "non_resource_urls": sorted_strings(r.get("nonResourceURLs")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    rules.sort_by_cached_key(|v| v.to_string());
    rules.dedup();
    let mut v = json!({ "rules": rules });
    if let Some(selectors) = obj
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    {
        let mut s: Vec<Value> = selectors.to_vec();
        s.sort_by_cached_key(|v| v.to_string());
        v["aggregation_selectors"] = Value::Array(s);
    }
    v
}

fn service_account(obj: &Value) -> Value {
    let ann = obj.pointer("/metadata/annotations");
    let get = |k: &str| {
        ann.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase())
    };
    json!({
        "workload_identity_client_id": get(WI_CLIENT_ID),
        "workload_identity_tenant_id": get(WI_TENANT_ID),
        "automount_token": obj.get("automountServiceAccountToken").and_then(Value::as_bool),
    })
}

/// The canonical value of a watched object; `platform_managed` is part of it.
pub fn value(kind: FactKind, obj: &Value) -> Result<Value, String> {
    let mut v = match kind {
        FactKind::ClusterRoleBinding | FactKind::RoleBinding => binding(obj)?,
        FactKind::ClusterRole | FactKind::Role => role(obj),
        FactKind::ServiceAccount => service_account(obj),
        other => return Err(format!("{other} is not a Kubernetes kind")),
    };
    v["platform_managed"] = json!(platform_managed(obj));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crb(extra_meta: Value) -> Value {
        let mut o = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "x", "resourceVersion": "1", "uid": "u"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "C0FFEE00-1111-2222-3333-444455556666", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "User", "name": "Alice"}]
        });
        for (k, v) in extra_meta.as_object().unwrap() {
            o["metadata"][k] = v.clone();
        }
        o
    }

    #[test]
    fn metadata_churn_is_not_a_change() {
        let a = value(FactKind::ClusterRoleBinding, &crb(json!({}))).unwrap();
        let b = value(
            FactKind::ClusterRoleBinding,
            &crb(json!({"resourceVersion": "99", "managedFields": [{"time": "2026-01-01T00:00:00Z"}], "annotations": {"x": "y"}})),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a["subjects"][0]["name"],
            "c0ffee00-1111-2222-3333-444455556666"
        );
        assert_eq!(a["subjects"][1]["name"], "Alice");
        let c = value(
            FactKind::ClusterRoleBinding,
            &crb(json!({"labels": {"addonmanager.kubernetes.io/mode": "Reconcile"}})),
        )
        .unwrap();
        assert_eq!(c["platform_managed"], json!(true));
    }

    #[test]
    fn rule_order_does_not_matter() {
        let r1 = json!({"rules": [{"verbs": ["list", "get"], "resources": ["secrets"], "apiGroups": [""]}, {"verbs": ["*"], "resources": ["pods"]}]});
        let r2 = json!({"rules": [{"verbs": ["*"], "resources": ["pods"]}, {"verbs": ["get", "list"], "resources": ["secrets"], "apiGroups": [""]}]});
        assert_eq!(
            value(FactKind::Role, &r1).unwrap(),
            value(FactKind::Role, &r2).unwrap()
        );
    }

    #[test]
    fn keys_and_errors() {
        let o = json!({"metadata": {"name": "sa", "namespace": "payments"}});
        assert_eq!(
            key(FactKind::ServiceAccount, &o, "prod").unwrap(),
            "prod/payments/sa"
        );
        assert_eq!(key(FactKind::ClusterRole, &o, "prod").unwrap(), "prod/sa");
        assert!(key(
            FactKind::RoleBinding,
            &json!({"metadata": {"name": "b"}}),
            "c"
        )
        .unwrap_err()
        .contains("metadata.namespace"));
        assert!(value(FactKind::RoleBinding, &json!({}))
            .unwrap_err()
            .contains("roleRef"));
    }
}
