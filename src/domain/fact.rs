//! Facts: `(kind, key, value)` where the value is a canonical, access-only projection.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// The plane a fact belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Azure Resource Manager state.
    Azure,
    /// Kubernetes API state.
    Kubernetes,
}

/// Every kind of fact accessdrift tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// Azure role assignment; key `scope|principalId|roleDefinitionGuid`.
    RoleAssignment,
    /// Custom Azure role definition; key its resource id.
    RoleDefinition,
    /// AKS access settings of one managed cluster; key the cluster resource id.
    ClusterSettings,
    /// User-assigned managed identity; key its resource id.
    ManagedIdentity,
    /// Federated identity credential of a managed identity; key its resource id.
    FederatedCredential,
    /// PIM eligibility for an Azure role (standing access waiting to be activated); key
    /// `scope|principalId|roleDefinitionGuid`, as a role assignment's.
    RoleEligibility,
    /// An active PIM activation of an eligibility (time-bound; never part of a baseline); key
    /// `scope|principalId|roleDefinitionGuid`, as the role assignment it makes.
    PimActivation,
    /// Kubernetes ClusterRoleBinding; key `cluster/name`.
    ClusterRoleBinding,
    /// Kubernetes RoleBinding; key `cluster/namespace/name`.
    RoleBinding,
    /// Kubernetes ClusterRole; key `cluster/name`.
    ClusterRole,
    /// Kubernetes Role; key `cluster/namespace/name`.
    Role,
    /// Kubernetes ServiceAccount; key `cluster/namespace/name`.
    ServiceAccount,
}

impl FactKind {
    /// All kinds, in a stable order.
    pub const ALL: [FactKind; 12] = [
        FactKind::RoleAssignment,
        FactKind::RoleDefinition,
        FactKind::ClusterSettings,
        FactKind::ManagedIdentity,
        FactKind::FederatedCredential,
        FactKind::RoleEligibility,
        FactKind::PimActivation,
        FactKind::ClusterRoleBinding,
        FactKind::RoleBinding,
        FactKind::ClusterRole,
        FactKind::Role,
        FactKind::ServiceAccount,
    ];

    /// Stable snake_case name used in the store, exports and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::RoleAssignment => "role_assignment",
            FactKind::RoleDefinition => "role_definition",
            FactKind::ClusterSettings => "cluster_settings",
            FactKind::ManagedIdentity => "managed_identity",
            FactKind::FederatedCredential => "federated_credential",
            FactKind::RoleEligibility => "role_eligibility",
            FactKind::PimActivation => "pim_activation",
            FactKind::ClusterRoleBinding => "cluster_role_binding",
            FactKind::RoleBinding => "role_binding",
            FactKind::ClusterRole => "cluster_role",
            FactKind::Role => "role",
            FactKind::ServiceAccount => "service_account",
        }
    }

    /// False for state that comes and goes by itself (a PIM activation ends at its end time):
    /// it is judged by rules, never approved into a baseline, never drift.
    pub fn is_baselined(self) -> bool {
        self != FactKind::PimActivation
    }

    /// Which plane the kind lives in.
    pub fn plane(self) -> Plane {
        match self {
            FactKind::RoleAssignment
            | FactKind::RoleDefinition
            | FactKind::ClusterSettings
            | FactKind::ManagedIdentity
            | FactKind::FederatedCredential
            | FactKind::RoleEligibility
            | FactKind::PimActivation => Plane::Azure,
            _ => Plane::Kubernetes,
        }
    }
}

impl fmt::Display for FactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown fact kind name.
#[derive(Debug, thiserror::Error)]
#[error("unknown fact kind {0:?}: expected one of role_assignment, role_definition, cluster_settings, managed_identity, federated_credential, role_eligibility, pim_activation, cluster_role_binding, role_binding, cluster_role, role, service_account")]
pub struct UnknownFactKind(pub String);

impl FromStr for FactKind {
    type Err = UnknownFactKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FactKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownFactKind(s.to_string()))
    }
}

/// One piece of observed access state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// What it is.
    pub kind: FactKind,
    /// Semantic key: equal keys are the same grant / object.
    pub key: String,
    /// Canonical projection: only access-relevant fields, sorted, ids lower-cased.
    pub value: Value,
    /// The Azure resource id when it differs from the key (role assignments), to resolve deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// How a delete names its fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactRef {
    /// By semantic key.
    Key(String),
    /// By Azure resource id (a role assignment delete carries only its id).
    ResourceId(String),
}

/// Canonical form of an Azure id: lower-case, trimmed, no trailing slash, inner spaces dropped,
/// `/subscription/` repaired to `/subscriptions/`.
pub fn canonical_id(id: &str) -> String {
    let mut s: String = id
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    if let Some(rest) = s.strip_prefix("/subscription/") {
        s = format!("/subscriptions/{rest}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_id_table() {
        for (input, want) in [
            (
                "/SUBSCRIPTIONS/ABC/RESOURCEGROUPS/RG",
                "/subscriptions/abc/resourcegroups/rg",
            ),
            ("/subscriptions/abc/", "/subscriptions/abc"),
            (
                "/subscription/abc/providers/x",
                "/subscriptions/abc/providers/x",
            ),
            ("/a/storageAccounts/       msft", "/a/storageaccounts/msft"),
            ("  /TeNaNtS/x/PrOvIdErS/y ", "/tenants/x/providers/y"),
        ] {
            assert_eq!(canonical_id(input), want, "{input}");
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in FactKind::ALL {
            assert_eq!(k.as_str().parse::<FactKind>().unwrap(), k);
        }
        assert!("roleassignment".parse::<FactKind>().is_err());
    }
}
