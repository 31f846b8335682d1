//! `[kubernetes]` and `[server]`: the settings only `accessdrift run` reads.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[kubernetes]`: the live watch of one cluster's RBAC objects.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Off by default so replay-only installs never try to reach an API server.
    pub enabled: bool,
    /// Name Kubernetes facts carry; must match a `[[clusters]] name` when clusters are listed.
    pub cluster: String,
    /// kubeconfig file; when absent: in-cluster config, then `KUBECONFIG` / `~/.kube/config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context inside the kubeconfig (its current context when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespaces watched for the namespaced kinds (all when empty).
    pub namespaces: Vec<String>,
    /// Label selector applied to every watched kind (`key=value,other!=x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Most watch events per transaction.
    pub batch_max_events: usize,
    /// Longest a watch event waits for its batch to fill.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            cluster: String::new(),
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            label_selector: None,
            // 500 events or 200 ms: an alert leaves well within a second of the event, and an
            // initial list of 100k objects still commits in a few hundred transactions.
            batch_max_events: 500,
            batch_max_wait: Duration::from_millis(200),
        }
    }
}

/// `[server]`: health endpoints (and metrics, later).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds (`/healthz`, `/readyz`).
    pub listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:9464".to_string(),
        }
    }
}

/// Validates `[kubernetes]` and `[server]` against the rest of the file.
pub(super) fn validate(cfg: &super::Config, path: &Path) -> Result<(), ConfigError> {
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    if cfg.server.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            "server.listen",
            format!(
                "{:?} is not an address: use IP:PORT, e.g. \"0.0.0.0:9464\"",
                cfg.server.listen
            ),
        ));
    }
    let k = &cfg.kubernetes;
    if !k.enabled {
        return Ok(());
    }
    if k.cluster.trim().is_empty() || k.cluster.contains('/') {
        return Err(invalid(
            "kubernetes.cluster",
            "must be the cluster's short name (non-empty, without '/'), e.g. \"aks-prod\"".into(),
        ));
    }
    if !cfg.clusters.is_empty() && !cfg.clusters.iter().any(|c| c.name == k.cluster) {
        let names: Vec<&str> = cfg.clusters.iter().map(|c| c.name.as_str()).collect();
        return Err(invalid(
            "kubernetes.cluster",
            format!(
                "{:?} is not one of the [[clusters]] names {names:?}: add a [[clusters]] entry for it or fix the name",
                k.cluster
            ),
        ));
    }
    if let Some(i) = k.namespaces.iter().position(|n| n.trim().is_empty()) {
        return Err(invalid(
            &format!("kubernetes.namespaces[{i}]"),
            "must not be empty".into(),
        ));
    }
    if k.batch_max_events == 0 || k.batch_max_events > 10_000 {
        return Err(invalid(
            "kubernetes.batch_max_events",
            "must be between 1 and 10000".into(),
        ));
    }
    if k.batch_max_wait.is_zero() || k.batch_max_wait > Duration::from_secs(10) {
        return Err(invalid(
            "kubernetes.batch_max_wait",
            "must be between 1ms and 10s (e.g. \"200ms\")".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    #[test]
    fn kubernetes_and_server_validation_table() {
        let cluster = "[[clusters]]\nname = \"aks-prod\"\nresource_id = \"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod\"\n";
        for (text, want_err) in [
            ("[kubernetes]\nenabled = true\ncluster = \"aks-prod\"\n", None),
            (
                "[kubernetes]\nenabled = true\n",
                Some("kubernetes.cluster"),
            ),
            (
                &*format!("{cluster}[kubernetes]\nenabled = true\ncluster = \"aks-dev\"\n"),
                Some("kubernetes.cluster"),
            ),
            (
                &*format!("{cluster}[kubernetes]\nenabled = true\ncluster = \"aks-prod\"\nnamespaces = [\"a\", \"\"]\n"),
                Some("kubernetes.namespaces[1]"),
            ),
            (
                "[kubernetes]\nenabled = true\ncluster = \"c\"\nbatch_max_wait = \"0s\"\n",
                Some("kubernetes.batch_max_wait"),
            ),
            ("[server]\nlisten = \"localhost\"\n", Some("server.listen")),
            ("[server]\nlisten = \"127.0.0.1:0\"\n", None),
        ] {
            let got = Config::parse(text, Path::new("t.toml"));
            match want_err {
                None => assert!(got.is_ok(), "{text}: {got:?}"),
                Some(key) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(key), "{text}: {e}");
                }
            }
        }
    }
}
