//! `[kubernetes]`, `[eventhubs]` and `[server]`: the settings only `accessdrift run` reads.

use super::{ConfigError, Secret};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `enabled` of a source table that is written without one: a table a person wrote turns
/// its source on. (The `Default` impls say `false`: that is the value when the table is absent.)
fn on_when_present() -> bool {
    true
}

/// `[kubernetes]`: the live watch of one cluster's RBAC objects.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// On when the `[kubernetes]` table is present; `enabled = false` keeps the table but
    /// turns the watch off. Without the table (the default) nothing reaches for an API server.
    #[serde(default = "on_when_present")]
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

impl KubernetesConfig {
    /// True for the value an absent table gets: `check-config` leaves it out.
    pub(super) fn is_default(&self) -> bool {
        *self == KubernetesConfig::default()
    }
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

/// How the Event Hubs source authenticates.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventHubsAuth {
    /// AKS workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`.
    #[default]
    WorkloadIdentity,
    /// The node's or pod's managed identity (IMDS); `client_id` picks a user-assigned one.
    ManagedIdentity,
    /// A shared access policy connection string (`connection_string`, a secret).
    ConnectionString,
}

impl EventHubsAuth {
    /// The name used in the config file and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EventHubsAuth::WorkloadIdentity => "workload_identity",
            EventHubsAuth::ManagedIdentity => "managed_identity",
            EventHubsAuth::ConnectionString => "connection_string",
        }
    }
}

/// Where a partition without a checkpoint starts reading.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventHubsStart {
    /// The oldest event the hub still retains.
    #[default]
    Earliest,
    /// Only events enqueued after the partition is opened.
    Latest,
}

/// `[eventhubs]`: the Azure Activity Log, streamed to an Event Hub by a diagnostic setting.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventHubsConfig {
    /// On when the `[eventhubs]` table is present; `enabled = false` keeps the table but
    /// turns the source off. Without the table (the default) nothing connects to Azure.
    #[serde(default = "on_when_present")]
    pub enabled: bool,
    /// Fully qualified namespace, e.g. `contoso-logs.servicebus.windows.net`.
    pub namespace: String,
    /// The Event Hub the diagnostic setting writes to.
    pub eventhub: String,
    /// Consumer group; a dedicated one keeps other readers' positions apart.
    pub consumer_group: String,
    /// How to authenticate.
    pub auth: EventHubsAuth,
    /// Client id of a user-assigned managed identity (`auth = "managed_identity"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Connection string (`auth = "connection_string"` only): `{ env = "…" }` or `{ file = "…" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<Secret>,
    /// `amqp://host:port` or `amqps://host:port` dialled instead of the namespace host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_endpoint: Option<String>,
    /// Where a partition with no checkpoint starts.
    pub start: EventHubsStart,
    /// Most events per transaction.
    pub max_batch: usize,
    /// Longest an event waits for its batch to fill.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// A partition with events waiting and nothing committed for this long is a stall.
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
    /// How often partition properties (last enqueued sequence number) are polled for lag.
    #[serde(with = "humantime_serde")]
    pub lag_poll: Duration,
    /// How often the SDK's processor balances partitions and reopens closed ones.
    #[serde(with = "humantime_serde")]
    pub rebalance_interval: Duration,
    /// More hubs read the same way (`[[eventhubs.hubs]]`), e.g. the one an AKS cluster's
    /// diagnostic setting writes `kube-audit-admin` to; what a hub leaves out is taken from
    /// `[eventhubs]`. Records of every hub are routed by their `category`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hubs: Vec<super::hubs::ExtraHub>,
}

impl EventHubsConfig {
    /// True for the value an absent table gets: `check-config` leaves it out.
    pub(super) fn is_default(&self) -> bool {
        *self == EventHubsConfig::default()
    }
}

impl Default for EventHubsConfig {
    fn default() -> Self {
        EventHubsConfig {
            enabled: false,
            namespace: String::new(),
            eventhub: String::new(),
            consumer_group: "$Default".to_string(),
            auth: EventHubsAuth::default(),
            client_id: None,
            connection_string: None,
            custom_endpoint: None,
            start: EventHubsStart::default(),
            // Diagnostic settings send a few records per event: 100 events is a few hundred
            // records per transaction, and 500 ms keeps alerts well within a second or two.
            max_batch: 100,
            max_wait: Duration::from_millis(500),
            stall_after: Duration::from_secs(300),
            lag_poll: Duration::from_secs(30),
            rebalance_interval: Duration::from_secs(10),
            hubs: Vec::new(),
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

impl super::Config {
    /// The sources `accessdrift run` would start, one line each (`check-config`, and the
    /// refusal of a `run` with nothing to do). Empty when no source table is enabled.
    pub fn enabled_sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        let k = &self.kubernetes;
        if k.enabled {
            let scope = if k.namespaces.is_empty() {
                "all namespaces".to_string()
            } else {
                format!("namespaces {}", k.namespaces.join(", "))
            };
            out.push(format!(
                "kubernetes: cluster {:?}, ClusterRoleBindings, ClusterRoles, RoleBindings, Roles and ServiceAccounts in {scope}",
                k.cluster
            ));
        }
        if self.eventhubs.enabled {
            for e in self.eventhubs.all_hubs() {
                out.push(format!(
                    "eventhubs: {}/{} (consumer group {:?}, auth {}; Activity Log and AKS audit records, by category)",
                    e.namespace,
                    e.eventhub,
                    e.consumer_group,
                    e.auth.as_str()
                ));
            }
        }
        let a = &self.azure;
        if a.enabled {
            out.push(format!(
                "azure: inventory of subscriptions {} every {} (auth {})",
                self.azure_subscriptions().join(", "),
                humantime_serde::re::humantime::format_duration(a.snapshot_interval),
                a.auth.as_str()
            ));
        }
        out
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
    validate_eventhubs(&cfg.eventhubs, &invalid)?;
    super::hubs::validate(&cfg.eventhubs, &invalid)?;
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

pub(super) fn validate_eventhubs(
    e: &EventHubsConfig,
    invalid: &impl Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !e.enabled {
        return Ok(());
    }
    let ns = e.namespace.trim();
    if ns.is_empty() || ns.contains('/') || ns.contains(':') || !ns.contains('.') {
        return Err(invalid(
            "eventhubs.namespace",
            format!(
                "{:?} is not a fully qualified namespace: use the host name only, e.g. \"contoso-logs.servicebus.windows.net\"",
                e.namespace
            ),
        ));
    }
    if e.eventhub.trim().is_empty() || e.eventhub.contains('/') {
        return Err(invalid(
            "eventhubs.eventhub",
            "must be the Event Hub's name (non-empty, without '/'), e.g. \"activity-log\"".into(),
        ));
    }
    if e.consumer_group.trim().is_empty() || e.consumer_group.contains('/') {
        return Err(invalid(
            "eventhubs.consumer_group",
            "must be a consumer group name (non-empty, without '/'), e.g. \"accessdrift\"".into(),
        ));
    }
    match (e.auth, &e.connection_string, &e.client_id) {
        (EventHubsAuth::ConnectionString, None, _) => {
            return Err(invalid(
                "eventhubs.connection_string",
                "is required with auth = \"connection_string\": connection_string = { env = \"EVENTHUBS_CONNECTION_STRING\" } or { file = \"/path\" }".into(),
            ))
        }
        (EventHubsAuth::ConnectionString, Some(_), Some(_)) => {
            return Err(invalid(
                "eventhubs.client_id",
                "applies to auth = \"managed_identity\" only: remove it".into(),
            ))
        }
        (a, Some(_), _) if a != EventHubsAuth::ConnectionString => {
            return Err(invalid(
                "eventhubs.connection_string",
                format!(
                    "is only read with auth = \"connection_string\" (auth is {:?}): remove it or set auth = \"connection_string\"",
                    a.as_str()
                ),
            ))
        }
        (EventHubsAuth::WorkloadIdentity, _, Some(_)) => {
            return Err(invalid(
                "eventhubs.client_id",
                "applies to auth = \"managed_identity\" only; workload identity takes its client id from AZURE_CLIENT_ID".into(),
            ))
        }
        _ => {}
    }
    if let Some(ep) = &e.custom_endpoint {
        let ok = ["amqp://", "amqps://"]
            .iter()
            .any(|p| ep.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if !ok {
            return Err(invalid(
                "eventhubs.custom_endpoint",
                format!("{ep:?} must be an amqp://host:port or amqps://host:port address"),
            ));
        }
    }
    if e.max_batch == 0 || e.max_batch > 5_000 {
        return Err(invalid(
            "eventhubs.max_batch",
            "must be between 1 and 5000".into(),
        ));
    }
    for (key, d, max) in [
        ("eventhubs.max_wait", e.max_wait, Duration::from_secs(60)),
        (
            "eventhubs.stall_after",
            e.stall_after,
            Duration::from_secs(86_400),
        ),
        ("eventhubs.lag_poll", e.lag_poll, Duration::from_secs(3_600)),
        (
            "eventhubs.rebalance_interval",
            e.rebalance_interval,
            Duration::from_secs(600),
        ),
    ] {
        if d.is_zero() || d > max {
            return Err(invalid(
                key,
                format!(
                    "must be between 1ms and {} (e.g. \"500ms\", \"5m\")",
                    humantime_serde::re::humantime::format_duration(max)
                ),
            ));
        }
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

    #[test]
    fn eventhubs_validation_table() {
        let base = "[eventhubs]\nenabled = true\nnamespace = \"logs.servicebus.windows.net\"\neventhub = \"activity\"\n";
        for (extra, want_err) in [
            ("", None),
            ("auth = \"managed_identity\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n", None),
            ("auth = \"connection_string\"\nconnection_string = { env = \"EH_CS\" }\n", None),
            ("custom_endpoint = \"amqp://127.0.0.1:5672\"\nstart = \"latest\"\n", None),
            ("auth = \"connection_string\"\n", Some("eventhubs.connection_string")),
            ("connection_string = { file = \"/x\" }\n", Some("eventhubs.connection_string")),
            ("client_id = \"abc\"\n", Some("eventhubs.client_id")),
            ("auth = \"sas\"\n", Some("expected one of `workload_identity`, `managed_identity`, `connection_string`")),
            ("start = \"middle\"\n", Some("unknown variant `middle`")),
            ("custom_endpoint = \"http://x\"\n", Some("eventhubs.custom_endpoint")),
            ("max_batch = 0\n", Some("eventhubs.max_batch")),
            ("max_wait = \"0s\"\n", Some("eventhubs.max_wait")),
            ("stall_after = \"2days\"\n", Some("eventhubs.stall_after")),
            ("consumer_group = \"\"\n", Some("eventhubs.consumer_group")),
            ("topic = \"x\"\n", Some("topic")),
        ] {
            let text = format!("{base}{extra}");
            let got = Config::parse(&text, Path::new("t.toml"));
            match want_err {
                None => assert!(got.is_ok(), "{text}: {got:?}"),
                Some(key) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(key), "{text}: {e}");
                }
            }
        }
        for (ns, ok) in [
            ("logs.servicebus.windows.net", true),
            ("sb://logs.servicebus.windows.net/", false),
            ("logs", false),
            ("", false),
        ] {
            let text =
                format!("[eventhubs]\nenabled = true\nnamespace = \"{ns}\"\neventhub = \"h\"\n");
            let got = Config::parse(&text, Path::new("t.toml"));
            assert_eq!(got.is_ok(), ok, "{ns}: {got:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains("eventhubs.namespace"), "{e}");
            }
        }
        // Disabled: nothing is checked, so a half-written section does not block other work.
        assert!(Config::parse(
            "[eventhubs]\nenabled = false\nauth = \"connection_string\"\n",
            Path::new("t.toml")
        )
        .is_ok());
    }

    /// A source table a person wrote turns its source on; `enabled = false` turns it off;
    /// no table, no source. (Before: a table without `enabled = true` was silently ignored.)
    #[test]
    fn a_source_table_turns_its_source_on() {
        let eh =
            "[eventhubs]\nnamespace = \"logs.servicebus.windows.net\"\neventhub = \"activity\"\n";
        for (text, kube, hub) in [
            ("", false, false),
            ("[kubernetes]\ncluster = \"aks-prod\"\n", true, false),
            (
                "[kubernetes]\nenabled = false\ncluster = \"aks-prod\"\n",
                false,
                false,
            ),
            (
                "[kubernetes]\nenabled = true\ncluster = \"aks-prod\"\n",
                true,
                false,
            ),
            (eh, false, true),
            (&*format!("{eh}enabled = false\n"), false, false),
            (&*format!("[kubernetes]\ncluster = \"c\"\n{eh}"), true, true),
        ] {
            let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
            assert_eq!(
                (cfg.kubernetes.enabled, cfg.eventhubs.enabled),
                (kube, hub),
                "{text}"
            );
            assert_eq!(
                cfg.enabled_sources().len(),
                kube as usize + hub as usize,
                "{text}"
            );
            // What check-config prints loads back to the same sources.
            let again = Config::parse(&cfg.to_toml().unwrap(), Path::new("t.toml")).unwrap();
            assert_eq!(again, cfg, "{text}");
        }
        // Present means validated: a table without its required keys is an error naming them.
        let e = Config::parse("[kubernetes]\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("kubernetes.cluster"), "{e}");
        let e = Config::parse("[eventhubs]\neventhub = \"h\"\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("eventhubs.namespace"), "{e}");
        // An absent (or default, switched-off) table is not printed by check-config.
        let shown = Config::parse("[kubernetes]\nenabled = false\n", Path::new("t.toml"))
            .unwrap()
            .to_toml()
            .unwrap();
        assert!(!shown.contains("[kubernetes]"), "{shown}");
    }

    #[test]
    fn the_connection_string_never_shows_in_check_config_output() {
        let text = "[eventhubs]\nenabled = true\nnamespace = \"logs.servicebus.windows.net\"\neventhub = \"h\"\nauth = \"connection_string\"\nconnection_string = { env = \"EH_CS_NOT_SET\" }\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let shown = cfg.to_toml().unwrap();
        assert!(shown.contains("EH_CS_NOT_SET"), "{shown}");
        assert!(format!("{cfg:?}").contains("EH_CS_NOT_SET"));
    }
}
