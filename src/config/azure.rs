//! `[azure]`: the Azure Resource Manager inventory (role assignments, custom roles, clusters,
//! managed identities and their federated credentials, read as they are now).

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// How the inventory gets its ARM token.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AzureAuth {
    /// AKS workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
    /// (`client_id` overrides `AZURE_CLIENT_ID`).
    #[default]
    WorkloadIdentity,
    /// The node's or pod's managed identity (IMDS, or `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`);
    /// `client_id` picks a user-assigned one.
    ManagedIdentity,
    /// The signed-in Azure CLI (`az login`): for a laptop, never for the daemon in a cluster.
    AzureCli,
}

impl AzureAuth {
    /// The name used in the config file and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AzureAuth::WorkloadIdentity => "workload_identity",
            AzureAuth::ManagedIdentity => "managed_identity",
            AzureAuth::AzureCli => "azure_cli",
        }
    }
}

/// `[azure]`: on when the table is present.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// On when the `[azure]` table is present; `enabled = false` keeps the table but turns the
    /// inventory off. Without the table (the default) nothing calls ARM.
    #[serde(default = "on_when_present")]
    pub enabled: bool,
    /// Subscription ids to read; empty: the subscriptions of the `[[clusters]]` resource ids.
    pub subscriptions: Vec<String>,
    /// How to authenticate.
    pub auth: AzureAuth,
    /// Client id of the identity (`workload_identity`: instead of `AZURE_CLIENT_ID`;
    /// `managed_identity`: a user-assigned identity). Not read with `azure_cli`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// ARM base URL; sovereign clouds use theirs (`https://management.usgovcloudapi.net`).
    /// `http://` only for a loopback host (tests). Tokens are always asked for the ARM
    /// audience of `authority_host`'s cloud, never for this URL.
    pub arm_endpoint: String,
    /// Entra authority for `workload_identity` (sovereign clouds:
    /// `https://login.microsoftonline.us`); unset: `AZURE_AUTHORITY_HOST` or the public cloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    /// How often `run` reads the whole inventory again (it also reads at start).
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Longest one ARM request may take, connecting included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Attempts per request (first try included) on 429, 5xx and connection failures before
    /// the listing of that part counts as failed.
    pub max_attempts: u32,
    /// Resources fetched at once for Activity Log records that carry no body.
    pub hint_concurrency: usize,
    /// A resource named by several body-less records within this long is fetched once.
    #[serde(with = "humantime_serde")]
    pub hint_debounce: Duration,
}

fn on_when_present() -> bool {
    true
}

/// The public cloud's ARM endpoint.
pub const PUBLIC_ARM: &str = "https://management.azure.com";

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            enabled: false,
            subscriptions: Vec::new(),
            auth: AzureAuth::default(),
            client_id: None,
            arm_endpoint: PUBLIC_ARM.to_string(),
            authority_host: None,
            snapshot_interval: Duration::from_secs(6 * 3600),
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            hint_concurrency: 4,
            hint_debounce: Duration::from_secs(5),
        }
    }
}

impl AzureConfig {
    /// True for the value an absent table gets: `check-config` leaves it out.
    pub(super) fn is_default(&self) -> bool {
        *self == AzureConfig::default()
    }

    /// The token scope: the ARM audience of the cloud, from the authority host (sovereign
    /// clouds) and never from `arm_endpoint`, which may be a proxy or a test server.
    pub fn token_scope(&self) -> &'static str {
        match self.authority_host.as_deref().map(str::trim) {
            Some(h) if h.contains("microsoftonline.us") => {
                "https://management.usgovcloudapi.net/.default"
            }
            Some(h) if h.contains("chinacloudapi.cn") => {
                "https://management.chinacloudapi.cn/.default"
            }
            _ => "https://management.azure.com/.default",
        }
    }
}

impl super::Config {
    /// The subscriptions the inventory reads: `[azure] subscriptions`, else those of the
    /// `[[clusters]]` resource ids, lower-case and without duplicates, in the given order.
    pub fn azure_subscriptions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let from_clusters = self.clusters.iter().filter_map(|c| {
            crate::domain::canonical_id(&c.resource_id)
                .strip_prefix("/subscriptions/")
                .and_then(|r| r.split('/').next())
                .map(str::to_string)
        });
        let listed = self
            .azure
            .subscriptions
            .iter()
            .map(|s| s.trim().to_ascii_lowercase());
        let all: Vec<String> = if self.azure.subscriptions.is_empty() {
            from_clusters.collect()
        } else {
            listed.collect()
        };
        for s in all {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Validates `[azure]` against the rest of the file.
pub(super) fn validate(cfg: &super::Config, path: &Path) -> Result<(), ConfigError> {
    let a = &cfg.azure;
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: format!("azure.{key}"),
        problem,
    };
    if !a.enabled {
        return Ok(());
    }
    for (i, s) in a.subscriptions.iter().enumerate() {
        if !is_guid(s.trim()) {
            return Err(invalid(
                &format!("subscriptions[{i}]"),
                format!("{s:?} is not a subscription id: use the GUID, e.g. \"00000000-0000-0000-0000-000000000000\""),
            ));
        }
    }
    if cfg.azure_subscriptions().is_empty() {
        return Err(invalid(
            "subscriptions",
            "no subscription to read: list them (subscriptions = [\"GUID\"]) or add [[clusters]] entries, whose resource ids name theirs".into(),
        ));
    }
    match (a.auth, &a.client_id) {
        (AzureAuth::AzureCli, Some(_)) => {
            return Err(invalid(
                "client_id",
                "is not read with auth = \"azure_cli\" (the signed-in account is used): remove it"
                    .into(),
            ))
        }
        (_, Some(id)) if !is_guid(id.trim()) => {
            return Err(invalid(
                "client_id",
                format!(
                    "{id:?} is not a client id: use the identity's application (client) id GUID"
                ),
            ))
        }
        _ => {}
    }
    let ep = a.arm_endpoint.trim_end_matches('/');
    match ep.split_once("://") {
        Some(("https", rest)) if !rest.is_empty() && !rest.contains('/') => {}
        Some(("http", rest)) if !rest.contains('/') => {
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            if !loopback_host(host) {
                return Err(invalid(
                    "arm_endpoint",
                    format!("{:?}: http:// is only allowed for a loopback host (a test server); use https://", a.arm_endpoint),
                ));
            }
        }
        _ => {
            return Err(invalid(
                "arm_endpoint",
                format!("{:?} is not an ARM base URL: use scheme and host only, e.g. \"https://management.azure.com\"", a.arm_endpoint),
            ))
        }
    }
    if let Some(h) = &a.authority_host {
        if !h.starts_with("https://") {
            return Err(invalid(
                "authority_host",
                format!("{h:?} must be an https:// URL, e.g. \"https://login.microsoftonline.us\""),
            ));
        }
        if a.auth != AzureAuth::WorkloadIdentity {
            return Err(invalid(
                "authority_host",
                format!(
                    "is only read with auth = \"workload_identity\" (auth is {:?}): remove it",
                    a.auth.as_str()
                ),
            ));
        }
    }
    if a.snapshot_interval < Duration::from_secs(60) {
        return Err(invalid(
            "snapshot_interval",
            "must be at least 1m (a full inventory is thousands of ARM reads), e.g. \"6h\"".into(),
        ));
    }
    if a.request_timeout.is_zero() || a.request_timeout > Duration::from_secs(300) {
        return Err(invalid(
            "request_timeout",
            "must be between 1ms and 5m, e.g. \"30s\"".into(),
        ));
    }
    if a.max_attempts == 0 || a.max_attempts > 20 {
        return Err(invalid("max_attempts", "must be between 1 and 20".into()));
    }
    if a.hint_concurrency == 0 || a.hint_concurrency > 64 {
        return Err(invalid(
            "hint_concurrency",
            "must be between 1 and 64".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const CLUSTER: &str = "[[clusters]]\nname = \"aks\"\nresource_id = \"/subscriptions/AAAAAAAA-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks\"\n";

    fn parse(t: &str) -> Result<Config, String> {
        Config::parse(t, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_table_turns_it_on_and_subscriptions_default_to_the_clusters() {
        let c = parse(&format!("{CLUSTER}[azure]\n")).unwrap();
        assert!(c.azure.enabled);
        assert_eq!(
            c.azure_subscriptions(),
            ["aaaaaaaa-0000-0000-0000-000000000001"]
        );
        assert!(!parse(CLUSTER).unwrap().azure.enabled);
    }

    #[test]
    fn bad_values_are_named_with_the_fix() {
        for (text, key) in [
            ("[azure]\n".to_string(), "azure.subscriptions"),
            (format!("{CLUSTER}[azure]\nsubscriptions = [\"prod\"]\n"), "azure.subscriptions[0]"),
            (format!("{CLUSTER}[azure]\narm_endpoint = \"http://example.com\"\n"), "azure.arm_endpoint"),
            (format!("{CLUSTER}[azure]\narm_endpoint = \"https://x/path\"\n"), "azure.arm_endpoint"),
            (format!("{CLUSTER}[azure]\nauth = \"azure_cli\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\n"), "azure.client_id"),
            (format!("{CLUSTER}[azure]\nsnapshot_interval = \"10s\"\n"), "azure.snapshot_interval"),
            (format!("{CLUSTER}[azure]\nauth = \"managed_identity\"\nauthority_host = \"https://login.microsoftonline.us\"\n"), "azure.authority_host"),
            (format!("{CLUSTER}[azure]\nsnapshot = \"6h\"\n"), "snapshot"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
        parse(&format!(
            "{CLUSTER}[azure]\narm_endpoint = \"http://127.0.0.1:8080\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn the_token_audience_follows_the_cloud_not_the_endpoint() {
        let c = parse(&format!(
            "{CLUSTER}[azure]\narm_endpoint = \"http://127.0.0.1:1\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.azure.token_scope(),
            "https://management.azure.com/.default"
        );
        let c = parse(&format!("{CLUSTER}[azure]\nauthority_host = \"https://login.microsoftonline.us\"\narm_endpoint = \"https://management.usgovcloudapi.net\"\n")).unwrap();
        assert_eq!(
            c.azure.token_scope(),
            "https://management.usgovcloudapi.net/.default"
        );
    }
}
