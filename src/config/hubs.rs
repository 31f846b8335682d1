//! `[[eventhubs.hubs]]`: more Event Hubs read like `[eventhubs]`. A subscription's diagnostic
//! setting (Activity Log) and a cluster's (`kube-audit-admin`) often write to two hubs, or two
//! namespaces; each is one more entry here, and what it leaves out comes from `[eventhubs]`.

use super::daemon::validate_eventhubs;
use super::{ConfigError, EventHubsAuth, EventHubsConfig, Secret};
use serde::{Deserialize, Serialize};

/// One more hub: only `eventhub` is required.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraHub {
    /// The Event Hub's name.
    pub eventhub: String,
    /// Fully qualified namespace; unset: `[eventhubs] namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Consumer group; unset: `[eventhubs] consumer_group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// How to authenticate; unset: as `[eventhubs]` (with its `client_id` or
    /// `connection_string`). When set, only this entry's `client_id`/`connection_string` count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EventHubsAuth>,
    /// Client id of a user-assigned managed identity (`auth = "managed_identity"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Connection string of this hub (`auth = "connection_string"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<Secret>,
    /// `amqp://host:port` dialled instead of the namespace host; unset: `[eventhubs]
    /// custom_endpoint` when the namespace is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_endpoint: Option<String>,
}

impl EventHubsConfig {
    /// `[eventhubs]` and every `[[eventhubs.hubs]]` entry, each as a whole configuration.
    pub fn all_hubs(&self) -> Vec<EventHubsConfig> {
        let mut main = self.clone();
        main.hubs.clear();
        let mut out = vec![main.clone()];
        for h in &self.hubs {
            let mut e = main.clone();
            e.eventhub = h.eventhub.clone();
            if let Some(ns) = &h.namespace {
                if *ns != main.namespace {
                    e.custom_endpoint = None;
                }
                e.namespace = ns.clone();
            }
            if let Some(cg) = &h.consumer_group {
                e.consumer_group = cg.clone();
            }
            if let Some(auth) = h.auth {
                e.auth = auth;
                e.client_id = None;
                e.connection_string = None;
            }
            if h.client_id.is_some() {
                e.client_id = h.client_id.clone();
            }
            if h.connection_string.is_some() {
                e.connection_string = h.connection_string.clone();
            }
            if h.custom_endpoint.is_some() {
                e.custom_endpoint = h.custom_endpoint.clone();
            }
            out.push(e);
        }
        out
    }
}

/// Each extra hub is validated as `[eventhubs]` is, its errors named `eventhubs.hubs[i].KEY`;
/// two entries reading the same hub with the same consumer group are refused.
pub(super) fn validate(
    e: &EventHubsConfig,
    invalid: &impl Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !e.enabled {
        if !e.hubs.is_empty() {
            return Err(invalid(
                "eventhubs.hubs",
                "is set while [eventhubs] is off (enabled = false or no namespace): remove it or turn [eventhubs] on".into(),
            ));
        }
        return Ok(());
    }
    let all = e.all_hubs();
    for (i, h) in all.iter().enumerate().skip(1) {
        let name = format!("eventhubs.hubs[{}]", i - 1);
        if h.eventhub.trim().is_empty() {
            return Err(invalid(
                &format!("{name}.eventhub"),
                "must name the Event Hub, e.g. \"aks-audit\"".into(),
            ));
        }
        validate_eventhubs(h, &|key: &str, problem| {
            invalid(&key.replacen("eventhubs.", &format!("{name}."), 1), problem)
        })?;
        if let Some(j) = all[..i].iter().position(|o| {
            o.namespace.eq_ignore_ascii_case(&h.namespace)
                && o.eventhub == h.eventhub
                && o.consumer_group == h.consumer_group
        }) {
            let other = if j == 0 {
                "[eventhubs]".to_string()
            } else {
                format!("eventhubs.hubs[{}]", j - 1)
            };
            return Err(invalid(
                &name,
                format!(
                    "reads {}/{} with consumer group {:?} like {other}: every event would be read twice; remove one or use another consumer group",
                    h.namespace, h.eventhub, h.consumer_group
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "[eventhubs]\nnamespace = \"logs.servicebus.windows.net\"\neventhub = \"activity\"\nconsumer_group = \"accessdrift\"\nauth = \"managed_identity\"\nclient_id = \"0a1b2c3d-0000-4000-8000-000000000001\"\n";

    #[test]
    fn an_extra_hub_takes_what_it_leaves_out_from_eventhubs() {
        let text = format!("{BASE}[[eventhubs.hubs]]\neventhub = \"aks-audit\"\n[[eventhubs.hubs]]\nnamespace = \"audit.servicebus.windows.net\"\neventhub = \"kube\"\nauth = \"workload_identity\"\n");
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        let all = cfg.eventhubs.all_hubs();
        assert_eq!(all.len(), 3);
        assert_eq!(
            (
                all[1].namespace.as_str(),
                all[1].eventhub.as_str(),
                all[1].consumer_group.as_str()
            ),
            ("logs.servicebus.windows.net", "aks-audit", "accessdrift")
        );
        assert_eq!(all[1].client_id, cfg.eventhubs.client_id);
        assert_eq!(all[2].namespace, "audit.servicebus.windows.net");
        assert_eq!(
            all[2].client_id, None,
            "another auth: the main one's client id does not apply"
        );
        assert!(all.iter().all(|h| h.hubs.is_empty()));
    }

    #[test]
    fn extra_hub_errors_name_the_entry() {
        for (extra, key) in [
            ("eventhub = \"activity\"\n", "eventhubs.hubs[0]"),
            ("eventhub = \"\"\n", "eventhubs.hubs[0].eventhub"),
            (
                "eventhub = \"x\"\nnamespace = \"not a host\"\n",
                "eventhubs.hubs[0].namespace",
            ),
            (
                "eventhub = \"x\"\nauth = \"connection_string\"\n",
                "eventhubs.hubs[0].connection_string",
            ),
            ("eventhub = \"x\"\nunknown = 1\n", "unknown field"),
        ] {
            let text = format!("{BASE}[[eventhubs.hubs]]\n{extra}");
            let e = Config::parse(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let off = "[eventhubs]\nenabled = false\n[[eventhubs.hubs]]\neventhub = \"x\"\n";
        let e = Config::parse(off, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("eventhubs.hubs"), "{e}");
    }
}
