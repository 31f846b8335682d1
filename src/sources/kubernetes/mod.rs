//! Kubernetes source: watch events and `kind: List` dumps to observations (replay), and the
//! live watch (`watch`, with what it watches in `spec` and its API client in `client`), which
//! feeds kube-runtime events through the same `decode_*` functions.

pub(crate) mod client;
pub mod project;
pub(crate) mod spec;
pub(crate) mod watch;

use crate::domain::{ChangeOp, Fact, FactRef, Location, Observation, Provenance};
use crate::sources::{Decoded, SkipReason};
use serde_json::Value;

/// Source name recorded in provenance: `k8s`, as watch names (`k8s:CLUSTER:KIND`) and
/// operations (`k8s:added:rolebinding`) spell it.
pub const SOURCE: &str = "k8s";

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created (a watch event).
    Added,
    /// An item of a `kind: List` dump: present when the list was taken.
    Listed,
    /// Changed.
    Modified,
    /// Removed; the object is its last known state.
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "added",
            EventType::Listed => "listed",
            EventType::Modified => "modified",
            EventType::Deleted => "deleted",
        }
    }
}

/// Decodes a watch event `{"type": …, "object": …}`.
pub fn decode_watch_event(v: &Value, cluster: &str) -> Vec<Decoded> {
    let Some(t) = v.get("type").and_then(Value::as_str) else {
        return vec![Decoded::Malformed(
            "watch event field `type` is missing or not a string".into(),
        )];
    };
    let ty = match t {
        "ADDED" => EventType::Added,
        "MODIFIED" => EventType::Modified,
        "DELETED" => EventType::Deleted,
        "BOOKMARK" | "ERROR" => return vec![Decoded::Skipped(SkipReason::WatchControl)],
        other => {
            return vec![Decoded::Malformed(format!(
            "watch event `type` is {other:?}; expected ADDED, MODIFIED, DELETED, BOOKMARK or ERROR"
        ))]
        }
    };
    match v.get("object") {
        Some(o) if o.is_object() => vec![decode_object(o, ty, cluster)],
        _ => vec![Decoded::Malformed(
            "watch event field `object` is missing or not an object".into(),
        )],
    }
}

/// Decodes an object, or each item of a `kind: List` (items may omit `kind` in typed lists).
/// List items carry the operation `k8s:listed:KIND`, so `replay --relist` knows what a List held.
pub fn decode_listing(v: &Value, cluster: &str) -> Vec<Decoded> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(item_kind) = kind.strip_suffix("List") {
        let Some(items) = v.get("items").and_then(Value::as_array) else {
            return vec![Decoded::Malformed(format!("{kind} has no `items` array"))];
        };
        return items
            .iter()
            .map(|item| {
                if item.get("kind").is_some() || item_kind.is_empty() {
                    decode_object(item, EventType::Listed, cluster)
                } else {
                    let mut item = item.clone();
                    item["kind"] = Value::String(item_kind.to_string());
                    decode_object(&item, EventType::Listed, cluster)
                }
            })
            .collect();
    }
    vec![decode_object(v, EventType::Added, cluster)]
}

/// The operation prefix of observations decoded from a `kind: List` item.
pub const LISTED_OPERATION: &str = "k8s:listed:";

/// One object to an observation: upsert of its projection, or delete of its key.
pub fn decode_object(obj: &Value, ty: EventType, cluster: &str) -> Decoded {
    let Some(kind_name) = obj.get("kind").and_then(Value::as_str) else {
        return Decoded::Malformed("Kubernetes object field `kind` is missing".into());
    };
    let Some(kind) = project::fact_kind(kind_name) else {
        return Decoded::Skipped(SkipReason::IrrelevantKind);
    };
    let key = match project::key(kind, obj, cluster) {
        Ok(k) => k,
        Err(e) => return Decoded::Malformed(e),
    };
    let op = if ty == EventType::Deleted {
        ChangeOp::Delete {
            kind,
            target: FactRef::Key(key),
        }
    } else {
        match project::value(kind, obj) {
            Ok(value) => ChangeOp::Upsert(Fact {
                kind,
                key,
                value,
                resource_id: None,
            }),
            Err(e) => return Decoded::Malformed(format!("{kind_name} {key}: {e}")),
        }
    };
    Decoded::Observation(Observation::immediate(
        op,
        Provenance {
            source: SOURCE.to_string(),
            event_time: project::object_time(obj),
            correlation_id: None,
            resource_version: obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            operation: format!("k8s:{}:{}", ty.as_str(), kind_name.to_ascii_lowercase()),
            actor: Default::default(),
            location: Location::default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_list_items_take_the_list_kind() {
        let list = json!({"apiVersion": "v1", "kind": "ServiceAccountList", "items": [
            {"metadata": {"name": "a", "namespace": "n"}},
            {"metadata": {"name": "b"}}
        ]});
        let out = decode_listing(&list, "c");
        assert!(
            matches!(&out[0], Decoded::Observation(o) if matches!(&o.candidate, Some(ChangeOp::Upsert(f)) if f.key == "c/n/a"))
        );
        assert!(matches!(&out[1], Decoded::Malformed(m) if m.contains("metadata.namespace")));
    }

    #[test]
    fn watch_event_table() {
        let obj = json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []});
        for (ev, ok) in [
            (json!({"type": "ADDED", "object": obj}), "upsert"),
            (json!({"type": "DELETED", "object": obj}), "delete"),
            (
                json!({"type": "BOOKMARK", "object": {"kind": "ClusterRole"}}),
                "skip",
            ),
            (
                json!({"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "p"}}}),
                "skip",
            ),
            (json!({"type": "WAT", "object": obj}), "malformed"),
            (json!({"type": "ADDED"}), "malformed"),
        ] {
            let got = match &decode_watch_event(&ev, "c")[0] {
                Decoded::Observation(o) => match o.candidate {
                    Some(ChangeOp::Upsert(_)) => "upsert",
                    Some(ChangeOp::Delete { .. }) => "delete",
                    _ => "other",
                },
                Decoded::Skipped(_) => "skip",
                Decoded::Malformed(_) => "malformed",
            };
            assert_eq!(got, ok, "{ev}");
        }
    }
}
