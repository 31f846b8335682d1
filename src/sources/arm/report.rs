//! What a snapshot lists ([`Part`]) and what it did ([`PartReport`], [`SnapshotReport`]):
//! the figures `inventory` prints, readiness names and metrics count.

use super::ArmError;
use crate::domain::FactKind;
use crate::ingest::Stats;
use std::time::Duration;

/// One thing a snapshot lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Role assignments visible at a subscription (its own and inherited ones).
    RoleAssignments(String),
    /// Custom role definitions of a subscription.
    RoleDefinitions(String),
    /// User-assigned managed identities of a subscription.
    ManagedIdentities(String),
    /// Federated credentials of every identity of a subscription.
    FederatedCredentials(String),
    /// PIM role eligibilities visible at a subscription (its own and inherited ones).
    RoleEligibilities(String),
    /// Active PIM activations visible at a subscription.
    Activations(String),
    /// One watched cluster's access settings.
    Cluster {
        /// `[[clusters]] name`.
        name: String,
        /// Its resource id (lower-case).
        resource_id: String,
    },
}

impl Part {
    /// The fact kind it lists.
    pub fn kind(&self) -> FactKind {
        match self {
            Part::RoleAssignments(_) => FactKind::RoleAssignment,
            Part::RoleDefinitions(_) => FactKind::RoleDefinition,
            Part::ManagedIdentities(_) => FactKind::ManagedIdentity,
            Part::FederatedCredentials(_) => FactKind::FederatedCredential,
            Part::RoleEligibilities(_) => FactKind::RoleEligibility,
            Part::Activations(_) => FactKind::PimActivation,
            Part::Cluster { .. } => FactKind::ClusterSettings,
        }
    }

    /// Low-cardinality name for metrics (`role_assignments`, `cluster`, …).
    pub fn metric(&self) -> &'static str {
        match self {
            Part::RoleAssignments(_) => "role_assignments",
            Part::RoleDefinitions(_) => "role_definitions",
            Part::ManagedIdentities(_) => "managed_identities",
            Part::FederatedCredentials(_) => "federated_credentials",
            Part::RoleEligibilities(_) => "role_eligibilities",
            Part::Activations(_) => "pim_activations",
            Part::Cluster { .. } => "cluster",
        }
    }

    /// Its name within its subscription (`role assignments`, `cluster aks-prod`).
    pub fn short(&self) -> String {
        match self {
            Part::RoleAssignments(_) => "role assignments".into(),
            Part::RoleDefinitions(_) => "custom role definitions".into(),
            Part::ManagedIdentities(_) => "managed identities".into(),
            Part::FederatedCredentials(_) => "federated credentials".into(),
            Part::RoleEligibilities(_) => "PIM eligibilities".into(),
            Part::Activations(_) => "PIM activations".into(),
            Part::Cluster { name, .. } => format!("cluster {name}"),
        }
    }

    /// The subscription it belongs to.
    pub fn subscription(&self) -> &str {
        match self {
            Part::RoleAssignments(s)
            | Part::RoleDefinitions(s)
            | Part::ManagedIdentities(s)
            | Part::FederatedCredentials(s)
            | Part::RoleEligibilities(s)
            | Part::Activations(s) => s,
            Part::Cluster { resource_id, .. } => resource_id
                .strip_prefix("/subscriptions/")
                .and_then(|r| r.split('/').next())
                .unwrap_or(""),
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::RoleAssignments(s) => write!(f, "role assignments of subscription {s}"),
            Part::RoleDefinitions(s) => write!(f, "custom role definitions of subscription {s}"),
            Part::ManagedIdentities(s) => write!(f, "managed identities of subscription {s}"),
            Part::FederatedCredentials(s) => {
                write!(f, "federated credentials of subscription {s}")
            }
            Part::RoleEligibilities(s) => write!(f, "PIM role eligibilities of subscription {s}"),
            Part::Activations(s) => write!(f, "PIM activations of subscription {s}"),
            Part::Cluster { name, .. } => write!(f, "cluster {name}"),
        }
    }
}

/// How a part's listing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// Every page read: what it did not list was deleted.
    Completed,
    /// A request failed after its retries: what was listed was applied, nothing deleted.
    Failed {
        /// What failed, for people.
        error: String,
        /// The credentials or a permission were refused (401/403).
        refused: bool,
        /// The token itself was refused or could not be had: every other part would fail
        /// the same way, so the snapshot reads no further.
        token: bool,
    },
}

/// What one part did.
#[derive(Debug, Clone)]
pub struct PartReport {
    /// The part.
    pub part: Part,
    /// Objects listed.
    pub listed: usize,
    /// How the listing ended.
    pub outcome: PartOutcome,
    /// What its commits did to facts and findings.
    pub stats: Stats,
}

/// What one snapshot did.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    /// When the listing started: every observation's time.
    pub at: crate::domain::EventTime,
    /// Each part, in listing order.
    pub parts: Vec<PartReport>,
    /// ARM requests sent (retries included).
    pub requests: u64,
    /// Wall-clock time.
    pub took: Duration,
}

impl SnapshotReport {
    /// True when every part completed.
    pub fn complete(&self) -> bool {
        self.parts
            .iter()
            .all(|p| p.outcome == PartOutcome::Completed)
    }

    /// The parts that failed, with why: `role assignments of subscription … (page 3: …)`.
    pub fn failures(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter_map(|p| match &p.outcome {
                PartOutcome::Failed { error, .. } => Some(format!("{}: {error}", p.part)),
                PartOutcome::Completed => None,
            })
            .collect()
    }
}

pub(super) fn failed(error: String, refused: bool) -> PartOutcome {
    PartOutcome::Failed {
        error,
        refused,
        token: false,
    }
}

/// The outcome of a part that `e` ended, its message after `prefix`.
pub(super) fn failed_by(e: &ArmError, prefix: String) -> PartOutcome {
    PartOutcome::Failed {
        error: format!("{prefix}{}", crate::domain::error_chain(e)),
        refused: e.refused(),
        token: e.token_refused(),
    }
}

pub(super) fn log_part(r: &PartReport) {
    let outcome = match &r.outcome {
        PartOutcome::Completed => "completed",
        PartOutcome::Failed { .. } => "failed",
    };
    crate::metrics::global().inventory_part(r.part.metric(), outcome);
    match &r.outcome {
        PartOutcome::Completed => tracing::info!(
            part = %r.part,
            listed = r.listed,
            added = r.stats.added,
            changed = r.stats.changed,
            removed = r.stats.removed,
            "inventory part listed"
        ),
        PartOutcome::Failed { error, refused, .. } => tracing::error!(
            part = %r.part,
            listed = r.listed,
            refused,
            error = %error,
            "inventory part incomplete: what it listed was applied, nothing was deleted"
        ),
    }
}
