//! The rules catalogue: what is dangerous whether or not it was approved.
//!
//! Pure: a rule reads the subject fact and, for joins, other facts through [`FactView`]; the
//! pipeline supplies a store-backed view inside the batch transaction, tests an in-memory one.
//! [`evaluate`] says which rules hold for one subject; [`judge`] turns that into a finding
//! transition.

mod azure;
mod catalogue;
mod cluster;
mod cross;
mod identities;
mod judge;
mod kubernetes;

pub use catalogue::CATALOGUE;
pub use identities::control_plane_principals;
pub use judge::{judge, Cause, Gate};

use super::Catalog;
use crate::domain::{canonical_id, id, FactKind, Severity};
use serde::Serialize;
use serde_json::Value;

/// The catalogue's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// AKS access settings of a cluster.
    ClusterSettings,
    /// Things done (credential listings, command invoke).
    Activities,
    /// Azure role assignments and definitions.
    AzureGrants,
    /// The cluster's own identities and federated credentials.
    Identities,
    /// Kubernetes RBAC objects.
    Kubernetes,
    /// Joins of the Azure and the Kubernetes plane.
    CrossPlane,
}

impl Group {
    /// Heading for people.
    pub fn label(self) -> &'static str {
        match self {
            Group::ClusterSettings => "cluster settings",
            Group::Activities => "activities",
            Group::AzureGrants => "azure grants",
            Group::Identities => "identities",
            Group::Kubernetes => "kubernetes",
            Group::CrossPlane => "cross-plane",
        }
    }
}

/// One rule's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// Stable id (`AKS-LOCAL-ACCOUNTS`): a contract.
    pub id: &'static str,
    /// What holds, in a few words.
    pub title: &'static str,
    /// Default severity; `[rules.ID] severity` replaces it.
    pub severity: Severity,
    /// Section of the catalogue.
    pub group: Group,
    /// Fact kinds the finding is about (empty for activity rules).
    pub subjects: &'static [FactKind],
    /// Other fact kinds the rule reads: a change of one re-judges the rule's findings.
    pub joins: &'static [FactKind],
    /// Why it matters.
    pub rationale: &'static str,
    /// The command or setting that fixes it.
    pub remediation: &'static str,
    /// Public documentation.
    pub references: &'static [&'static str],
}

/// The rule with this id (exact, upper-case).
pub fn rule(id: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.id == id)
}

/// Rules whose findings are about facts of `kind`.
pub fn subject_rules(kind: FactKind) -> impl Iterator<Item = &'static Rule> {
    CATALOGUE.iter().filter(move |r| r.subjects.contains(&kind))
}

/// Rules that read facts of `kind` besides their subject (joins).
pub fn joining_rules(kind: FactKind) -> impl Iterator<Item = &'static Rule> {
    CATALOGUE.iter().filter(move |r| r.joins.contains(&kind))
}

/// The policy finding id of a rule on a subject key: the same on every machine and run.
pub fn finding_id(rule: &str, subject_key: &str) -> String {
    id::stable_id(&["policy", rule, subject_key])
}

/// A rule that holds for a subject, with what makes it hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Rule id.
    pub rule: &'static str,
    /// One line for people, names resolved ("Owner on subscription X for principal Y").
    pub title: String,
    /// The subject's relevant fields and the joined facts that make the rule hold.
    pub details: Value,
}

/// A cluster the rules treat as watched: configured, or observed through its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedCluster {
    /// Name used in Kubernetes fact keys.
    pub name: String,
    /// Canonical ARM resource id.
    pub resource_id: String,
    /// OIDC issuer URL, without a trailing slash, when known.
    pub oidc_issuer: Option<String>,
}

/// What rules need besides facts: role names, the configured clusters and per-rule allow-lists.
pub struct Context<'a> {
    /// Role names and tiers.
    pub catalog: &'a dyn Catalog,
    /// `[[clusters]]` from the configuration.
    pub configured: &'a [crate::config::ClusterConfig],
    /// Extra allowed role GUIDs per rule id (`[rules.ID] allowed_roles`).
    pub allowed_roles: &'a dyn Fn(&str) -> Vec<String>,
}

/// Value fields the rules look facts up by. Each is indexed for the kinds that use it
/// (store migration 3), so a join costs a lookup, not a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `principal_id` of role assignments and managed identities.
    PrincipalId,
    /// `client_id` of managed identities.
    ClientId,
    /// `kubelet_identity.object_id` of cluster settings.
    KubeletObjectId,
    /// `identity_principal_id` of cluster settings (system-assigned control plane).
    IdentityPrincipalId,
    /// `oidc_issuer_url` of cluster settings.
    OidcIssuerUrl,
    /// `workload_identity_client_id` of service accounts.
    WorkloadIdentityClientId,
    /// `subject` of federated credentials.
    Subject,
    /// `role_ref.name` of bindings.
    RoleRefName,
}

impl Field {
    /// SQLite JSON path.
    pub fn path(self) -> &'static str {
        match self {
            Field::PrincipalId => "$.principal_id",
            Field::ClientId => "$.client_id",
            Field::KubeletObjectId => "$.kubelet_identity.object_id",
            Field::IdentityPrincipalId => "$.identity_principal_id",
            Field::OidcIssuerUrl => "$.oidc_issuer_url",
            Field::WorkloadIdentityClientId => "$.workload_identity_client_id",
            Field::Subject => "$.subject",
            Field::RoleRefName => "$.role_ref.name",
        }
    }

    /// The same field as a JSON pointer.
    pub fn pointer(self) -> String {
        self.path()[1..].replace('.', "/")
    }
}

/// Read access to observed facts (deleted facts are absent).
pub trait FactView {
    /// The failure of a read.
    type Error;
    /// One fact's value.
    fn get(&self, kind: FactKind, key: &str) -> Result<Option<Value>, Self::Error>;
    /// Every fact of a kind whose key starts with `prefix`.
    fn under(&self, kind: FactKind, prefix: &str) -> Result<Vec<(String, Value)>, Self::Error>;
    /// The keys of the facts of a kind that start with `prefix`.
    fn keys_under(&self, kind: FactKind, prefix: &str) -> Result<Vec<String>, Self::Error>;
    /// Whether any fact of a kind has a key starting with `prefix`.
    fn any_under(&self, kind: FactKind, prefix: &str) -> Result<bool, Self::Error>;
    /// Facts of a kind whose `field` equals `text`.
    fn find(
        &self,
        kind: FactKind,
        field: Field,
        text: &str,
    ) -> Result<Vec<(String, Value)>, Self::Error>;
    /// Whether any fact of a kind has `field` set.
    fn any_with(&self, kind: FactKind, field: Field) -> Result<bool, Self::Error>;
    /// Facts of a kind whose value text contains `needle` (callers re-check precisely).
    fn containing(&self, kind: FactKind, needle: &str)
        -> Result<Vec<(String, Value)>, Self::Error>;
}

impl Context<'_> {
    /// The name Kubernetes facts of a cluster carry: the configured one, else the ARM name.
    pub fn cluster_name(&self, resource_id: &str) -> String {
        self.configured
            .iter()
            .find(|c| canonical_id(&c.resource_id) == resource_id)
            .map_or_else(|| last_segment(resource_id).to_string(), |c| c.name.clone())
    }

    /// Watched clusters (configured, or observed through their settings) at or below `scope`.
    pub fn clusters_covered<V: FactView>(
        &self,
        view: &V,
        scope: &str,
    ) -> Result<Vec<String>, V::Error> {
        let mut out: Vec<String> = self
            .configured
            .iter()
            .map(|c| canonical_id(&c.resource_id))
            .filter(|c| azure::at_or_above(scope, c))
            .collect();
        let prefix = if scope == "/" || scope.contains("/managementgroups/") {
            ""
        } else {
            scope
        };
        for key in view.keys_under(FactKind::ClusterSettings, prefix)? {
            if azure::at_or_above(scope, &key) && !out.contains(&key) {
                out.push(key);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The watched cluster whose OIDC issuer is `url`, if any.
    pub fn trusting_cluster<V: FactView>(
        &self,
        view: &V,
        url: &str,
    ) -> Result<Option<WatchedCluster>, V::Error> {
        let want = issuer(url);
        if let Some(c) = self
            .configured
            .iter()
            .find(|c| c.oidc_issuer.as_deref().map(issuer).as_deref() == Some(want.as_str()))
        {
            return Ok(Some(WatchedCluster {
                name: c.name.clone(),
                resource_id: canonical_id(&c.resource_id),
                oidc_issuer: Some(want),
            }));
        }
        // AKS prints the issuer with a trailing slash; look both spellings up.
        for spelling in [want.clone(), format!("{want}/")] {
            if let Some((key, _)) = view
                .find(FactKind::ClusterSettings, Field::OidcIssuerUrl, &spelling)?
                .into_iter()
                .next()
            {
                return Ok(Some(WatchedCluster {
                    name: self.cluster_name(&key),
                    resource_id: key,
                    oidc_issuer: Some(want),
                }));
            }
        }
        Ok(None)
    }

    /// Whether any watched cluster's issuer is known (else "foreign" means nothing yet).
    pub fn issuers_known<V: FactView>(&self, view: &V) -> Result<bool, V::Error> {
        if self.configured.iter().any(|c| c.oidc_issuer.is_some()) {
            return Ok(true);
        }
        view.any_with(FactKind::ClusterSettings, Field::OidcIssuerUrl)
    }
}

/// Issuer URLs compare without their trailing slash (AKS prints one, tokens may not).
pub fn issuer(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The rules that hold for one subject fact. Disabled rules and exceptions are applied
/// later, by [`judge`]'s gate: this says only what is true.
pub fn evaluate<V: FactView>(
    kind: FactKind,
    key: &str,
    value: &Value,
    ctx: &Context<'_>,
    view: &V,
) -> Result<Vec<Hit>, V::Error> {
    let mut hits = Vec::new();
    match kind {
        FactKind::ClusterSettings => cluster::check(key, value, &mut hits),
        FactKind::RoleAssignment => {
            azure::check_assignment(key, value, ctx, view, &mut hits)?;
            identities::check_assignment(value, ctx, view, &mut hits)?;
        }
        FactKind::RoleDefinition => azure::check_definition(key, value, &mut hits),
        FactKind::FederatedCredential => {
            identities::check_credential(key, value, ctx, view, &mut hits)?;
            cross::check_credential(key, value, ctx, view, &mut hits)?;
        }
        FactKind::ClusterRoleBinding | FactKind::RoleBinding => {
            kubernetes::check_binding(kind, key, value, view, &mut hits)?
        }
        FactKind::ClusterRole | FactKind::Role => {
            kubernetes::check_role(kind, key, value, &mut hits)
        }
        FactKind::ServiceAccount => cross::check_service_account(key, value, ctx, view, &mut hits)?,
        // Judged as drift only, for now: the rules about privileged roles above a cluster
        // read role assignments.
        FactKind::PimActivation => azure::check_activation(key, value, ctx, &mut hits),
        FactKind::ManagedIdentity | FactKind::RoleEligibility => {}
    }
    Ok(hits)
}

/// The last `/`-separated segment of a key or resource id.
pub fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// A string field of a value, or `""`.
fn s<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A string list field of a value.
fn list<'v>(v: &'v Value, field: &str) -> Vec<&'v str> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// "subscription X", "resource group X", "cluster X" … for a scope.
pub fn describe_scope(scope: &str) -> String {
    let segs: Vec<&str> = scope.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [""] => return "the tenant root".to_string(),
        ["subscriptions", sub] => return format!("subscription {sub}"),
        ["subscriptions", _, "resourcegroups", rg] => return format!("resource group {rg}"),
        ["providers", "microsoft.management", "managementgroups", mg] => {
            return format!("management group {mg}")
        }
        _ => {}
    }
    if let Some(i) = segs.iter().position(|s| *s == "managedclusters") {
        let cluster = segs.get(i + 1).copied().unwrap_or("?");
        return match segs.get(i + 2..) {
            Some(["namespaces", ns, ..]) => format!("namespace {ns} of cluster {cluster}"),
            _ => format!("cluster {cluster}"),
        };
    }
    const TYPES: &[(&str, &str)] = &[
        ("registries", "registry"),
        ("vaults", "key vault"),
        ("subnets", "subnet"),
        ("virtualnetworks", "virtual network"),
        ("userassignedidentities", "identity"),
        ("storageaccounts", "storage account"),
    ];
    let n = segs.len();
    if n >= 2 {
        let ty = segs[n - 2];
        let label = TYPES
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or(ty.trim_end_matches('s'), |(_, l)| l);
        return format!("{label} {}", segs[n - 1]);
    }
    scope.to_string()
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_match_the_config_contract() {
        let ids: Vec<&str> = CATALOGUE.iter().map(|r| r.id).collect();
        assert_eq!(ids, crate::config::rules::RULE_IDS);
        for r in CATALOGUE {
            assert!(
                !r.rationale.is_empty() && !r.remediation.is_empty(),
                "{}",
                r.id
            );
            assert!(
                r.references.iter().all(|u| u.starts_with("https://")),
                "{}",
                r.id
            );
        }
    }

    #[test]
    fn scopes_read_like_people_write_them() {
        for (scope, want) in [
            ("/subscriptions/abc", "subscription abc"),
            ("/subscriptions/abc/resourcegroups/rg", "resource group rg"),
            (
                "/subscriptions/a/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks",
                "cluster aks",
            ),
            (
                "/subscriptions/a/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks/namespaces/payments",
                "namespace payments of cluster aks",
            ),
            (
                "/subscriptions/a/resourcegroups/rg/providers/microsoft.containerregistry/registries/acr1",
                "registry acr1",
            ),
            ("/", "the tenant root"),
        ] {
            assert_eq!(describe_scope(scope), want);
        }
    }
}
