//! Maps an operation and its ARM body to a change candidate: the canonical fact projections.

use super::fields::{get_ci, normalize_guid, path, text};
use super::prefilter::AzureOp;
use crate::config::roles::role_guid;
use crate::domain::{canonical_id, Activity, ActivityKind, ChangeOp, Fact, FactKind, FactRef};
use serde_json::{json, Map, Value};

/// The change an operation implies, given its resource id and the body the record carries.
/// `None` when a body is needed and absent or unusable (the record is then only a hint).
pub fn candidate(op: AzureOp, resource_id: &str, body: Option<&Value>) -> Option<ChangeOp> {
    let id = canonical_id(resource_id);
    let upsert = |kind, key: String, value, resource_id| {
        Some(ChangeOp::Upsert(Fact {
            kind,
            key,
            value,
            resource_id,
        }))
    };
    let delete = |kind, target| Some(ChangeOp::Delete { kind, target });
    match op {
        AzureOp::RoleAssignmentWrite => {
            let (key, value) = role_assignment(&id, body?)?;
            upsert(FactKind::RoleAssignment, key, value, Some(id))
        }
        // The delete's response body, when logged, names the assignment: its semantic key
        // makes the delete order-proof even if its write was never seen. Otherwise the store
        // resolves the id (or keeps a tombstone for it).
        AzureOp::RoleAssignmentDelete => match body.and_then(|b| role_assignment(&id, b)) {
            Some((key, _)) => delete(FactKind::RoleAssignment, FactRef::Key(key)),
            None => delete(FactKind::RoleAssignment, FactRef::ResourceId(id)),
        },
        AzureOp::RoleDefinitionWrite => {
            upsert(FactKind::RoleDefinition, id, role_definition(body?)?, None)
        }
        AzureOp::RoleDefinitionDelete => delete(FactKind::RoleDefinition, FactRef::Key(id)),
        AzureOp::ClusterWrite => {
            let id = cluster_id(&id);
            upsert(
                FactKind::ClusterSettings,
                id,
                cluster_settings(body?)?,
                None,
            )
        }
        AzureOp::ClusterDelete => delete(FactKind::ClusterSettings, FactRef::Key(cluster_id(&id))),
        AzureOp::IdentityWrite => {
            upsert(FactKind::ManagedIdentity, id, managed_identity(body?), None)
        }
        AzureOp::IdentityDelete => delete(FactKind::ManagedIdentity, FactRef::Key(id)),
        AzureOp::FederatedCredentialWrite => upsert(
            FactKind::FederatedCredential,
            id,
            federated_credential(body?)?,
            None,
        ),
        AzureOp::FederatedCredentialDelete => {
            delete(FactKind::FederatedCredential, FactRef::Key(id))
        }
        AzureOp::ListAdminCredential => Some(ChangeOp::Activity(Activity {
            kind: ActivityKind::AdminCredentialListed,
            subject: cluster_id(&id),
        })),
        AzureOp::RunCommand => Some(ChangeOp::Activity(Activity {
            kind: ActivityKind::CommandInvoked,
            subject: cluster_id(&id),
        })),
        // The body is the record's `properties`: the role assignment PIM made, its role and
        // the subject it made it for.
        AzureOp::PimActivated => {
            let (key, value, origin) = pim_activation(body?)?;
            upsert(FactKind::PimActivation, key, value, Some(origin))
        }
        AzureOp::PimExpired => {
            let (key, _, _) = pim_activation(body?)?;
            delete(FactKind::PimActivation, FactRef::Key(key))
        }
    }
}

/// Key, value and role assignment id of a PIM activation record's `properties`
/// (`OriginRoleAssignmentId`, `RoleDefinitionOriginId`, `SubjectID`). The record carries no end
/// time: the inventory's listing adds it.
fn pim_activation(p: &Value) -> Option<(String, Value, String)> {
    let origin = canonical_id(text(get_ci(p, "OriginRoleAssignmentId"))?);
    let scope = origin
        .find("/providers/microsoft.authorization/roleassignments/")
        .map(|i| origin[..i].to_string())
        .filter(|s| !s.is_empty())?;
    let principal = normalize_guid(text(get_ci(p, "SubjectID"))?).to_ascii_lowercase();
    let role = role_guid(text(get_ci(p, "RoleDefinitionOriginId"))?);
    let value = json!({
        "scope": scope,
        "principal_id": principal,
        "role_definition_id": role,
        "member_type": "Direct",
        "end": null,
        "eligibility": null,
    });
    Some((format!("{scope}|{principal}|{role}"), value, origin))
}

/// `…/managedclusters/NAME` from any id under a cluster (already canonical).
pub fn cluster_id(id: &str) -> String {
    const SEG: &str = "/managedclusters/";
    match id.find(SEG) {
        Some(p) => {
            let rest = &id[p + SEG.len()..];
            let name_end = rest.find('/').unwrap_or(rest.len());
            id[..p + SEG.len() + name_end].to_string()
        }
        None => id.to_string(),
    }
}

fn props(body: &Value) -> &Value {
    get_ci(body, "properties").unwrap_or(body)
}

fn lower_str(v: Option<&Value>) -> Value {
    text(v).map_or(Value::Null, |s| {
        Value::String(normalize_guid(s).to_ascii_lowercase())
    })
}

fn sorted_lower(v: Option<&Value>, ids: bool) -> Value {
    let mut items: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|s| {
                    if ids {
                        canonical_id(s)
                    } else {
                        normalize_guid(s).to_ascii_lowercase()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items.dedup();
    json!(items)
}

fn role_assignment(id: &str, body: &Value) -> Option<(String, Value)> {
    let p = props(body);
    let principal = normalize_guid(text(get_ci(p, "principalId"))?).to_ascii_lowercase();
    let role = role_guid(text(get_ci(p, "roleDefinitionId"))?);
    // The body's scope wins; else the assignment id minus its provider suffix.
    let scope = text(get_ci(p, "scope"))
        .map(canonical_id)
        .or_else(|| {
            id.find("/providers/microsoft.authorization/roleassignments/")
                .map(|i| id[..i].to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let mut value = json!({
        "scope": scope,
        "principal_id": principal,
        "role_definition_id": role,
    });
    if let Some(c) = text(get_ci(p, "condition")) {
        value["condition"] = json!(c);
    }
    Some((format!("{scope}|{principal}|{role}"), value))
}

fn role_definition(body: &Value) -> Option<Value> {
    let p = props(body);
    let perms = get_ci(p, "permissions")?.as_array()?;
    let mut permissions: Vec<Value> = perms
        .iter()
        .map(|perm| {
            json!({
                "actions": sorted_lower(get_ci(perm, "actions"), false),
                "not_actions": sorted_lower(get_ci(perm, "notActions"), false),
                "data_actions": sorted_lower(get_ci(perm, "dataActions"), false),
                "not_data_actions": sorted_lower(get_ci(perm, "notDataActions"), false),
            })
        })
        .collect();
    permissions.sort_by_cached_key(|v| v.to_string());
    Some(json!({
        "role_name": text(get_ci(p, "roleName")),
        "permissions": permissions,
        "assignable_scopes": sorted_lower(get_ci(p, "assignableScopes"), true),
    }))
}

fn bool_or(v: Option<&Value>, default: bool) -> Value {
    match v {
        Some(Value::Bool(b)) => json!(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => json!(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => json!(false),
        _ => json!(default),
    }
}

fn cluster_settings(body: &Value) -> Option<Value> {
    let p = get_ci(body, "properties")?;
    let aad = get_ci(p, "aadProfile").filter(|a| a.is_object()).map(|a| {
        json!({
            "managed": bool_or(get_ci(a, "managed"), false),
            "enable_azure_rbac": bool_or(get_ci(a, "enableAzureRBAC"), false),
            "admin_group_object_ids": sorted_lower(get_ci(a, "adminGroupObjectIDs"), false),
            "tenant_id": lower_str(get_ci(a, "tenantID")),
        })
    });
    let identity = get_ci(body, "identity");
    let user_assigned: Vec<String> = identity
        .and_then(|i| get_ci(i, "userAssignedIdentities"))
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m.keys().map(|k| canonical_id(k)).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let kubelet = path(p, &["identityProfile", "kubeletidentity"]).map(|k| {
        json!({
            "resource_id": text(get_ci(k, "resourceId")).map(canonical_id),
            "client_id": lower_str(get_ci(k, "clientId")),
            "object_id": lower_str(get_ci(k, "objectId")),
        })
    });
    let mut addons = Map::new();
    if let Some(m) = get_ci(p, "addonProfiles").and_then(Value::as_object) {
        for (name, a) in m {
            if let Some(oid) = text(path(a, &["identity", "objectId"])) {
                addons.insert(
                    name.to_ascii_lowercase(),
                    json!(normalize_guid(oid).to_ascii_lowercase()),
                );
            }
        }
    }
    let mut v = json!({
        "disable_local_accounts": bool_or(get_ci(p, "disableLocalAccounts"), false),
        "enable_rbac": bool_or(get_ci(p, "enableRBAC"), true),
        "aad": aad,
        "identity_type": text(identity.and_then(|i| get_ci(i, "type"))).map(str::to_ascii_lowercase),
        "user_assigned_identities": user_assigned,
        "kubelet_identity": kubelet,
        "service_principal_client_id": lower_str(path(p, &["servicePrincipalProfile", "clientId"])),
        "oidc_issuer_enabled": bool_or(path(p, &["oidcIssuerProfile", "enabled"]), false),
        "workload_identity_enabled": bool_or(path(p, &["securityProfile", "workloadIdentity", "enabled"]), false),
        "addon_identities": addons,
    });
    // Response bodies carry these; request bodies do not. Added only when present, so a
    // value projected from a request keeps its shape (and its baseline stays equal).
    if let Some(url) = text(path(p, &["oidcIssuerProfile", "issuerURL"])) {
        v["oidc_issuer_url"] = json!(url.trim());
    }
    if let Some(pid) = text(identity.and_then(|i| get_ci(i, "principalId"))) {
        v["identity_principal_id"] = json!(normalize_guid(pid).to_ascii_lowercase());
    }
    Some(v)
}

fn managed_identity(body: &Value) -> Value {
    let p = props(body);
    json!({
        "principal_id": lower_str(get_ci(p, "principalId")),
        "client_id": lower_str(get_ci(p, "clientId")),
        "tenant_id": lower_str(get_ci(p, "tenantId")),
    })
}

fn federated_credential(body: &Value) -> Option<Value> {
    let p = props(body);
    let mut audiences: Vec<String> = get_ci(p, "audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    audiences.sort();
    audiences.dedup();
    Some(json!({
        "issuer": text(get_ci(p, "issuer"))?,
        "subject": text(get_ci(p, "subject"))?,
        "audiences": audiences,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RA: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/A1";

    #[test]
    fn role_assignment_camel_and_pascal_give_one_key() {
        let camel = json!({"properties": {"roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/B24988AC-6180-42A0-AB88-20F7382DD24C", "principalId": "CE2CE14E-85D7-4629-BDBC-454D0519D987", "principalType": "User", "scope": "/subscriptions/s/resourceGroups/RG"}});
        let pascal = json!({"Id": "a1", "Properties": {"PrincipalId": "ce2ce14e85d74629bdbc454d0519d987", "RoleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c", "Scope": "/subscriptions/s/resourceGroups/rg/"}});
        let a = candidate(AzureOp::RoleAssignmentWrite, RA, Some(&camel)).unwrap();
        let b = candidate(
            AzureOp::RoleAssignmentWrite,
            &RA.to_uppercase(),
            Some(&pascal),
        )
        .unwrap();
        assert_eq!(a, b);
        let ChangeOp::Upsert(f) = a else { panic!() };
        assert_eq!(f.key, "/subscriptions/s/resourcegroups/rg|ce2ce14e-85d7-4629-bdbc-454d0519d987|b24988ac-6180-42a0-ab88-20f7382dd24c");
        assert_eq!(f.resource_id.as_deref(), Some(RA.to_lowercase().as_str()));
    }

    #[test]
    fn missing_or_partial_bodies_give_no_candidate() {
        assert_eq!(candidate(AzureOp::RoleAssignmentWrite, RA, None), None);
        assert_eq!(
            candidate(
                AzureOp::RoleAssignmentWrite,
                RA,
                Some(&json!({"properties": {"principalId": "x"}}))
            ),
            None
        );
        assert_eq!(
            candidate(
                AzureOp::ClusterWrite,
                "/x/managedClusters/c",
                Some(&json!({"location": "x"}))
            ),
            None
        );
        assert!(matches!(
            candidate(AzureOp::RoleAssignmentDelete, RA, None),
            Some(ChangeOp::Delete { .. })
        ));
    }

    #[test]
    fn cluster_projection_ignores_unrelated_fields() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/arm-bodies/azure-cli__test_aks_create_enable_azure_rbac.yaml.excerpt-final-GET-managedCluster.decoded.json"));
        let text = text.expect("tests/fixtures/arm-bodies/ holds the managedCluster GET body");
        let mut body: Value = serde_json::from_str(&text).unwrap();
        let a = cluster_settings(&body).unwrap();
        assert_eq!(a["disable_local_accounts"], json!(false));
        assert_eq!(a["aad"]["enable_azure_rbac"], json!(true));
        assert_eq!(a["identity_type"], json!("systemassigned"));
        assert_eq!(
            a["service_principal_client_id"],
            json!("00000000-0000-0000-0000-000000000001")
        );
        body["properties"]["kubernetesVersion"] = json!("1.30.0");
        body["properties"]["agentPoolProfiles"] = json!([]);
        assert_eq!(cluster_settings(&body).unwrap(), a);
        body["properties"]["disableLocalAccounts"] = json!(true);
        assert_ne!(cluster_settings(&body).unwrap(), a);
    }

    #[test]
    fn rest_api_spec_response_body_maps_to_the_same_key_as_its_request() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/arm-bodies/azure-rest-api-specs__RoleAssignments_CreateForResourceGroup.json"))
            .expect("tests/fixtures/arm-bodies/ holds the RoleAssignments REST spec example");
        let spec: Value = serde_json::from_str(&text).unwrap();
        let body = &spec["responses"]["201"]["body"];
        let id = body["id"].as_str().unwrap();
        let Some(ChangeOp::Upsert(f)) = candidate(AzureOp::RoleAssignmentWrite, id, Some(body))
        else {
            panic!("no candidate")
        };
        assert_eq!(f.key, "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/resourcegroups/testrg|ce2ce14e-85d7-4629-bdbc-454d0519d987|0b5fe924-9a61-425c-96af-cfe6e287ca2d");
        // The request in the same spec has no scope: it comes from the assignment id instead.
        let req = &spec["parameters"]["parameters"];
        let Some(ChangeOp::Upsert(g)) = candidate(AzureOp::RoleAssignmentWrite, id, Some(req))
        else {
            panic!("no candidate")
        };
        assert_eq!(g.key, f.key);
    }

    #[test]
    fn cluster_id_truncates_children() {
        assert_eq!(cluster_id("/s/providers/microsoft.containerservice/managedclusters/aks/listclusteradmincredential"), "/s/providers/microsoft.containerservice/managedclusters/aks");
    }
}
