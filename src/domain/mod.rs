//! Domain types: what sources emit and the store and engine consume. No SDK types live here.

mod fact;
pub mod id;
mod severity;
mod time;

pub use fact::{canonical_id, Fact, FactKind, FactRef, Plane, UnknownFactKind};
pub use severity::{RoleTier, Severity};
pub use time::EventTime;

use serde::{Deserialize, Serialize};

/// Who made a change, as far as the record tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// User principal name (`alice@contoso.com`), when a person acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Entra object id of the caller, lower-case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Application (client) id when an app or service principal acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Caller IP address (IPv4, IPv6 or CIDR as logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Kubernetes user name as the API server authenticated it (`user.username` of the
    /// audit event): a UPN for Entra users, `system:serviceaccount:NS:NAME`, `masterclient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Kubernetes groups of that user, as logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The user the request was made as, when the caller impersonated someone
    /// (`impersonatedUser.username`); `username` is then the real caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated: Option<String>,
    /// Client user agent (`kubectl/v1.30.1 …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Audit id of the Kubernetes request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// Why the authorizer allowed it (`authorization.k8s.io/reason`: which binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What sort of caller this is, when an audit record told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ActorClass>,
}

/// What sort of Kubernetes caller made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorClass {
    /// A named user (Entra UPN or another authenticated user).
    User,
    /// A service account of a workload outside `kube-system`.
    ServiceAccount,
    /// A local account credential of AKS (`masterclient`, `clusterAdmin`, `clusterUser`):
    /// shared, names no person.
    LocalAccount,
    /// The AKS platform: `aksService`, control-plane components, `kube-system` controllers
    /// and add-on managers.
    Platform,
}

impl ActorClass {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorClass::User => "user",
            ActorClass::ServiceAccount => "service_account",
            ActorClass::LocalAccount => "local_account",
            ActorClass::Platform => "platform",
        }
    }
}

impl Actor {
    /// True when nothing is known about the caller.
    pub fn is_empty(&self) -> bool {
        self.upn.is_none()
            && self.object_id.is_none()
            && self.app_id.is_none()
            && self.ip.is_none()
            && self.username.is_none()
            && self.audit_id.is_none()
    }

    /// The most human identifier known: UPN, then Kubernetes user, object id, app id.
    pub fn principal(&self) -> Option<&str> {
        self.upn
            .as_deref()
            .or(self.username.as_deref())
            .or(self.object_id.as_deref())
            .or(self.app_id.as_deref())
    }

    /// One line for people: `alice@contoso.com (oid …, app …) from 203.0.113.10`; for a
    /// Kubernetes caller also what it was (platform, local account), whom it impersonated,
    /// its user agent and the binding that allowed it.
    pub fn describe(&self) -> String {
        let mut s = self.principal().unwrap_or("unknown caller").to_string();
        let mut extra = Vec::new();
        match self.class {
            Some(ActorClass::Platform) => extra.push("AKS platform".to_string()),
            Some(ActorClass::LocalAccount) => extra.push("local account".to_string()),
            _ => {}
        }
        if self.upn.is_some() || self.username.is_some() {
            if let Some(o) = &self.object_id {
                extra.push(format!("oid {o}"));
            }
        }
        if self.upn.is_some() || self.username.is_some() || self.object_id.is_some() {
            if let Some(a) = &self.app_id {
                extra.push(format!("app {a}"));
            }
        }
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(", ")));
        }
        if let Some(i) = &self.impersonated {
            s.push_str(&format!(" as {i} (impersonated)"));
        }
        if let Some(ip) = &self.ip {
            s.push_str(&format!(" from {ip}"));
        }
        if let Some(ua) = &self.user_agent {
            s.push_str(&format!(" with {ua}"));
        }
        if let Some(r) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            s.push_str(&format!("; allowed: {r}"));
        }
        if let Some(id) = &self.audit_id {
            s.push_str(&format!("; audit id {id}"));
        }
        s
    }
}

/// Where a record came from, precisely enough to find it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The input: a file path, or later an Event Hub partition.
    pub input: String,
    /// Record index within the input (0-based), or the sequence number.
    pub index: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} record {}", self.input, self.index)
    }
}

/// The provenance every change carries: source, time, correlation, caller and raw location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Source name, e.g. `activity-log` or `kubernetes`.
    pub source: String,
    /// When the change happened at its origin (not when we read it).
    pub event_time: EventTime,
    /// Azure correlation id shared by the phases of one operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Kubernetes `metadata.resourceVersion` of the object as the watch saw it (or as an
    /// audit event's response object carries it): what joins a change to its audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Operation as logged, lower-cased (`microsoft.authorization/roleassignments/write`).
    pub operation: String,
    /// Who did it.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// Where the raw record is.
    pub location: Location,
}

/// Something that happened rather than a state: it never drifts, it is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// What was done.
    pub kind: ActivityKind,
    /// The resource it was done to (a cluster resource id, lower-case).
    pub subject: String,
}

/// The activities accessdrift recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// `managedClusters/listClusterAdminCredential/action`: the local-account backdoor.
    AdminCredentialListed,
    /// `managedClusters/runCommand/action`: `az aks command invoke`, a shell in the cluster
    /// with the cluster's own credentials.
    CommandInvoked,
    /// A Kubernetes write by a local account (the shared admin or user credential).
    LocalAccountUsed,
}

/// A Kubernetes API request the audit log reports: who wrote (or deleted) which object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditWrite {
    /// `[[clusters]] name` of the cluster.
    pub cluster: String,
    /// The cluster's resource id, lower-case (the subject of a local-account activity).
    pub cluster_id: String,
    /// The watched object written, `None` when it is no RBAC object (then the record matters
    /// only as a local-account use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<AuditTarget>,
    /// The request's verb as logged (`create`, `patch`, `delete`, …).
    pub verb: String,
}

/// The object an audit record names, keyed as the watch keys it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTarget {
    /// Fact kind of the object.
    pub kind: FactKind,
    /// `cluster/name` or `cluster/namespace/name`.
    pub key: String,
}

impl AuditWrite {
    /// True for `delete` and `deletecollection`: it matches the watch's delete.
    pub fn is_delete(&self) -> bool {
        self.verb.starts_with("delete")
    }
}

/// The effect of one record on the observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChangeOp {
    /// The fact now has this value.
    Upsert(Fact),
    /// The fact is gone.
    Delete {
        /// Kind of the fact deleted.
        kind: FactKind,
        /// Its key, or a resource id the store resolves to a key.
        target: FactRef,
    },
    /// An action was taken.
    Activity(Activity),
    /// The audit log says who made a Kubernetes request: joined to the watch's change.
    Audit(AuditWrite),
}

/// One normalised change with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What changed.
    pub op: ChangeOp,
    /// Who, when, where.
    pub prov: Provenance,
}

/// Provenance source of what the Azure inventory (ARM) listed.
pub const INVENTORY_SOURCE: &str = "inventory";
/// Operation prefix of inventory observations (`inventory:role_assignment`): a finding whose
/// latest evidence has it was seen by the inventory, not reported by an audit record.
pub const INVENTORY_OPERATION_PREFIX: &str = "inventory:";

/// Stands for the correlation id in the operation id of records that have none.
pub const NO_CORRELATION: &str = "-";

/// Phase of an Azure operation as the Activity Log reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Request received; the Start record carries the request body.
    Start,
    /// Accepted for asynchronous processing; nothing applied yet.
    Accept,
    /// Completed successfully: only now does state change.
    Success,
    /// Failed: nothing applies.
    Failure,
}

impl Phase {
    /// Stable lower-case name (also the store's column value).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Accept => "accept",
            Phase::Success => "success",
            Phase::Failure => "failure",
        }
    }
}

/// What a source hands the pipeline: a change candidate at some phase of an operation.
///
/// Sources that see whole state (Kubernetes) emit `Success` with no operation id; the Activity
/// Log emits each phase and the pipeline joins them by `operation_id` across batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Which phase this record reports.
    pub phase: Phase,
    /// `correlationId|resourceId` (lower-case) joining the phases of one operation.
    pub operation_id: Option<String>,
    /// The change this record implies, when its body (or its kind alone) says what it is.
    pub candidate: Option<ChangeOp>,
    /// Provenance of this record.
    pub prov: Provenance,
}

impl Observation {
    /// A complete change that needs no phase join.
    pub fn immediate(op: ChangeOp, prov: Provenance) -> Self {
        Observation {
            phase: Phase::Success,
            operation_id: None,
            candidate: Some(op),
            prov,
        }
    }
}

/// An error and its causes on one line, each cause once: SDK and HTTP errors keep the useful
/// part (the status, the service's words) in their sources, not in the top message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}
