//! Routing: which configured sinks get an alert, decided when the transition is queued.

use super::{Alert, AlertTransition};
use crate::config::{Config, SinkConfig};
use crate::domain::{canonical_id, FactKind};

/// The sink name used when no `[[sinks]]` are configured: `accessdrift notify` prints.
pub const STDOUT: &str = "stdout";

/// The sink names to give the pipeline and the baseline service: every configured sink, or
/// the built-in `stdout` when there are none.
pub fn queue_sinks(config: &Config) -> Vec<String> {
    if config.sinks.is_empty() {
        vec![STDOUT.to_string()]
    } else {
        config.sinks.iter().map(|s| s.name.clone()).collect()
    }
}

/// Whether the sink named `sink` takes `alert`. A name without a `[[sinks]]` entry (the
/// built-in `stdout`, or a sink a test names) takes everything.
pub fn wants(config: &Config, sink: &str, alert: &Alert) -> bool {
    config
        .sinks
        .iter()
        .find(|s| s.name == sink)
        .is_none_or(|s| matches(s, alert))
}

/// The routing keys of one sink against one alert.
pub fn matches(sink: &SinkConfig, alert: &Alert) -> bool {
    if alert.transition == AlertTransition::Resolved && !sink.resolved {
        return false;
    }
    if let Some(min) = sink.min_severity {
        // A resolve notice is about a finding that mattered: it passes when the finding did.
        if alert.severity < min {
            return false;
        }
    }
    if !sink.kinds.is_empty() && !sink.kinds.iter().any(|k| k == alert.kind.as_str()) {
        return false;
    }
    if !sink.rules.is_empty() && !sink.rules.iter().any(|r| rule_matches(r, &alert.rule)) {
        return false;
    }
    if !sink.clusters.is_empty() && !sink.clusters.iter().any(|c| alert.clusters.contains(c)) {
        return false;
    }
    true
}

/// `aks.` and `aks.*` are prefixes; anything else is an exact rule id.
fn rule_matches(pattern: &str, rule: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        rule.starts_with(prefix)
    } else if pattern.ends_with('.') {
        rule.starts_with(pattern)
    } else {
        pattern == rule
    }
}

/// The `[[clusters]]` an alert concerns. Kubernetes facts name their cluster first in the key;
/// an Azure fact concerns every watched cluster at or below its scope (a grant on the
/// resource group reaches the cluster in it) and the cluster whose scope holds it.
pub fn clusters_of(config: &Config, fact_kind: FactKind, fact_key: &str) -> Vec<String> {
    let k8s = matches!(
        fact_kind,
        FactKind::ClusterRoleBinding
            | FactKind::RoleBinding
            | FactKind::ClusterRole
            | FactKind::Role
            | FactKind::ServiceAccount
    );
    if k8s {
        let name = fact_key.split('/').next().unwrap_or_default();
        return vec![name.to_string()];
    }
    // Role assignments: `scope|principal|role`; other Azure facts: a resource id.
    let scope = canonical_id(fact_key.split('|').next().unwrap_or_default());
    let scope = scope.trim_end_matches('/');
    if scope.is_empty() {
        return Vec::new();
    }
    config
        .clusters
        .iter()
        .filter(|c| {
            let id = canonical_id(&c.resource_id);
            let id = id.trim_end_matches('/');
            under(id, scope) || under(scope, id)
        })
        .map(|c| c.name.clone())
        .collect()
}

/// `path` is `scope` or lies below it (segment-wise, so `/rg/a` is not under `/rg/ab`).
fn under(path: &str, scope: &str) -> bool {
    path == scope || (path.starts_with(scope) && path.as_bytes().get(scope.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &str, rule: &str, sev: &str, transition: &str, clusters: &[&str]) -> Alert {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "idempotency_key": "i:f:1", "transition": transition, "finding_id": "f", "kind": kind,
            "rule": rule, "severity": sev, "status": "open", "title": "t",
            "fact_kind": "role_binding", "fact_key": "prod/ns/x",
            "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
        }))
        .unwrap();
        a.clusters = clusters.iter().map(|c| c.to_string()).collect();
        a
    }

    fn sink(toml_text: &str) -> SinkConfig {
        toml::from_str(&format!(
            "name = \"s\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n{toml_text}"
        ))
        .unwrap()
    }

    #[test]
    fn routing_keys_filter_alerts() {
        let a = alert("drift", "drift.role_binding", "high", "opened", &["prod"]);
        let cases = [
            ("", true),
            ("min_severity = \"high\"", true),
            ("min_severity = \"critical\"", false),
            ("kinds = [\"policy\", \"activity\"]", false),
            ("kinds = [\"drift\"]", true),
            ("rules = [\"drift.\"]", true),
            ("rules = [\"drift.*\"]", true),
            ("rules = [\"drift.role\"]", false),
            ("rules = [\"drift.role_binding\"]", true),
            ("clusters = [\"prod\"]", true),
            ("clusters = [\"dev\"]", false),
            ("resolved = false", true),
        ];
        for (cfg, want) in cases {
            assert_eq!(matches(&sink(cfg), &a), want, "{cfg}");
        }
        let resolved = alert("drift", "drift.role_binding", "high", "resolved", &["prod"]);
        assert!(!matches(&sink("resolved = false"), &resolved));
        assert!(matches(&sink(""), &resolved));
    }

    #[test]
    fn clusters_follow_kubernetes_keys_and_azure_scopes() {
        let cfg = Config::parse(
            "[[clusters]]\nname = \"prod\"\nresource_id = \"/subscriptions/S/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/aks1\"\n\
             [[clusters]]\nname = \"dev\"\nresource_id = \"/subscriptions/S/resourceGroups/RG2/providers/Microsoft.ContainerService/managedClusters/aks2\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let cases: [(&str, &str, &[&str]); 6] = [
            ("role_binding", "prod/ns/x", &["prod"]),
            ("role_assignment", "/subscriptions/s|p|r", &["prod", "dev"]),
            ("role_assignment", "/subscriptions/s/resourcegroups/rg|p|r", &["prod"]),
            ("role_assignment", "/subscriptions/s/resourcegroups/rg2x|p|r", &[]),
            ("cluster_settings", "/subscriptions/s/resourcegroups/rg2/providers/microsoft.containerservice/managedclusters/aks2", &["dev"]),
            ("role_assignment", "/subscriptions/s/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks1/namespaces/team|p|r", &["prod"]),
        ];
        for (kind, key, want) in cases {
            assert_eq!(
                clusters_of(&cfg, kind.parse().unwrap(), key),
                want,
                "{kind} {key}"
            );
        }
    }
}
