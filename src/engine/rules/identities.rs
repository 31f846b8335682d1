//! Identity rules: what the cluster's own identities hold, and whom federated credentials trust.

use super::{describe_scope, last_segment, s, Context, FactView, Field, Hit};
use crate::domain::FactKind;
use serde_json::{json, Value};

const ACR_PULL: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
const NETWORK_CONTRIBUTOR: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";
const MANAGED_IDENTITY_OPERATOR: &str = "f1a07417-d97a-45cb-824c-7a7467783830";
const MONITORING_METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";

/// The principal ids acting as a cluster's control plane: its system-assigned identity and
/// the principals of its user-assigned identities (read from their `managed_identity` facts).
pub fn control_plane_principals<V: FactView>(
    settings: &Value,
    view: &V,
) -> Result<Vec<String>, V::Error> {
    let mut out = Vec::new();
    if let Some(p) = settings
        .get("identity_principal_id")
        .and_then(Value::as_str)
    {
        out.push(p.to_string());
    }
    for id in super::list(settings, "user_assigned_identities") {
        if let Some(mi) = view.get(FactKind::ManagedIdentity, id)? {
            if let Some(p) = mi.get("principal_id").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
    }
    Ok(out)
}

pub(super) fn check_assignment<V: FactView>(
    v: &Value,
    ctx: &Context<'_>,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    let principal = s(v, "/principal_id");
    let role = s(v, "/role_definition_id");
    let scope = s(v, "/scope");
    if principal.is_empty() {
        return Ok(());
    }
    let role_name = ctx.catalog.role_name(role);
    // The clusters this principal could be an identity of, by indexed lookups.
    let mut candidates = view.find(FactKind::ClusterSettings, Field::KubeletObjectId, principal)?;
    candidates.extend(view.find(
        FactKind::ClusterSettings,
        Field::IdentityPrincipalId,
        principal,
    )?);
    for (mi, _) in view.find(FactKind::ManagedIdentity, Field::PrincipalId, principal)? {
        candidates.extend(view.containing(FactKind::ClusterSettings, &format!("\"{mi}\""))?);
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    candidates.dedup_by(|a, b| a.0 == b.0);
    for (cluster, settings) in candidates {
        let name = last_segment(&cluster);
        if s(&settings, "/kubelet_identity/object_id") == principal {
            let allowed = (role == ACR_PULL
                && scope.contains("/providers/microsoft.containerregistry/registries/"))
                || (ctx.allowed_roles)("ID-KUBELET-EXCESS-ROLES")
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(role));
            if !allowed {
                out.push(Hit {
                    rule: "ID-KUBELET-EXCESS-ROLES",
                    title: format!(
                        "Kubelet identity of cluster {name} holds {role_name} on {}",
                        describe_scope(scope)
                    ),
                    details: json!({"cluster": cluster, "principal_id": principal, "role": role_name, "role_definition_id": role, "scope": scope}),
                });
            }
        }
        if control_plane_principals(&settings, view)?
            .iter()
            .any(|p| p == principal)
        {
            let kubelet = s(&settings, "/kubelet_identity/resource_id");
            let expected = match role {
                NETWORK_CONTRIBUTOR => {
                    scope.contains("/providers/microsoft.network/virtualnetworks/")
                }
                MANAGED_IDENTITY_OPERATOR => !kubelet.is_empty() && scope == kubelet,
                MONITORING_METRICS_PUBLISHER => true,
                _ => false,
            } || (ctx.allowed_roles)("ID-CONTROL-PLANE-EXCESS-ROLES")
                .iter()
                .any(|g| g.eq_ignore_ascii_case(role));
            if !expected {
                out.push(Hit {
                    rule: "ID-CONTROL-PLANE-EXCESS-ROLES",
                    title: format!(
                        "Control-plane identity of cluster {name} holds {role_name} on {}",
                        describe_scope(scope)
                    ),
                    details: json!({"cluster": cluster, "principal_id": principal, "role": role_name, "role_definition_id": role, "scope": scope}),
                });
            }
        }
    }
    Ok(())
}

/// `system:serviceaccount:NS:NAME` → `(NS, NAME)`.
pub fn service_account_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.trim().strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

pub(super) fn check_credential<V: FactView>(
    key: &str,
    v: &Value,
    ctx: &Context<'_>,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    let name = last_segment(key);
    let identity = identity_of(key);
    match ctx.trusting_cluster(view, s(v, "/issuer"))? {
        None => {
            // With no issuer known yet, "foreign" cannot be told from "not synced yet".
            if !ctx.issuers_known(view)? {
                return Ok(());
            }
            out.push(Hit {
                rule: "ID-FIC-FOREIGN-ISSUER",
                title: format!(
                    "Federated credential {name} of identity {} trusts issuer {} (not a watched cluster)",
                    last_segment(identity),
                    s(v, "/issuer")
                ),
                details: json!({"identity": identity, "issuer": s(v, "/issuer"), "subject": s(v, "/subject")}),
            });
        }
        Some(cluster) => {
            let Some((ns, sa)) = service_account_subject(s(v, "/subject")) else {
                return Ok(());
            };
            // Absence means something only once the cluster's service accounts are in.
            let synced = view.any_under(FactKind::ServiceAccount, &format!("{}/", cluster.name))?;
            let sa_key = format!("{}/{ns}/{sa}", cluster.name);
            if synced && view.get(FactKind::ServiceAccount, &sa_key)?.is_none() {
                out.push(Hit {
                    rule: "ID-FIC-ORPHAN-SUBJECT",
                    title: format!(
                        "Federated credential {name} of identity {} trusts service account {ns}/{sa}, which does not exist in cluster {}",
                        last_segment(identity),
                        cluster.name
                    ),
                    details: json!({"identity": identity, "cluster": cluster.name, "service_account": sa_key, "subject": s(v, "/subject")}),
                });
            }
        }
    }
    Ok(())
}

/// The managed identity a federated credential belongs to (its key minus the child segment).
pub fn identity_of(fic_key: &str) -> &str {
    fic_key
        .find("/federatedidentitycredentials/")
        .map_or(fic_key, |i| &fic_key[..i])
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::domain::FactKind::*;

    const MI: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/payments";

    fn base() -> Mem {
        Mem::default().with(ClusterSettings, CLUSTER, hardened_cluster())
    }

    #[test]
    fn kubelet_and_control_plane_roles_table() {
        let acr = format!(
            "{SUB}/resourcegroups/rg/providers/microsoft.containerregistry/registries/acr1"
        );
        let vnet = format!(
            "{SUB}/resourcegroups/rg/providers/microsoft.network/virtualnetworks/vnet/subnets/aks"
        );
        for (principal, scope, role, rule, want) in [
            (
                KUBELET_OID,
                acr.as_str(),
                ACR_PULL,
                "ID-KUBELET-EXCESS-ROLES",
                false,
            ),
            (
                KUBELET_OID,
                acr.as_str(),
                "8311e382-0749-4cb8-b61a-304f252e45ec",
                "ID-KUBELET-EXCESS-ROLES",
                true,
            ),
            (KUBELET_OID, SUB, ACR_PULL, "ID-KUBELET-EXCESS-ROLES", true),
            (
                KUBELET_OID,
                SUB,
                CONTRIBUTOR,
                "ID-KUBELET-EXCESS-ROLES",
                true,
            ),
            // near miss: another principal with the same grant
            (
                "99999999-0000-4000-8000-000000000009",
                SUB,
                CONTRIBUTOR,
                "ID-KUBELET-EXCESS-ROLES",
                false,
            ),
            (
                CP_OID,
                vnet.as_str(),
                NETWORK_CONTRIBUTOR,
                "ID-CONTROL-PLANE-EXCESS-ROLES",
                false,
            ),
            (
                CP_OID,
                KUBELET_ID,
                MANAGED_IDENTITY_OPERATOR,
                "ID-CONTROL-PLANE-EXCESS-ROLES",
                false,
            ),
            (
                CP_OID,
                SUB,
                MONITORING_METRICS_PUBLISHER,
                "ID-CONTROL-PLANE-EXCESS-ROLES",
                false,
            ),
            (
                CP_OID,
                SUB,
                NETWORK_CONTRIBUTOR,
                "ID-CONTROL-PLANE-EXCESS-ROLES",
                true,
            ),
            (
                CP_OID,
                SUB,
                CONTRIBUTOR,
                "ID-CONTROL-PLANE-EXCESS-ROLES",
                true,
            ),
        ] {
            let (key, v) = assignment(scope, principal, role);
            let mem = base().with(RoleAssignment, &key, v);
            assert_eq!(
                fired(&eval(&mem, RoleAssignment, &key), rule),
                want,
                "{rule}: {role} at {scope} for {principal}"
            );
        }
    }

    #[test]
    fn user_assigned_control_plane_identity_is_joined_through_its_identity_fact() {
        let mut settings = hardened_cluster();
        settings["identity_principal_id"] = Value::Null;
        settings["user_assigned_identities"] = json!([MI]);
        let (key, v) = assignment(SUB, "dddddddd-0000-4000-8000-00000000000d", CONTRIBUTOR);
        let mut mem = Mem::default()
            .with(ClusterSettings, CLUSTER, settings)
            .with(RoleAssignment, &key, v);
        assert!(!fired(
            &eval(&mem, RoleAssignment, &key),
            "ID-CONTROL-PLANE-EXCESS-ROLES"
        ));
        mem.put(ManagedIdentity, MI, json!({"principal_id": "dddddddd-0000-4000-8000-00000000000d", "client_id": "c", "tenant_id": "t"}));
        assert!(fired(
            &eval(&mem, RoleAssignment, &key),
            "ID-CONTROL-PLANE-EXCESS-ROLES"
        ));
    }

    #[test]
    fn federated_credential_table() {
        let fic_key = format!("{MI}/federatedidentitycredentials/payments-api");
        let fic = |iss: &str, sub: &str| json!({"issuer": iss, "subject": sub, "audiences": ["api://AzureADTokenExchange"]});
        let sa = json!({"workload_identity_client_id": null, "workload_identity_tenant_id": null, "automount_token": null, "platform_managed": false});
        for (issuer, subject, with_sa, synced, rule, want) in [
            (
                "https://token.actions.githubusercontent.com",
                "repo:x/y:ref:refs/heads/main",
                false,
                true,
                "ID-FIC-FOREIGN-ISSUER",
                true,
            ),
            (
                ISSUER,
                "system:serviceaccount:payments:api",
                true,
                true,
                "ID-FIC-FOREIGN-ISSUER",
                false,
            ),
            // the trailing slash AKS prints is not a different issuer
            (
                "https://westeurope.oic.prod-aks.azure.com/tenant/aks-issuer/",
                "system:serviceaccount:payments:api",
                true,
                true,
                "ID-FIC-FOREIGN-ISSUER",
                false,
            ),
            (
                ISSUER,
                "system:serviceaccount:payments:api",
                false,
                true,
                "ID-FIC-ORPHAN-SUBJECT",
                true,
            ),
            (
                ISSUER,
                "system:serviceaccount:payments:api",
                true,
                true,
                "ID-FIC-ORPHAN-SUBJECT",
                false,
            ),
            // before the cluster's service accounts are synced, absence proves nothing
            (
                ISSUER,
                "system:serviceaccount:payments:api",
                false,
                false,
                "ID-FIC-ORPHAN-SUBJECT",
                false,
            ),
        ] {
            let mut mem = base().with(FederatedCredential, &fic_key, fic(issuer, subject));
            if with_sa {
                mem.put(ServiceAccount, "prod/payments/api", sa.clone());
            }
            if synced {
                mem.put(ServiceAccount, "prod/kube-system/default", sa.clone());
            }
            assert_eq!(
                fired(&eval(&mem, FederatedCredential, &fic_key), rule),
                want,
                "{rule}: {issuer} {subject} sa={with_sa} synced={synced}"
            );
        }
    }
}
