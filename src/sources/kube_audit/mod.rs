//! AKS control-plane audit records (`kube-audit`, `kube-audit-admin` resource logs), and raw
//! audit log lines of a self-managed API server: who made each Kubernetes RBAC write.
//!
//! Only what can attribute a watched change is kept: stage `ResponseComplete`, a 2xx
//! response, a write verb on ClusterRoles, ClusterRoleBindings, Roles, RoleBindings or
//! ServiceAccounts, plus any write by a local account (that use is a finding of its own).
//! The rest is counted and dropped here, before any store work.

pub mod actor;

use crate::config::ClusterConfig;
use crate::domain::{
    canonical_id, ActorClass, AuditTarget, AuditWrite, ChangeOp, EventTime, FactKind, Location,
    Observation, Provenance,
};
use crate::sources::{Decoded, SkipReason};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Provenance source of audit records.
pub const SOURCE: &str = "kube-audit";

/// The two categories that carry audit events.
pub const AUDIT_CATEGORIES: [&str; 2] = ["kube-audit", "kube-audit-admin"];

/// The other resource-log categories of a managed cluster (plain-text `properties.log`):
/// skipped and counted under their own name, never malformed.
pub const OTHER_AKS_CATEGORIES: [&str; 12] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "cluster-autoscaler",
    "cloud-controller-manager",
    "guard",
    "csi-azuredisk-controller",
    "csi-azurefile-controller",
    "csi-snapshot-controller",
    "fleet-member-agent",
    "fleet-member-net-controller-manager",
    "fleet-mcs-controller-manager",
];

/// A watched cluster as audit records name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRef {
    /// `[[clusters]] name`: the first part of every Kubernetes fact key.
    pub name: String,
    /// Its resource id, lower-case.
    pub id: String,
}

/// The `[[clusters]]` by resource id, for records that name their cluster by `resourceId`.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    by_id: HashMap<String, ClusterRef>,
}

impl Clusters {
    /// The configured clusters.
    pub fn from_config(clusters: &[ClusterConfig]) -> Clusters {
        let by_id = clusters
            .iter()
            .map(|c| {
                let id = canonical_id(&c.resource_id);
                (
                    id.clone(),
                    ClusterRef {
                        name: c.name.clone(),
                        id,
                    },
                )
            })
            .collect();
        Clusters { by_id }
    }

    /// The cluster of an (upper-case, as AKS logs it) resource id.
    pub fn by_resource_id(&self, id: &str) -> Option<&ClusterRef> {
        self.by_id.get(&canonical_id(id))
    }

    /// The cluster named `name` (`replay --cluster`), or one with no resource id.
    pub fn by_name(&self, name: &str) -> ClusterRef {
        self.by_id
            .values()
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| ClusterRef {
                name: name.to_string(),
                id: name.to_ascii_lowercase(),
            })
    }
}

/// What one audit record came to.
#[derive(Debug)]
pub struct Outcome {
    /// The cluster it belongs to, when it is a watched one.
    pub cluster: Option<String>,
    /// What to hand the batcher.
    pub decoded: Decoded,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, rename = "resourceId", alias = "ResourceId", borrow)]
    resource_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    properties: Option<Props<'a>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Props<'a> {
    #[serde(default, borrow)]
    log: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "auditID")]
    audit_id: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    verb: Option<String>,
    #[serde(default)]
    user: actor::UserInfo,
    #[serde(default)]
    impersonated_user: Option<actor::UserInfo>,
    #[serde(default, rename = "sourceIPs")]
    source_ips: Vec<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<ResponseStatus>,
    #[serde(default, borrow)]
    response_object: Option<&'a RawValue>,
    #[serde(default)]
    request_received_timestamp: Option<String>,
    #[serde(default)]
    stage_timestamp: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    api_group: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseObject {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ResponseMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

/// The fact kind of an RBAC resource, by API group and plural resource name.
fn watched(group: &str, resource: &str) -> Option<FactKind> {
    Some(match (group, resource) {
        ("rbac.authorization.k8s.io", "clusterroles") => FactKind::ClusterRole,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => FactKind::ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "roles") => FactKind::Role,
        ("rbac.authorization.k8s.io", "rolebindings") => FactKind::RoleBinding,
        ("", "serviceaccounts") => FactKind::ServiceAccount,
        _ => return None,
    })
}

/// True for the verbs that change state.
pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Decodes one `kube-audit`/`kube-audit-admin` resource-log record: the Event in its
/// `properties.log` string, for the cluster its `resourceId` names.
pub fn decode_record(clusters: &Clusters, rec: &[u8]) -> Outcome {
    let env: Envelope<'_> = match serde_json::from_slice(rec) {
        Ok(e) => e,
        Err(e) => {
            return Outcome {
                cluster: None,
                decoded: Decoded::Malformed(format!("kube-audit record: invalid JSON: {e}")),
            }
        }
    };
    let Some(cluster) = env
        .resource_id
        .as_deref()
        .and_then(|id| clusters.by_resource_id(id))
    else {
        return Outcome {
            cluster: None,
            decoded: Decoded::Skipped(SkipReason::UnknownCluster),
        };
    };
    let Some(log) = env.properties.and_then(|p| p.log) else {
        return Outcome {
            cluster: Some(cluster.name.clone()),
            decoded: Decoded::Malformed(
                "kube-audit record: field `properties.log` (the audit event as a JSON string) is missing".into(),
            ),
        };
    };
    let decoded = decode_event(cluster, log.trim_end().as_bytes(), env.time.as_deref());
    Outcome {
        cluster: Some(cluster.name.clone()),
        decoded,
    }
}

/// Decodes one `audit.k8s.io/v1` Event of `cluster` (a line of an audit log file, or the
/// `properties.log` of a resource-log record). `fallback_time` is the record's own time.
pub fn decode_event(cluster: &ClusterRef, bytes: &[u8], fallback_time: Option<&str>) -> Decoded {
    let ev: Event<'_> = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            return Decoded::Malformed(format!(
                "kube-audit event: `properties.log` is not an audit.k8s.io Event: {e}"
            ))
        }
    };
    if ev.kind.as_deref().is_some_and(|k| k != "Event") {
        return Decoded::Malformed(format!(
            "kube-audit event: `kind` is {:?}, not \"Event\"",
            ev.kind.unwrap_or_default()
        ));
    }
    let verb = ev.verb.as_deref().unwrap_or_default();
    let code = ev.response_status.as_ref().and_then(|s| s.code);
    if ev.stage.as_deref() != Some("ResponseComplete")
        || !is_write(verb)
        || !code.is_some_and(|c| (200..300).contains(&c))
    {
        return Decoded::Skipped(SkipReason::AuditFiltered);
    }
    let oref = ev.object_ref.as_ref();
    let group = oref.and_then(|o| o.api_group.as_deref()).unwrap_or("");
    let resource = oref.and_then(|o| o.resource.as_deref()).unwrap_or("");
    let subresource = oref.and_then(|o| o.subresource.as_deref());
    let kind = watched(group, resource).filter(|_| subresource.is_none());
    let actor = actor::actor(
        &ev.user,
        ev.impersonated_user.as_ref(),
        &ev.source_ips,
        ev.user_agent.clone(),
        ev.audit_id.clone(),
        ev.annotations.get("authorization.k8s.io/reason").cloned(),
    );
    let local = actor.class == Some(ActorClass::LocalAccount)
        && !matches!(group, "authorization.k8s.io" | "authentication.k8s.io");
    if kind.is_none() && !local {
        return Decoded::Skipped(SkipReason::AuditFiltered);
    }
    let Some(audit_id) = ev.audit_id.clone().filter(|s| !s.is_empty()) else {
        return Decoded::Malformed("kube-audit event: field `auditID` is missing".into());
    };
    let response: Option<ResponseObject> = ev
        .response_object
        .and_then(|r| serde_json::from_str(r.get()).ok());
    let response_meta = response
        .as_ref()
        .filter(|r| r.kind.as_deref() != Some("Status"))
        .and_then(|r| r.metadata.as_ref());
    let name = oref
        .and_then(|o| o.name.clone())
        .or_else(|| response_meta.and_then(|m| m.name.clone()))
        .filter(|s| !s.is_empty());
    let target = match kind {
        None => None,
        Some(kind) => {
            let cluster_scoped =
                matches!(kind, FactKind::ClusterRole | FactKind::ClusterRoleBinding);
            let ns = oref.and_then(|o| o.namespace.as_deref()).unwrap_or("");
            let key = match (&name, cluster_scoped) {
                (Some(n), true) => format!("{}/{n}", cluster.name),
                (Some(n), false) if !ns.is_empty() => format!("{}/{ns}/{n}", cluster.name),
                // deletecollection names no object: the key is the scope's prefix.
                (None, true) if verb == "deletecollection" => format!("{}/", cluster.name),
                (None, false) if verb == "deletecollection" && !ns.is_empty() => {
                    format!("{}/{ns}/", cluster.name)
                }
                _ if local => String::new(),
                _ => {
                    return Decoded::Malformed(format!(
                        "kube-audit event {audit_id}: {verb} of {resource} names no object (`objectRef.name`{} missing)",
                        if cluster_scoped { "" } else { " or `objectRef.namespace`" }
                    ))
                }
            };
            (!key.is_empty()).then_some(AuditTarget { kind, key })
        }
    };
    let time = [
        ev.stage_timestamp.as_deref(),
        ev.request_received_timestamp.as_deref(),
        fallback_time,
    ]
    .into_iter()
    .flatten()
    .find_map(EventTime::parse);
    let Some(event_time) = time else {
        return Decoded::Malformed(format!(
            "kube-audit event {audit_id}: no `stageTimestamp` or `requestReceivedTimestamp`"
        ));
    };
    let resource_version = response_meta
        .and_then(|m| m.resource_version.clone())
        .filter(|_| !verb.starts_with("delete"));
    Decoded::Observation(Observation::immediate(
        ChangeOp::Audit(AuditWrite {
            cluster: cluster.name.clone(),
            cluster_id: cluster.id.clone(),
            target,
            verb: verb.to_string(),
        }),
        Provenance {
            source: SOURCE.to_string(),
            event_time,
            correlation_id: None,
            resource_version,
            operation: format!("k8s-audit:{verb}:{resource}"),
            actor,
            location: Location::default(),
        },
    ))
}

/// The record's `category` when it is a plain top-level string, found without parsing
/// (`"category": "kube-audit"`). Activity Log records in the REST shape carry an object.
pub fn category<'r>(rec: &'r [u8], finder: &memchr::memmem::Finder<'_>) -> Option<&'r str> {
    let k = finder.find(rec)?;
    let mut i = k + b"\"category\"".len();
    while matches!(rec.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    if rec.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while matches!(rec.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    if rec.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = memchr::memchr2(b'"', b'\\', &rec[start..])?;
    if rec[start + len] != b'"' {
        return None;
    }
    std::str::from_utf8(&rec[start..start + len]).ok()
}

#[cfg(test)]
mod tests;
