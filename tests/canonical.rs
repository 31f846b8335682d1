//! `sources::canonical`: a value canonicalised outside the sources equals what the sources
//! project, so a hand-edited baseline does not show drift forever.

use accessdrift::domain::{ChangeOp, FactKind};
use accessdrift::sources::activity_log::map::candidate;
use accessdrift::sources::activity_log::AzureOp;
use accessdrift::sources::canonical::{canonical_key, canonicalise};
use accessdrift::sources::kubernetes::project;
use serde_json::{json, Value};

fn azure(op: AzureOp, id: &str, body: Value) -> (FactKind, String, Value) {
    match candidate(op, id, Some(&body)) {
        Some(ChangeOp::Upsert(f)) => (f.kind, f.key, f.value),
        other => panic!("{op:?}: {other:?}"),
    }
}

fn k8s(kind: FactKind, obj: Value) -> (FactKind, String, Value) {
    let key = project::key(kind, &obj, "c1").unwrap();
    (kind, key, project::value(kind, &obj).unwrap())
}

/// What the sources project from realistic inputs: one per fact kind.
fn projections() -> Vec<(FactKind, String, Value)> {
    let sub = "/subscriptions/6F1C2C3D-1111-4A5B-9C8D-0A1B2C3D4E5F";
    vec![
        azure(
            AzureOp::RoleAssignmentWrite,
            &format!("{sub}/providers/Microsoft.Authorization/roleAssignments/A1"),
            json!({"properties": {"roleDefinitionId": format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"), "principalId": "CE2CE14E85D74629BDBC454D0519D987", "scope": format!("{sub}/resourceGroups/RG"), "condition": " x "}}),
        ),
        azure(
            AzureOp::RoleDefinitionWrite,
            &format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/R1"),
            json!({"properties": {"roleName": "ops", "permissions": [{"actions": ["Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", "*/read"], "notActions": []}, {"dataActions": ["B"]}], "assignableScopes": [format!("{sub}/RESOURCEGROUPS/x/"), sub]}}),
        ),
        azure(
            AzureOp::ClusterWrite,
            &format!("{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/AKS"),
            json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {format!("{sub}/x/B"): {}, format!("{sub}/x/a"): {}}},
                   "properties": {"disableLocalAccounts": "true", "aadProfile": {"managed": true, "enableAzureRBAC": true, "adminGroupObjectIDs": ["BBBBBBBB-0000-4000-8000-000000000000", "aaaaaaaa-0000-4000-8000-000000000000"], "tenantID": "72F988BF86F141AF91AB2D7CD011DB47"},
                   "identityProfile": {"kubeletidentity": {"resourceId": format!("{sub}/k/KUBELET"), "clientId": "C1", "objectId": "O1"}},
                   "servicePrincipalProfile": {"clientId": "msi"}, "oidcIssuerProfile": {"enabled": true},
                   "addonProfiles": {"OmsAgent": {"identity": {"objectId": "DDDDDDDD-0000-4000-8000-000000000000"}}}}}),
        ),
        azure(
            AzureOp::IdentityWrite,
            &format!("{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ID"),
            json!({"properties": {"principalId": "EEEEEEEE-0000-4000-8000-000000000000", "clientId": "c"}}),
        ),
        azure(
            AzureOp::FederatedCredentialWrite,
            &format!("{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ID/federatedIdentityCredentials/F"),
            json!({"properties": {"issuer": " https://oidc/x ", "subject": "system:serviceaccount:ns:sa", "audiences": ["b", " a", "b"]}}),
        ),
        {
            let item = json!({"id": format!("{sub}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/E1"),
                "properties": {"scope": sub, "roleDefinitionId": format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"),
                               "principalId": "CE2CE14E-85D7-4629-BDBC-454D0519D987", "status": "Provisioned", "memberType": "Group",
                               "endDateTime": "2027-06-01T08:00:00.5+02:00", "condition": "c"}});
            let (op, key) = accessdrift::sources::arm::pim::role_eligibility(&item).unwrap().unwrap();
            let accessdrift::domain::ChangeOp::Upsert(f) = op else { panic!() };
            (FactKind::RoleEligibility, key, f.value)
        },
        k8s(
            FactKind::ClusterRoleBinding,
            json!({"metadata": {"name": "ops", "labels": {"addonmanager.kubernetes.io/mode": "Reconcile"}}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "User", "name": "zed"}, {"kind": "Group", "name": "C0FFEE00-1111-2222-3333-444455556666"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "kube-system"}, {"kind": "User", "name": "zed"}]}),
        ),
        k8s(
            FactKind::RoleBinding,
            json!({"metadata": {"name": "rb", "namespace": "ns"}, "roleRef": {"kind": "Role", "name": "r"}}),
        ),
        k8s(
            FactKind::ClusterRole,
            json!({"metadata": {"name": "agg"}, "rules": [{"verbs": ["list", "get"], "resources": ["secrets"], "apiGroups": [""]}, {"verbs": ["*"], "nonResourceURLs": ["/metrics"]}],
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"b": "1"}}, {"matchLabels": {"a": "1"}}]}}),
        ),
        k8s(
            FactKind::Role,
            json!({"metadata": {"name": "r", "namespace": "ns"}, "rules": [{"verbs": ["get"], "resources": ["pods"], "resourceNames": ["b", "a"]}]}),
        ),
        k8s(
            FactKind::ServiceAccount,
            json!({"metadata": {"name": "sa", "namespace": "ns", "annotations": {"azure.workload.identity/client-id": " ABC ", "azure.workload.identity/tenant-id": ""}}, "automountServiceAccountToken": false}),
        ),
    ]
}

#[test]
fn source_projections_are_canonical_already() {
    let all = projections();
    let kinds: std::collections::BTreeSet<FactKind> = all.iter().map(|p| p.0).collect();
    let baselined = FactKind::ALL.iter().filter(|k| k.is_baselined()).count();
    assert_eq!(
        kinds.len(),
        baselined,
        "every kind a baseline can hold is covered"
    );
    // A PIM activation ends by itself: a baseline file that holds one is refused.
    let e = canonicalise(FactKind::PimActivation, &json!({})).unwrap_err();
    assert!(e.to_string().contains("role_eligibility"), "{e}");
    for (kind, key, value) in all {
        assert_eq!(canonicalise(kind, &value).unwrap(), value, "{kind}");
        assert_eq!(canonical_key(kind, &key, &value).unwrap(), key, "{kind}");
    }
}

/// Upper-cases every string that looks like an id and reverses every list: what a person
/// editing the file might do without changing access.
fn scramble(v: &Value) -> Value {
    match v {
        Value::String(s) if s.contains('-') && s.len() == 36 => json!(s.to_uppercase()),
        Value::String(s) if s.starts_with("/subscriptions/") => json!(s.to_uppercase()),
        Value::Array(a) => Value::Array(a.iter().rev().map(scramble).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), scramble(x))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn scrambled_values_and_keys_canonicalise_to_the_source_projection() {
    for (kind, key, value) in projections() {
        let s = scramble(&value);
        let c = canonicalise(kind, &s).unwrap();
        assert_eq!(c, value, "{kind}: {s}");
        let skey = if kind.plane() == accessdrift::domain::Plane::Azure {
            key.to_uppercase()
        } else {
            key.clone()
        };
        assert_eq!(canonical_key(kind, &skey, &c).unwrap(), key, "{kind}");
    }
}
