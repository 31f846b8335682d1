//! What the Kubernetes source watches: the five kinds of the access model, and one watch per
//! kind (and per namespace when `[kubernetes] namespaces` limits the namespaced kinds).

use crate::config::KubernetesConfig;
use kube::api::ApiResource;

/// A watched Kubernetes kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedKind {
    /// Kind name (`RoleBinding`).
    pub kind: &'static str,
    /// Resource name in URLs (`rolebindings`).
    pub plural: &'static str,
    /// API group (empty for core).
    pub group: &'static str,
    /// Namespaced (false: cluster-scoped).
    pub namespaced: bool,
}

/// The five kinds the access model is made of (docs/architecture.md, access model).
pub const KINDS: [WatchedKind; 5] = [
    WatchedKind {
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        group: "rbac.authorization.k8s.io",
        namespaced: false,
    },
    WatchedKind {
        kind: "RoleBinding",
        plural: "rolebindings",
        group: "rbac.authorization.k8s.io",
        namespaced: true,
    },
    WatchedKind {
        kind: "ClusterRole",
        plural: "clusterroles",
        group: "rbac.authorization.k8s.io",
        namespaced: false,
    },
    WatchedKind {
        kind: "Role",
        plural: "roles",
        group: "rbac.authorization.k8s.io",
        namespaced: true,
    },
    WatchedKind {
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        group: "",
        namespaced: true,
    },
];

impl WatchedKind {
    /// The resource as kube-rs addresses it (version `v1`).
    pub fn api_resource(&self) -> ApiResource {
        let version = "v1";
        ApiResource {
            group: self.group.to_string(),
            version: version.to_string(),
            api_version: if self.group.is_empty() {
                version.to_string()
            } else {
                format!("{}/{version}", self.group)
            },
            kind: self.kind.to_string(),
            plural: self.plural.to_string(),
        }
    }
}

/// One watch: a kind, optionally limited to one namespace.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The kind.
    pub kind: WatchedKind,
    /// The namespace, when `[kubernetes] namespaces` limits the namespaced kinds.
    pub namespace: Option<String>,
}

impl WatchSpec {
    /// Every watch the configuration asks for.
    pub fn all(cfg: &KubernetesConfig) -> Vec<WatchSpec> {
        let mut out = Vec::new();
        for kind in KINDS {
            if kind.namespaced && !cfg.namespaces.is_empty() {
                out.extend(cfg.namespaces.iter().map(|ns| WatchSpec {
                    kind,
                    namespace: Some(ns.clone()),
                }));
            } else {
                out.push(WatchSpec {
                    kind,
                    namespace: None,
                });
            }
        }
        out
    }

    /// Source (and checkpoint) name: `k8s:CLUSTER:KIND` or `k8s:CLUSTER:KIND:NAMESPACE`.
    pub fn source_name(&self, cluster: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("k8s:{cluster}:{}:{ns}", self.kind.kind),
            None => format!("k8s:{cluster}:{}", self.kind.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_per_namespace_only_for_namespaced_kinds() {
        let cfg = KubernetesConfig {
            cluster: "c".into(),
            namespaces: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        let names: Vec<String> = WatchSpec::all(&cfg)
            .iter()
            .map(|s| s.source_name("c"))
            .collect();
        assert_eq!(
            names,
            [
                "k8s:c:ClusterRoleBinding",
                "k8s:c:RoleBinding:a",
                "k8s:c:RoleBinding:b",
                "k8s:c:ClusterRole",
                "k8s:c:Role:a",
                "k8s:c:Role:b",
                "k8s:c:ServiceAccount:a",
                "k8s:c:ServiceAccount:b",
            ]
        );
    }
}
