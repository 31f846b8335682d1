//! Connecting to the API server, and reading its refusals: the client from the kubeconfig or
//! the pod's service account, and 401/403 turned into "identity X cannot VERB RESOURCE".

use super::spec::WatchedKind;
use crate::config::KubernetesConfig;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::Client;

/// Errors building the Kubernetes client (start-up only: watch errors are retried).
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// The kubeconfig file could not be read or used.
    #[error("kubeconfig {path} ([kubernetes] kubeconfig): {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What kube reported.
        source: kube::config::KubeconfigError,
    },
    /// Neither in-cluster config nor KUBECONFIG / ~/.kube/config was usable.
    #[error("no Kubernetes configuration: not in a cluster, and KUBECONFIG / ~/.kube/config failed ({0}); set [kubernetes] kubeconfig")]
    Infer(kube::config::InferConfigError),
    /// The client could not be built from the configuration (TLS, proxy, auth plugin).
    #[error("building the Kubernetes client: {0}")]
    Client(kube::Error),
}

/// Builds the client: the configured kubeconfig (and context), else in-cluster, else the usual
/// `KUBECONFIG` / `~/.kube/config` inference.
pub async fn client(cfg: &KubernetesConfig) -> Result<Client, KubeSourceError> {
    let options = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let config = if let Some(path) = &cfg.kubeconfig {
        let kerr = |source| KubeSourceError::Kubeconfig {
            path: path.display().to_string(),
            source,
        };
        let kc = Kubeconfig::read_from(path).map_err(kerr)?;
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(kerr)?
    } else if cfg.context.is_some() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| KubeSourceError::Kubeconfig {
                path: "KUBECONFIG or ~/.kube/config".into(),
                source,
            })?
    } else {
        match kube::Config::incluster() {
            Ok(c) => c,
            Err(_) => kube::Config::infer()
                .await
                .map_err(KubeSourceError::Infer)?,
        }
    };
    Client::try_from(config).map_err(KubeSourceError::Client)
}

/// Why a watch failed, for logs and readiness.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// 401 or 403: fixing it takes RBAC, not a retry.
    pub unauthorized: bool,
    /// What to log and show in readiness.
    pub message: String,
}

/// Names the verb, the resource and the identity the server saw for 401/403 (from the Status
/// message: `… is forbidden: User "X" cannot list resource "rolebindings" …`).
pub fn classify(err: &watcher::Error, kind: &WatchedKind) -> Failure {
    let (default_verb, inner) = match err {
        watcher::Error::InitialListFailed(e) => ("list", Some(e)),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => ("watch", Some(e)),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => ("watch", None),
    };
    let status = match (inner, err) {
        (Some(kube::Error::Api(s)), _) => Some((s.code, s.message.clone())),
        (_, watcher::Error::WatchError(s)) => Some((s.code, s.message.clone())),
        _ => None,
    };
    match status {
        Some((code @ (401 | 403), msg)) => {
            let identity = between(&msg, "User \"", "\"")
                .or_else(|| between(&msg, "user \"", "\""))
                .unwrap_or(if code == 401 {
                    "(credentials rejected: token expired or invalid)"
                } else {
                    "(not named by the server)"
                });
            let verb = between(&msg, "cannot ", " ").unwrap_or(default_verb);
            let resource = if kind.group.is_empty() {
                kind.plural.to_string()
            } else {
                format!("{}.{}", kind.plural, kind.group)
            };
            Failure {
                unauthorized: true,
                message: format!(
                    "{code} {}: identity {identity} cannot {verb} {resource} (grant get/list/watch on it; server said: {msg})",
                    if code == 401 { "Unauthorized" } else { "Forbidden" }
                ),
            }
        }
        _ => Failure {
            unauthorized: false,
            message: err.to_string(),
        },
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len]).filter(|x| !x.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::spec::KINDS;
    use super::*;
    use kube::core::Status;

    #[test]
    fn auth_failures_name_verb_resource_and_identity() {
        let forbidden = "rolebindings.rbac.authorization.k8s.io is forbidden: User \"system:serviceaccount:accessdrift:accessdrift\" cannot watch resource \"rolebindings\" in API group \"rbac.authorization.k8s.io\" at the cluster scope";
        let api =
            |code, msg: &str| kube::Error::Api(Box::new(Status::failure(msg, "x").with_code(code)));
        for (err, kind, want) in [
            (
                watcher::Error::InitialListFailed(api(403, forbidden)),
                KINDS[1],
                vec![
                    "403 Forbidden",
                    "identity system:serviceaccount:accessdrift:accessdrift",
                    "cannot watch rolebindings.rbac.authorization.k8s.io",
                ],
            ),
            (
                watcher::Error::InitialListFailed(api(401, "Unauthorized")),
                KINDS[4],
                vec![
                    "401 Unauthorized",
                    "credentials rejected",
                    "cannot list serviceaccounts ",
                ],
            ),
            (
                watcher::Error::WatchStartFailed(api(403, "forbidden")),
                KINDS[2],
                vec![
                    "403 Forbidden",
                    "cannot watch clusterroles.rbac.authorization.k8s.io",
                ],
            ),
        ] {
            let f = classify(&err, &kind);
            assert!(f.unauthorized, "{err}");
            for w in want {
                assert!(f.message.contains(w), "{w:?} not in {}", f.message);
            }
        }
        let other = classify(
            &watcher::Error::InitialListFailed(api(500, "etcd down")),
            &KINDS[0],
        );
        assert!(!other.unauthorized);
    }
}
