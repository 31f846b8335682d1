//! Kubernetes RBAC rules. Platform-managed objects (AKS- or Kubernetes-managed, and `system:*`
//! roles) are expected to be powerful and never trigger them.

use super::{last_segment, s, FactView, Hit};
use crate::domain::FactKind;
use serde_json::{json, Value};

const ANONYMOUS: &[&str] = &[
    "system:anonymous",
    "system:unauthenticated",
    "system:authenticated",
];
const ESCALATION: &[&str] = &["bind", "escalate", "impersonate"];
const READ: &[&str] = &["get", "list", "watch", "*"];
const WRITE: &[&str] = &[
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

fn platform(v: &Value) -> bool {
    v.get("platform_managed").and_then(Value::as_bool) == Some(true)
}

fn strs<'v>(rule: &'v Value, f: &str) -> Vec<&'v str> {
    super::list(rule, f)
}

fn rules(role: &Value) -> Vec<&Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// What a role grants, as far as the rules care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// `*` verbs on `*` resources in `*` API groups: cluster-admin by another name.
    pub admin: bool,
    /// A write verb on anything.
    pub write: bool,
    /// get/list/watch on secrets (not limited by resourceNames).
    pub secrets_read: bool,
}

/// What a role value grants.
pub fn grants(role: &Value) -> Grants {
    let mut g = Grants::default();
    for r in rules(role) {
        let verbs = strs(r, "verbs");
        let res = strs(r, "resources");
        let groups = strs(r, "api_groups");
        let has = |set: &[&str], x: &str| set.contains(&x);
        if has(&verbs, "*") && has(&res, "*") && has(&groups, "*") {
            g.admin = true;
        }
        if verbs.iter().any(|v| WRITE.contains(v)) {
            g.write = true;
        }
        let core = groups.is_empty() || has(&groups, "") || has(&groups, "*");
        if has(&res, "secrets")
            && core
            && verbs.iter().any(|v| READ.contains(v))
            && strs(r, "resource_names").is_empty()
        {
            g.secrets_read = true;
        }
    }
    g
}

/// The role a binding refers to, by the facts or, when not observed, by the built-in names.
pub fn bound_role<V: FactView>(
    binding_key: &str,
    binding: &Value,
    view: &V,
) -> Result<(String, Grants), V::Error> {
    let cluster = binding_key.split('/').next().unwrap_or("");
    let name = s(binding, "/role_ref/name");
    let (kind, key) = if s(binding, "/role_ref/kind") == "Role" {
        let ns = binding_key.split('/').nth(1).unwrap_or("");
        (FactKind::Role, format!("{cluster}/{ns}/{name}"))
    } else {
        (FactKind::ClusterRole, format!("{cluster}/{name}"))
    };
    let g = match view.get(kind, &key)? {
        Some(role) => grants(&role),
        // The built-in user-facing roles, as Kubernetes defines them.
        None if kind == FactKind::ClusterRole => match name {
            "cluster-admin" => Grants {
                admin: true,
                write: true,
                secrets_read: true,
            },
            "admin" | "edit" => Grants {
                admin: false,
                write: true,
                secrets_read: true,
            },
            _ => Grants::default(),
        },
        None => Grants::default(),
    };
    // cluster-admin is cluster-admin whatever its observed rules say.
    let g = if kind == FactKind::ClusterRole && name == "cluster-admin" {
        Grants { admin: true, ..g }
    } else {
        g
    };
    Ok((format!("{} {name}", s(binding, "/role_ref/kind")), g))
}

fn subject_line(subj: &Value) -> String {
    let kind = s(subj, "/kind");
    let name = s(subj, "/name");
    match subj.get("namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn subjects(binding: &Value) -> Vec<&Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub(super) fn check_binding<V: FactView>(
    kind: FactKind,
    key: &str,
    v: &Value,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    if platform(v) {
        return Ok(());
    }
    let subs = subjects(v);
    if subs.is_empty() {
        return Ok(());
    }
    let label = if kind == FactKind::ClusterRoleBinding {
        "ClusterRoleBinding"
    } else {
        "RoleBinding"
    };
    let (role, g) = bound_role(key, v, view)?;
    let all: Vec<String> = subs.iter().map(|x| subject_line(x)).collect();
    let mut hit = |rule: &'static str, title: String, who: Vec<String>| {
        out.push(Hit {
            rule,
            title,
            details: json!({"binding": key, "role": role, "subjects": who}),
        })
    };
    if g.admin {
        let reach = if kind == FactKind::ClusterRoleBinding {
            "cluster-wide"
        } else {
            "in its namespace"
        };
        hit(
            "K8S-CLUSTER-ADMIN-BINDING",
            format!(
                "{label} {key} grants {role} ({reach} admin) to {}",
                all.join(", ")
            ),
            all.clone(),
        );
    }
    let anon: Vec<String> = subs
        .iter()
        .filter(|x| ANONYMOUS.contains(&s(x, "/name")))
        .map(|x| subject_line(x))
        .collect();
    if !anon.is_empty() {
        hit(
            "K8S-ANONYMOUS-BINDING",
            format!("{label} {key} grants {role} to {}", anon.join(", ")),
            anon,
        );
    }
    // An admin binding reads secrets too; K8S-CLUSTER-ADMIN-BINDING already says more.
    if g.secrets_read && !g.admin {
        hit(
            "K8S-SECRETS-READ",
            format!(
                "{label} {key} lets {} read secrets through {role}",
                all.join(", ")
            ),
            all.clone(),
        );
    }
    let defaults: Vec<String> = subs
        .iter()
        .filter(|x| s(x, "/kind") == "ServiceAccount" && s(x, "/name") == "default")
        .map(|x| subject_line(x))
        .collect();
    if !defaults.is_empty() && (g.write || g.admin) {
        hit(
            "K8S-DEFAULT-SA-PRIVILEGED",
            format!(
                "{label} {key} grants {role} to the default service account ({})",
                defaults.join(", ")
            ),
            defaults,
        );
    }
    let users: Vec<String> = subs
        .iter()
        .filter(|x| s(x, "/kind") == "User" && !s(x, "/name").starts_with("system:"))
        .map(|x| subject_line(x))
        .collect();
    if !users.is_empty() {
        hit(
            "K8S-USER-SUBJECT",
            format!("{label} {key} binds {} by name to {role}", users.join(", ")),
            users,
        );
    }
    Ok(())
}

pub(super) fn check_role(kind: FactKind, key: &str, v: &Value, out: &mut Vec<Hit>) {
    if platform(v) || last_segment(key).starts_with("system:") {
        return;
    }
    let label = if kind == FactKind::ClusterRole {
        "ClusterRole"
    } else {
        "Role"
    };
    let mut wild = Vec::new();
    let mut esc = Vec::new();
    for r in rules(v) {
        let verbs = strs(r, "verbs");
        let res = strs(r, "resources");
        if verbs.contains(&"*") || res.contains(&"*") {
            wild.push(format!(
                "verbs [{}] on resources [{}]",
                verbs.join(","),
                res.join(",")
            ));
        }
        esc.extend(
            verbs
                .iter()
                .filter(|x| ESCALATION.contains(x))
                .map(|x| x.to_string()),
        );
    }
    esc.sort();
    esc.dedup();
    if !wild.is_empty() {
        out.push(Hit {
            rule: "K8S-WILDCARD-RULE",
            title: format!("{label} {key} grants {}", wild.join("; ")),
            details: json!({"role": key, "wildcards": wild}),
        });
    }
    if !esc.is_empty() {
        out.push(Hit {
            rule: "K8S-ESCALATION-VERBS",
            title: format!("{label} {key} grants {}", esc.join(", ")),
            details: json!({"role": key, "verbs": esc}),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::domain::FactKind::*;

    fn binding(role_kind: &str, role: &str, subjects: Value, platform: bool) -> Value {
        json!({"role_ref": {"kind": role_kind, "name": role}, "subjects": subjects, "platform_managed": platform})
    }
    fn role(rules: Value, platform: bool) -> Value {
        json!({"rules": rules, "platform_managed": platform})
    }
    fn rule(groups: &[&str], res: &[&str], verbs: &[&str]) -> Value {
        json!({"api_groups": groups, "resources": res, "verbs": verbs, "resource_names": [], "non_resource_urls": []})
    }
    const GROUP: &str = "0ad0ad00-0000-4000-8000-000000000001";
    /// (rule, binding key, binding, a role fact to add, fires).
    type Case = (
        &'static str,
        &'static str,
        Value,
        Option<(FactKind, &'static str, Value)>,
        bool,
    );

    /// (rule, binding key, binding, extra role fact, fires). Every rule has a firing case, a
    /// near miss, and a platform-managed case.
    #[test]
    fn binding_rules_table() {
        let group = json!([{"kind": "Group", "name": GROUP}]);
        let wildcard = role(json!([rule(&["*"], &["*"], &["*"])]), false);
        let reader = role(json!([rule(&[""], &["pods"], &["get", "list"])]), false);
        let secrets = role(json!([rule(&[""], &["secrets"], &["get", "list"])]), false);
        let table: Vec<Case> = vec![
            (
                "K8S-CLUSTER-ADMIN-BINDING",
                "prod/ops-admins",
                binding("ClusterRole", "cluster-admin", group.clone(), false),
                None,
                true,
            ),
            (
                "K8S-CLUSTER-ADMIN-BINDING",
                "prod/ops-admins",
                binding("ClusterRole", "god", group.clone(), false),
                Some((ClusterRole, "prod/god", wildcard.clone())),
                true,
            ),
            (
                "K8S-CLUSTER-ADMIN-BINDING",
                "prod/ops-view",
                binding("ClusterRole", "view", group.clone(), false),
                None,
                false,
            ),
            (
                "K8S-CLUSTER-ADMIN-BINDING",
                "prod/aks-cluster-admin-binding-aad",
                binding("ClusterRole", "cluster-admin", group.clone(), true),
                None,
                false,
            ),
            (
                "K8S-ANONYMOUS-BINDING",
                "prod/open",
                binding(
                    "ClusterRole",
                    "view",
                    json!([{"kind": "Group", "name": "system:unauthenticated"}]),
                    false,
                ),
                None,
                true,
            ),
            (
                "K8S-ANONYMOUS-BINDING",
                "prod/ns/open",
                binding(
                    "ClusterRole",
                    "view",
                    json!([{"kind": "User", "name": "system:anonymous"}]),
                    false,
                ),
                None,
                true,
            ),
            (
                "K8S-ANONYMOUS-BINDING",
                "prod/masters",
                binding(
                    "ClusterRole",
                    "view",
                    json!([{"kind": "Group", "name": "system:masters"}]),
                    false,
                ),
                None,
                false,
            ),
            (
                "K8S-ANONYMOUS-BINDING",
                "prod/system:discovery",
                binding(
                    "ClusterRole",
                    "system:discovery",
                    json!([{"kind": "Group", "name": "system:authenticated"}]),
                    true,
                ),
                None,
                false,
            ),
            (
                "K8S-SECRETS-READ",
                "prod/payments/read-secrets",
                binding("Role", "secret-reader", group.clone(), false),
                Some((Role, "prod/payments/secret-reader", secrets.clone())),
                true,
            ),
            (
                "K8S-SECRETS-READ",
                "prod/payments/edit",
                binding("ClusterRole", "edit", group.clone(), false),
                None,
                true,
            ),
            (
                "K8S-SECRETS-READ",
                "prod/payments/read-pods",
                binding("Role", "pod-reader", group.clone(), false),
                Some((Role, "prod/payments/pod-reader", reader.clone())),
                false,
            ),
            (
                "K8S-SECRETS-READ",
                "prod/kube-system/addon",
                binding("Role", "secret-reader", group.clone(), true),
                Some((Role, "prod/kube-system/secret-reader", secrets.clone())),
                false,
            ),
            (
                "K8S-DEFAULT-SA-PRIVILEGED",
                "prod/payments/default-edit",
                binding(
                    "ClusterRole",
                    "edit",
                    json!([{"kind": "ServiceAccount", "name": "default", "namespace": "payments"}]),
                    false,
                ),
                None,
                true,
            ),
            (
                "K8S-DEFAULT-SA-PRIVILEGED",
                "prod/payments/default-view",
                binding(
                    "ClusterRole",
                    "view",
                    json!([{"kind": "ServiceAccount", "name": "default", "namespace": "payments"}]),
                    false,
                ),
                None,
                false,
            ),
            (
                "K8S-DEFAULT-SA-PRIVILEGED",
                "prod/kube-system/default-admin",
                binding(
                    "ClusterRole",
                    "admin",
                    json!([{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]),
                    true,
                ),
                None,
                false,
            ),
            (
                "K8S-USER-SUBJECT",
                "prod/alice",
                binding(
                    "ClusterRole",
                    "view",
                    json!([{"kind": "User", "name": "alice@contoso.com"}]),
                    false,
                ),
                None,
                true,
            ),
            (
                "K8S-USER-SUBJECT",
                "prod/ops",
                binding("ClusterRole", "view", group.clone(), false),
                None,
                false,
            ),
            (
                "K8S-USER-SUBJECT",
                "prod/system:kube-scheduler",
                binding(
                    "ClusterRole",
                    "system:kube-scheduler",
                    json!([{"kind": "User", "name": "clusterAdmin"}]),
                    true,
                ),
                None,
                false,
            ),
        ];
        for (rule_id, key, b, extra, want) in table {
            let kind = if key.matches('/').count() == 1 {
                ClusterRoleBinding
            } else {
                RoleBinding
            };
            let mut mem = Mem::default().with(kind, key, b.clone());
            if let Some((k, rk, rv)) = extra {
                mem.put(k, rk, rv);
            }
            assert_eq!(
                fired(&eval(&mem, kind, key), rule_id),
                want,
                "{rule_id} on {key}: {b}"
            );
        }
    }

    #[test]
    fn role_rules_table() {
        for (rule_id, key, v, want) in [
            (
                "K8S-WILDCARD-RULE",
                "prod/ci-deployer",
                role(json!([rule(&["apps"], &["*"], &["get"])]), false),
                true,
            ),
            (
                "K8S-WILDCARD-RULE",
                "prod/payments/all-verbs",
                role(json!([rule(&[""], &["pods"], &["*"])]), false),
                true,
            ),
            (
                "K8S-WILDCARD-RULE",
                "prod/reader",
                role(json!([rule(&["*"], &["pods"], &["get"])]), false),
                false,
            ),
            (
                "K8S-WILDCARD-RULE",
                "prod/cluster-admin",
                role(json!([rule(&["*"], &["*"], &["*"])]), true),
                false,
            ),
            (
                "K8S-WILDCARD-RULE",
                "prod/system:controller:x",
                role(json!([rule(&["*"], &["*"], &["*"])]), false),
                false,
            ),
            (
                "K8S-ESCALATION-VERBS",
                "prod/rbac-manager",
                role(
                    json!([rule(
                        &["rbac.authorization.k8s.io"],
                        &["clusterroles"],
                        &["bind", "escalate"]
                    )]),
                    false,
                ),
                true,
            ),
            (
                "K8S-ESCALATION-VERBS",
                "prod/payments/impersonator",
                role(json!([rule(&[""], &["users"], &["impersonate"])]), false),
                true,
            ),
            (
                "K8S-ESCALATION-VERBS",
                "prod/rbac-viewer",
                role(
                    json!([rule(
                        &["rbac.authorization.k8s.io"],
                        &["clusterroles"],
                        &["get", "list"]
                    )]),
                    false,
                ),
                false,
            ),
            (
                "K8S-ESCALATION-VERBS",
                "prod/admin",
                role(
                    json!([rule(
                        &["rbac.authorization.k8s.io"],
                        &["rolebindings"],
                        &["bind"]
                    )]),
                    true,
                ),
                false,
            ),
        ] {
            let kind = if key.matches('/').count() == 1 {
                ClusterRole
            } else {
                Role
            };
            let mem = Mem::default().with(kind, key, v.clone());
            assert_eq!(
                fired(&eval(&mem, kind, key), rule_id),
                want,
                "{rule_id} on {key}: {v}"
            );
        }
    }
}
