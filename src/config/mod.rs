//! Configuration: one TOML file, every field documented, defaults in one place.

mod azure;
mod daemon;
pub(crate) mod hubs;
pub mod roles;
pub mod rules;
mod secret;
mod sinks;

pub use azure::{AzureAuth, AzureConfig, PUBLIC_ARM};
pub use daemon::{EventHubsAuth, EventHubsConfig, EventHubsStart, KubernetesConfig, ServerConfig};
pub use secret::{Secret, SecretError};
pub use sinks::{SinkConfig, SinkType, TlsMode, UrlValue, WebhookFormat};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not a `source()`: chains print it once).
        error: std::io::Error,
    },
    /// The file is not valid for the schema; the message names the key and line/column.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with position and key.
        message: String,
    },
    /// A value parsed but is not usable.
    #[error("invalid config value `{key}` in {path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The effective configuration could not be written as TOML.
    #[error("cannot render the configuration as TOML: {message}")]
    Render {
        /// The serializer's message.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where state lives.
    pub store: StoreConfig,
    /// How input is cut into transactions and how operation phases are joined.
    pub pipeline: PipelineConfig,
    /// Clusters this instance watches.
    pub clusters: Vec<ClusterConfig>,
    /// Severity choices.
    pub severity: SeverityConfig,
    /// Outbox delivery.
    pub notify: NotifyConfig,
    /// Display names of custom roles, by role definition GUID (built-ins are known already).
    pub role_names: BTreeMap<String, String>,
    /// Live Kubernetes watch (`accessdrift run`): on when the table is present.
    #[serde(skip_serializing_if = "KubernetesConfig::is_default")]
    pub kubernetes: KubernetesConfig,
    /// Live Azure Activity Log from an Event Hub (`accessdrift run`): on when the table is present.
    #[serde(skip_serializing_if = "EventHubsConfig::is_default")]
    pub eventhubs: EventHubsConfig,
    /// Azure Resource Manager inventory (`accessdrift inventory`, and `run`): on when the table is present.
    #[serde(skip_serializing_if = "AzureConfig::is_default")]
    pub azure: AzureConfig,
    /// Health (and later metrics) HTTP server of `accessdrift run`.
    pub server: ServerConfig,
    /// `[rules.ID]`: enable/disable and severity per rule of the catalogue.
    pub rules: BTreeMap<String, rules::RuleSettings>,
    /// `[[exceptions]]`: accepted risks by rule and subject glob, with expiry.
    pub exceptions: Vec<rules::Exception>,
    /// Where alerts go; none configured: the built-in `stdout` sink of `accessdrift notify`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkConfig>,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; `--db` on the command line wins.
    pub path: PathBuf,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Changes per transaction: a batch closes after this many records that change
    /// something, or 32 times as many records in all. Larger is faster; smaller redoes less
    /// work after a crash. Findings do not depend on it.
    pub batch_size: usize,
    /// How long (wall clock, from ingest) a phase waits for its partner before it is dropped.
    #[serde(with = "humantime_serde")]
    pub pending_ttl: Duration,
    /// How long (wall clock) `applied`/`failed` markers and delete tombstones are kept, so a
    /// redelivered record is still a duplicate: longer than the Event Hub's retention.
    #[serde(with = "humantime_serde")]
    pub marker_ttl: Duration,
    /// Event times later than the wall clock plus this are clamped to it (and logged): one
    /// record dated 2099 must not outrank every real change to its fact.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Cluster name given to Kubernetes facts when `--cluster` is not passed.
    pub default_cluster: String,
    /// How far apart (event time) a Kubernetes change and its audit record may be and still
    /// be joined, when the audit event carries no resourceVersion to match exactly.
    #[serde(with = "humantime_serde")]
    pub attribution_window: Duration,
}

/// `[[clusters]]`: one watched AKS cluster.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Short name used to label Kubernetes facts (`--cluster`).
    pub name: String,
    /// ARM resource id of the managed cluster.
    pub resource_id: String,
    /// The cluster's OIDC issuer URL; unset: the one the inventory (`[azure]`) or the
    /// Activity Log reports.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
}

/// `[severity]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeverityConfig {
    /// Severity of drift on platform-managed Kubernetes objects (AKS upgrades change them).
    pub platform_managed: crate::domain::Severity,
}

/// `[notify]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Delivery attempts before an alert is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Upper bound of the retry delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How often the daemon looks at the outbox.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// At most this many messages per sink per minute, the last of them a digest listing the
    /// rest; 0: no limit. Alerts sharing a correlation id (one operation) always go as one digest.
    pub max_per_minute: u32,
    /// How long an alert of a Kubernetes change waits for its audit record to say who made it,
    /// while that cluster's audit records arrive (one in the last hour); `0s`: never wait.
    /// An actor that comes later still goes out, as an `attributed` follow-up.
    #[serde(with = "humantime_serde")]
    pub attribution_wait: Duration,
}

// Defaults: every one of them is in the impls below and nowhere else.
impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("accessdrift.db"),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: 2000,
            pending_ttl: Duration::from_secs(24 * 3600),
            marker_ttl: Duration::from_secs(8 * 24 * 3600),
            max_clock_skew: Duration::from_secs(15 * 60),
            default_cluster: "local".to_string(),
            attribution_window: Duration::from_secs(10 * 60),
        }
    }
}

impl Default for SeverityConfig {
    fn default() -> Self {
        SeverityConfig {
            platform_managed: crate::domain::Severity::Low,
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            poll_interval: Duration::from_secs(2),
            max_per_minute: 0,
            attribution_wait: Duration::from_secs(90),
        }
    }
}

impl Config {
    /// Loads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The configuration as TOML that [`Config::parse`] reads back to an equal value:
    /// durations in humantime form (`1h 30m`), secrets as their `{ env = … }` / `{ file = … }`
    /// references, never their values.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Render {
            message: e.to_string(),
        })
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        if self.pipeline.batch_size == 0 || self.pipeline.batch_size > 100_000 {
            return Err(invalid(
                "pipeline.batch_size",
                "must be between 1 and 100000",
            ));
        }
        if self.pipeline.default_cluster.trim().is_empty() {
            return Err(invalid("pipeline.default_cluster", "must not be empty"));
        }
        if self.notify.max_attempts == 0 {
            return Err(invalid("notify.max_attempts", "must be at least 1"));
        }
        if self.notify.initial_backoff > self.notify.max_backoff {
            return Err(invalid(
                "notify.initial_backoff",
                "must not exceed notify.max_backoff",
            ));
        }
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.trim().is_empty() || c.name.contains('/') {
                return Err(invalid(
                    &format!("clusters[{i}].name"),
                    "must be a non-empty name without '/'",
                ));
            }
            let id = crate::domain::canonical_id(&c.resource_id);
            if !id.contains("/providers/microsoft.containerservice/managedclusters/") {
                return Err(invalid(
                    &format!("clusters[{i}].resource_id"),
                    "must be an AKS resource id: /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/NAME",
                ));
            }
        }
        daemon::validate(self, path)?;
        azure::validate(self, path)?;
        rules::validate(&self.rules, &self.exceptions).map_err(|(k, p)| invalid(&k, &p))?;
        let cluster_names: Vec<String> = self.clusters.iter().map(|c| c.name.clone()).collect();
        for (i, sink) in self.sinks.iter().enumerate() {
            if let Err((key, problem)) = sink.check(&cluster_names) {
                return Err(invalid(&format!("sinks[{i}].{key}"), &problem));
            }
            if self.sinks[..i].iter().any(|s| s.name == sink.name) {
                return Err(invalid(
                    &format!("sinks[{i}].name"),
                    &format!(
                        "{:?} is used by an earlier sink: names must be unique",
                        sink.name
                    ),
                ));
            }
        }
        if self.notify.max_per_minute == 1 {
            return Err(invalid(
                "notify.max_per_minute",
                "must be 0 (no limit) or at least 2: the last message of a minute is the digest",
            ));
        }
        for guid in self.role_names.keys() {
            if guid.len() != 36 || guid.matches('-').count() != 4 {
                return Err(invalid(
                    &format!("role_names.{guid}"),
                    "keys are role definition GUIDs like 0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
                ));
            }
        }
        Ok(())
    }

    /// Display name of a role definition id or GUID: config names, then built-ins, else the GUID.
    pub fn role_name(&self, role_definition_id: &str) -> String {
        let guid = roles::role_guid(role_definition_id);
        if let Some((_, n)) = self
            .role_names
            .iter()
            .find(|(g, _)| g.eq_ignore_ascii_case(&guid))
        {
            return n.clone();
        }
        roles::builtin(&guid).map_or(guid, |r| r.name.to_string())
    }
}

/// The parser's message with its position, without the quoted source line: that line could
/// hold a secret written into the file by mistake, and errors end up in logs.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            match key_at(text, span.start) {
                Some(key) => format!("line {line}, column {column} (key `{key}`): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message.to_string(),
    }
}

/// The dotted key whose value starts the line at `offset` (`[table]` header + `key =`), so
/// an error names the key without quoting the value (which may be a pasted secret).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_position() {
        let err = parse("[pipeline]\nbatch_size = 10\nbatchsize = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batchsize"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("test.toml"), "{err}");
    }

    #[test]
    fn parse_errors_do_not_quote_the_offending_line() {
        // A password pasted under a key that does not take it must not reach the logs.
        let err = parse("[notify]\nmax_attempts = 3\nsmtp_password = \"hunter2\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3, column 1") && err.contains("smtp_password"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_duration_and_values_are_named() {
        let err = parse("[pipeline]\npending_ttl = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pending_ttl") || err.contains("line 2"),
            "{err}"
        );
        let err = parse("[pipeline]\nbatch_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipeline.batch_size"), "{err}");
        let err = parse("[[clusters]]\nname = \"a\"\nresource_id = \"/subscriptions/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clusters[0].resource_id"), "{err}");
    }

    #[test]
    fn role_names_prefer_config_then_builtins() {
        let cfg = parse(
            "[role_names]\n\"11111111-2222-3333-4444-555555555555\" = \"AKS Credential Reader\"\n",
        )
        .unwrap();
        assert_eq!(cfg.role_name("/providers/Microsoft.Authorization/roleDefinitions/11111111-2222-3333-4444-555555555555"), "AKS Credential Reader");
        assert_eq!(
            cfg.role_name("b24988ac-6180-42a0-ab88-20f7382dd24c"),
            "Contributor"
        );
        assert_eq!(cfg.role_name("/x/roleDefinitions/ABCD"), "abcd");
    }
}
