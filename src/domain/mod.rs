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
}

impl Actor {
    /// True when nothing is known about the caller.
    pub fn is_empty(&self) -> bool {
        self.upn.is_none() && self.object_id.is_none() && self.app_id.is_none() && self.ip.is_none()
    }

    /// The most human identifier known: UPN, then object id, then app id.
    pub fn principal(&self) -> Option<&str> {
        self.upn
            .as_deref()
            .or(self.object_id.as_deref())
            .or(self.app_id.as_deref())
    }

    /// One line for people: `alice@contoso.com (oid …, app …) from 203.0.113.10`.
    pub fn describe(&self) -> String {
        let mut s = self.principal().unwrap_or("unknown caller").to_string();
        let mut extra = Vec::new();
        if self.upn.is_some() {
            if let Some(o) = &self.object_id {
                extra.push(format!("oid {o}"));
            }
        }
        if self.upn.is_some() || self.object_id.is_some() {
            if let Some(a) = &self.app_id {
                extra.push(format!("app {a}"));
            }
        }
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(", ")));
        }
        if let Some(ip) = &self.ip {
            s.push_str(&format!(" from {ip}"));
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
