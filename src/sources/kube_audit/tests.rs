use super::*;
use crate::config::ClusterConfig;
use serde_json::{json, Value};

const PROD: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourceGroups/rg-platform-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod-weu";

fn clusters() -> Clusters {
    Clusters::from_config(&[ClusterConfig {
        name: "aks-prod".into(),
        resource_id: PROD.into(),
        oidc_issuer: None,
    }])
}

/// A resource-log record as AKS writes it: upper-case resource id, the event as a string
/// with a trailing newline.
fn record(event: &Value) -> Vec<u8> {
    json!({
        "category": "kube-audit-admin",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {"pod": "kube-apiserver-1", "log": format!("{event}\n"), "stream": "stdout"},
        "resourceId": PROD.to_uppercase(),
        "time": "2026-12-07T10:00:01Z",
    })
    .to_string()
    .into_bytes()
}

fn event(verb: &str, resource: &str, group: &str, ns: Option<&str>, user: &str) -> Value {
    let mut oref = json!({"resource": resource, "name": "payments-admins", "apiGroup": group, "apiVersion": "v1"});
    if let Some(ns) = ns {
        oref["namespace"] = json!(ns);
    }
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": "5f0c7d3e-1f2a-4b6c-9d8e-7a6b5c4d3e2f", "stage": "ResponseComplete",
        "requestURI": "/apis/rbac.authorization.k8s.io/v1/x", "verb": verb,
        "user": {"username": user, "groups": ["team-payments", "system:authenticated"],
                 "extra": {"oid": ["8D2E0F4A-0C1B-4E5D-9F6A-3B2C1D0E9F8A"]}},
        "sourceIPs": ["203.0.113.10", "10.0.0.4"],
        "userAgent": "kubectl/v1.30.1 (linux/amd64) kubernetes/abc",
        "objectRef": oref,
        "responseStatus": {"metadata": {}, "code": 201},
        "responseObject": {"kind": "RoleBinding", "metadata": {"name": "payments-admins", "resourceVersion": "48213"}},
        "requestReceivedTimestamp": "2026-12-07T10:00:00.100000Z",
        "stageTimestamp": "2026-12-07T10:00:00.120000Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"platform-admins\" of ClusterRole \"cluster-admin\" to Group \"team-payments\""}
    })
}

fn outcome(rec: &[u8]) -> Decoded {
    decode_record(&clusters(), rec).decoded
}

#[test]
fn an_rbac_write_names_its_object_actor_and_resource_version() {
    let rb = event(
        "create",
        "rolebindings",
        "rbac.authorization.k8s.io",
        Some("payments"),
        "alice@contoso.com",
    );
    let Decoded::Observation(o) = outcome(&record(&rb)) else {
        panic!("not kept");
    };
    let Some(ChangeOp::Audit(a)) = &o.candidate else {
        panic!("not an audit op");
    };
    assert_eq!(a.cluster, "aks-prod");
    assert_eq!(a.cluster_id, canonical_id(PROD));
    let t = a.target.as_ref().unwrap();
    assert_eq!(
        (t.kind, t.key.as_str()),
        (FactKind::RoleBinding, "aks-prod/payments/payments-admins")
    );
    assert_eq!(o.prov.resource_version.as_deref(), Some("48213"));
    assert_eq!(
        o.prov.event_time,
        EventTime::parse("2026-12-07T10:00:00.12Z").unwrap()
    );
    let actor = &o.prov.actor;
    assert_eq!(actor.upn.as_deref(), Some("alice@contoso.com"));
    assert_eq!(
        actor.object_id.as_deref(),
        Some("8d2e0f4a-0c1b-4e5d-9f6a-3b2c1d0e9f8a")
    );
    assert_eq!(actor.ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(
        actor.audit_id.as_deref(),
        Some("5f0c7d3e-1f2a-4b6c-9d8e-7a6b5c4d3e2f")
    );
    assert!(actor.reason.as_deref().unwrap().contains("platform-admins"));
    assert_eq!(actor.class, Some(ActorClass::User));
    assert_eq!(actor.groups, ["team-payments", "system:authenticated"]);
}

#[test]
fn filter_table() {
    let base = || {
        event(
            "patch",
            "clusterrolebindings",
            "rbac.authorization.k8s.io",
            None,
            "alice@contoso.com",
        )
    };
    let kept = |d: &Decoded| matches!(d, Decoded::Observation(_));
    for (name, edit, want_kept) in [
        (
            "a patch of a ClusterRoleBinding",
            Box::new(|_: &mut Value| {}) as Box<dyn Fn(&mut Value)>,
            true,
        ),
        (
            "get",
            Box::new(|e: &mut Value| e["verb"] = json!("get")),
            false,
        ),
        (
            "list",
            Box::new(|e: &mut Value| e["verb"] = json!("list")),
            false,
        ),
        (
            "watch",
            Box::new(|e: &mut Value| e["verb"] = json!("watch")),
            false,
        ),
        (
            "403",
            Box::new(|e: &mut Value| e["responseStatus"]["code"] = json!(403)),
            false,
        ),
        (
            "stage ResponseStarted",
            Box::new(|e: &mut Value| e["stage"] = json!("ResponseStarted")),
            false,
        ),
        (
            "a lease",
            Box::new(|e: &mut Value| {
                e["objectRef"]["resource"] = json!("leases");
                e["objectRef"]["apiGroup"] = json!("coordination.k8s.io");
            }),
            false,
        ),
        (
            "a token request (subresource)",
            Box::new(|e: &mut Value| {
                e["objectRef"]["resource"] = json!("serviceaccounts");
                e["objectRef"]["apiGroup"] = json!("");
                e["objectRef"]["namespace"] = json!("payments");
                e["objectRef"]["subresource"] = json!("token");
            }),
            false,
        ),
        (
            "a service account in the core group",
            Box::new(|e: &mut Value| {
                e["objectRef"]["resource"] = json!("serviceaccounts");
                e["objectRef"].as_object_mut().unwrap().remove("apiGroup");
                e["objectRef"]["namespace"] = json!("payments");
            }),
            true,
        ),
        (
            "a pod written by masterclient (local account)",
            Box::new(|e: &mut Value| {
                e["objectRef"]["resource"] = json!("pods");
                e["objectRef"]["apiGroup"] = json!("");
                e["user"] = json!({"username": "masterclient", "groups": ["system:masters", "system:authenticated"]});
            }),
            true,
        ),
        (
            "a pod written by aksService",
            Box::new(|e: &mut Value| {
                e["objectRef"]["resource"] = json!("pods");
                e["objectRef"]["apiGroup"] = json!("");
                e["user"] = json!({"username": "aksService", "groups": ["system:masters"]});
            }),
            false,
        ),
    ] {
        let mut e = base();
        edit(&mut e);
        let d = outcome(&record(&e));
        assert_eq!(kept(&d), want_kept, "{name}: {d:?}");
        if !want_kept {
            assert_eq!(d, Decoded::Skipped(SkipReason::AuditFiltered), "{name}");
        }
    }
}

#[test]
fn unknown_cluster_and_broken_logs() {
    let e = event(
        "create",
        "roles",
        "rbac.authorization.k8s.io",
        Some("a"),
        "bob",
    );
    let mut rec: Value = serde_json::from_slice(&record(&e)).unwrap();
    rec["resourceId"] = json!("/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/OTHER");
    assert_eq!(
        outcome(rec.to_string().as_bytes()),
        Decoded::Skipped(SkipReason::UnknownCluster)
    );
    rec["resourceId"] = json!(PROD.to_uppercase());
    rec["properties"]["log"] = json!("I1207 10:00:00 plain text");
    assert!(
        matches!(outcome(rec.to_string().as_bytes()), Decoded::Malformed(m) if m.contains("not an audit.k8s.io Event"))
    );
    rec["properties"].as_object_mut().unwrap().remove("log");
    assert!(
        matches!(outcome(rec.to_string().as_bytes()), Decoded::Malformed(m) if m.contains("properties.log"))
    );
}

#[test]
fn impersonation_names_both() {
    let mut e = event(
        "update",
        "clusterroles",
        "rbac.authorization.k8s.io",
        None,
        "alice@contoso.com",
    );
    e["impersonatedUser"] = json!({"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]});
    let Decoded::Observation(o) = outcome(&record(&e)) else {
        panic!()
    };
    assert_eq!(o.prov.actor.username.as_deref(), Some("alice@contoso.com"));
    assert_eq!(
        o.prov.actor.impersonated.as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );
    assert_eq!(o.prov.actor.class, Some(ActorClass::ServiceAccount));
    assert!(o
        .prov
        .actor
        .describe()
        .contains("alice@contoso.com (oid 8d2e0f4a-0c1b-4e5d-9f6a-3b2c1d0e9f8a) as system:serviceaccount:ci:deployer (impersonated)"));
}

#[test]
fn deletes_carry_no_resource_version_and_deletecollection_a_prefix() {
    let mut e = event(
        "delete",
        "roles",
        "rbac.authorization.k8s.io",
        Some("payments"),
        "bob@contoso.com",
    );
    e["responseObject"] =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}});
    let Decoded::Observation(o) = outcome(&record(&e)) else {
        panic!()
    };
    assert_eq!(o.prov.resource_version, None);
    e["verb"] = json!("deletecollection");
    e["objectRef"].as_object_mut().unwrap().remove("name");
    let Decoded::Observation(o) = outcome(&record(&e)) else {
        panic!()
    };
    let Some(ChangeOp::Audit(a)) = o.candidate else {
        panic!()
    };
    assert_eq!(a.target.unwrap().key, "aks-prod/payments/");
}

/// The real AKS records (tests/fixtures/kube-audit, see SOURCES.md): a kubelet's
/// SubjectAccessReview and aksService renewing a lease, both of unknown clusters here and
/// both filtered once their cluster is known.
#[test]
fn the_real_aks_records_are_understood() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube-audit");
    for (file, cluster) in [
        (
            "aks-kube-audit-admin-eventhub-sumologic.json",
            "HPALDEVCLUSTER",
        ),
        ("aks-kube-audit-eventhub-sumologic.json", "ARC-CLUSTER02"),
    ] {
        let rec = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            decode_record(&Clusters::default(), &rec).decoded,
            Decoded::Skipped(SkipReason::UnknownCluster),
            "{file}"
        );
        let known = Clusters::from_config(&[ClusterConfig {
            name: "c".into(),
            resource_id: format!("/subscriptions/c088dc46-d692-42ad-a4b6-9a542d28ad2a/resourceGroups/hpalakscluster/providers/Microsoft.ContainerService/managedClusters/{cluster}"),
            oidc_issuer: None,
        }]);
        let out = decode_record(&known, &rec);
        assert_eq!(out.cluster.as_deref(), Some("c"), "{file}");
        assert_eq!(
            out.decoded,
            Decoded::Skipped(SkipReason::AuditFiltered),
            "{file}"
        );
    }
}

#[test]
fn category_is_read_without_parsing() {
    let f = memchr::memmem::Finder::new(b"\"category\"");
    for (rec, want) in [
        (r#"{"category": "kube-audit", "x": 1}"#, Some("kube-audit")),
        (
            r#"{"time":"t","category":"Administrative"}"#,
            Some("Administrative"),
        ),
        (r#"{"category": {"value": "Administrative"}}"#, None),
        (r#"{"properties": {"log": "{\"category\":\"x\"}"}}"#, None),
        (r#"{"time":"t"}"#, None),
    ] {
        assert_eq!(category(rec.as_bytes(), &f), want, "{rec}");
    }
}
