//! Cross-plane rules: a trust or a grant in one plane that turns into power in the other.

use super::identities::{identity_of, service_account_subject};
use super::kubernetes::bound_role;
use super::{describe_scope, last_segment, s, Context, FactView, Field, Hit};
use crate::domain::{FactKind, RoleTier};
use serde_json::{json, Value};

/// `Role on scope` lines for a principal's Azure role assignments, names resolved.
fn roles_of<V: FactView>(
    principal: &str,
    ctx: &Context<'_>,
    view: &V,
    only_privileged: bool,
) -> Result<Vec<String>, V::Error> {
    let mut out: Vec<String> = view
        .find(FactKind::RoleAssignment, Field::PrincipalId, principal)?
        .into_iter()
        .filter(|(_, a)| {
            !only_privileged
                || ctx.catalog.role_tier(s(a, "/role_definition_id")) == RoleTier::Privileged
        })
        .map(|(_, a)| {
            format!(
                "{} on {}",
                ctx.catalog.role_name(s(&a, "/role_definition_id")),
                describe_scope(s(&a, "/scope"))
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Cluster-scoped bindings in `cluster` that make `ns/sa` cluster-admin.
fn admin_bindings<V: FactView>(
    cluster: &str,
    ns: &str,
    sa: &str,
    view: &V,
) -> Result<Vec<String>, V::Error> {
    let mut out = Vec::new();
    for (key, b) in view.under(FactKind::ClusterRoleBinding, &format!("{cluster}/"))? {
        let names_sa = b
            .get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|subs| {
                subs.iter().any(|x| {
                    s(x, "/kind") == "ServiceAccount"
                        && s(x, "/name") == sa
                        && s(x, "/namespace") == ns
                })
            });
        if names_sa && bound_role(&key, &b, view)?.1.admin {
            out.push(key);
        }
    }
    Ok(out)
}

pub(super) fn check_credential<V: FactView>(
    key: &str,
    v: &Value,
    ctx: &Context<'_>,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    let Some(cluster) = ctx.trusting_cluster(view, s(v, "/issuer"))? else {
        return Ok(());
    };
    let Some((ns, sa)) = service_account_subject(s(v, "/subject")) else {
        return Ok(());
    };
    let bindings = admin_bindings(&cluster.name, ns, sa, view)?;
    if bindings.is_empty() {
        return Ok(());
    }
    let identity = identity_of(key);
    let principal = view
        .get(FactKind::ManagedIdentity, identity)?
        .and_then(|mi| {
            mi.get("principal_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let azure_roles = match &principal {
        Some(p) => roles_of(p, ctx, view, false)?,
        None => Vec::new(),
    };
    let holding = if azure_roles.is_empty() {
        String::new()
    } else {
        format!(" and holds {}", azure_roles.join(", "))
    };
    out.push(Hit {
        rule: "X-FIC-TO-CLUSTER-ADMIN",
        title: format!(
            "Service account {ns}/{sa} in cluster {} is cluster-admin (via {}) and is trusted by identity {}{holding}",
            cluster.name,
            bindings.iter().map(|b| last_segment(b)).collect::<Vec<_>>().join(", "),
            last_segment(identity),
        ),
        details: json!({
            "credential": key,
            "identity": identity,
            "identity_principal_id": principal,
            "cluster": cluster.name,
            "service_account": format!("{}/{ns}/{sa}", cluster.name),
            "bindings": bindings,
            "azure_roles": azure_roles,
        }),
    });
    Ok(())
}

pub(super) fn check_service_account<V: FactView>(
    key: &str,
    v: &Value,
    ctx: &Context<'_>,
    view: &V,
    out: &mut Vec<Hit>,
) -> Result<(), V::Error> {
    if v.get("platform_managed").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let Some(client) = v
        .get("workload_identity_client_id")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        return Ok(());
    };
    for (mi_key, mi) in view.find(FactKind::ManagedIdentity, Field::ClientId, client)? {
        let principal = s(&mi, "/principal_id");
        let privileged = roles_of(principal, ctx, view, true)?;
        if privileged.is_empty() {
            continue;
        }
        out.push(Hit {
            rule: "X-WORKLOAD-IDENTITY-PRIVILEGED",
            title: format!(
                "Service account {key} uses identity {} which holds {}",
                last_segment(&mi_key),
                privileged.join(", ")
            ),
            details: json!({
                "service_account": key,
                "identity": mi_key,
                "client_id": client,
                "principal_id": principal,
                "privileged_roles": privileged,
            }),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::domain::FactKind::*;

    const MI: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/payments";
    const MI_OID: &str = "eeeeeeee-0000-4000-8000-00000000000e";
    const CLIENT: &str = "c11e0000-0000-4000-8000-0000000000c1";

    fn fic_key() -> String {
        format!("{MI}/federatedidentitycredentials/payments-api")
    }
    fn fic() -> Value {
        json!({"issuer": ISSUER, "subject": "system:serviceaccount:payments:api", "audiences": ["api://AzureADTokenExchange"]})
    }
    fn admin_binding(platform: bool) -> Value {
        json!({"role_ref": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "payments"}], "platform_managed": platform})
    }
    fn sa(client: Option<&str>, platform: bool) -> Value {
        json!({"workload_identity_client_id": client, "workload_identity_tenant_id": null, "automount_token": null, "platform_managed": platform})
    }

    /// The credential fires once both planes say so, whichever side is in the view.
    #[test]
    fn fic_to_cluster_admin_needs_both_sides() {
        let with = |binding: Option<Value>, fic_present: bool| {
            let mut m = Mem::default().with(ClusterSettings, CLUSTER, hardened_cluster());
            if let Some(b) = binding {
                m.put(ClusterRoleBinding, "prod/payments-api-admin", b);
            }
            if fic_present {
                m.put(FederatedCredential, &fic_key(), fic());
            }
            m
        };
        let m = with(Some(admin_binding(false)), true);
        assert!(fired(
            &eval(&m, FederatedCredential, &fic_key()),
            "X-FIC-TO-CLUSTER-ADMIN"
        ));
        // near miss: the service account is bound to view only
        let mut view_binding = admin_binding(false);
        view_binding["role_ref"]["name"] = json!("view");
        let m = with(Some(view_binding), true);
        assert!(!fired(
            &eval(&m, FederatedCredential, &fic_key()),
            "X-FIC-TO-CLUSTER-ADMIN"
        ));
        // the binding being platform-managed does not make the service account less admin
        let m = with(Some(admin_binding(true)), true);
        assert!(fired(
            &eval(&m, FederatedCredential, &fic_key()),
            "X-FIC-TO-CLUSTER-ADMIN"
        ));
        // a credential of another issuer is not trusted by the cluster
        let mut m = with(Some(admin_binding(false)), false);
        m.put(FederatedCredential, &fic_key(), json!({"issuer": "https://token.actions.githubusercontent.com", "subject": "system:serviceaccount:payments:api", "audiences": []}));
        assert!(!fired(
            &eval(&m, FederatedCredential, &fic_key()),
            "X-FIC-TO-CLUSTER-ADMIN"
        ));
    }

    #[test]
    fn workload_identity_privileged_table() {
        for (role, client, platform, want) in [
            (OWNER, Some(CLIENT), false, true),
            (CONTRIBUTOR, Some(CLIENT), false, true),
            (READER, Some(CLIENT), false, false),
            (
                OWNER,
                Some("00000000-0000-4000-8000-0000000000ff"),
                false,
                false,
            ),
            (OWNER, None, false, false),
            (OWNER, Some(CLIENT), true, false),
        ] {
            let (ra_key, ra) = assignment(SUB, MI_OID, role);
            let mem = Mem::default()
                .with(
                    ManagedIdentity,
                    MI,
                    json!({"principal_id": MI_OID, "client_id": CLIENT, "tenant_id": "t"}),
                )
                .with(RoleAssignment, &ra_key, ra)
                .with(ServiceAccount, "prod/payments/api", sa(client, platform));
            assert_eq!(
                fired(
                    &eval(&mem, ServiceAccount, "prod/payments/api"),
                    "X-WORKLOAD-IDENTITY-PRIVILEGED"
                ),
                want,
                "{role} {client:?} platform={platform}"
            );
        }
    }
}
