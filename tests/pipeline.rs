//! The pipeline over real files and a real SQLite store: phases, duplicates, failures,
//! metadata churn, baseline approve/export/import.

mod common;

use accessdrift::domain::FactKind;
use accessdrift::engine::{DriftChange, FindingKind, Status};
use accessdrift::pipeline::SkipReason;
use common::*;
use serde_json::json;

fn capture(env: &Env) {
    let mut store = env.store();
    let tx = store.tx().unwrap();
    let at = accessdrift::domain::EventTime::from_unix_seconds(1);
    let v = tx.new_baseline_version("test", "capture", "", at).unwrap();
    for f in tx.facts().unwrap() {
        if let Some(value) = f.value {
            tx.approve(
                v,
                &accessdrift::store::BaselineEntry {
                    kind: f.kind,
                    key: f.key,
                    value,
                    version: v,
                    approved_by: "test".into(),
                    approved_at: at,
                    from_finding: None,
                },
            )
            .unwrap();
        }
    }
    accessdrift::pipeline::reevaluate_all(&tx, &env.cfg, "test", at, &["stdout".to_string()])
        .unwrap();
    tx.commit().unwrap();
}

fn findings(env: &Env) -> Vec<accessdrift::engine::Finding> {
    env.store().read().unwrap().findings(false).unwrap()
}

#[test]
fn out_of_order_phases_across_two_replays_apply_once() {
    let env = Env::new();
    // An empty baseline, so drift is judged from the start.
    capture(&env);
    let [start, accept, success] =
        owner_grant("corr-1", "ra1", "6D6D6D6D-0000-4000-8000-00000000DEAD", 3);
    // First replay: only the Success (no body) and the Accept.
    let f1 = env.write("a.json", &[envelope(&[&success, &accept])]);
    let s = env.replay(&[f1]);
    assert_eq!(s.stats.applied, 0);
    assert_eq!(s.pending_operations, 1);
    assert!(findings(&env).is_empty());
    // Second replay, another file: the Start with the body completes it.
    let f2 = env.write("b.json", &[start.line()]);
    let s = env.replay(&[f2]);
    assert_eq!(
        (s.stats.applied, s.stats.opened, s.pending_operations),
        (1, 1, 0)
    );
    let f = &findings(&env)[0];
    assert_eq!(f.change, Some(DriftChange::Unapproved));
    assert_eq!(f.actor.upn.as_deref(), Some("mallory@contoso.com"));
    assert_eq!(f.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(
        f.last_seen.to_string(),
        "2026-11-03T10:00:02Z",
        "the Success's time is when access changed"
    );
    assert!(f
        .fact_key
        .ends_with("|6d6d6d6d-0000-4000-8000-00000000dead|8e3af657-a8ff-443c-a75c-2fe8c4bcb635"));
}

#[test]
fn duplicated_records_change_nothing() {
    let env = Env::new();
    capture(&env);
    let [start, accept, success] = owner_grant("corr-2", "ra2", "p2", 3);
    let f = env.write(
        "a.json",
        &[
            envelope(&[&start, &accept, &success]),
            envelope(&[&success, &start]),
        ],
    );
    let s = env.replay(std::slice::from_ref(&f));
    assert_eq!(
        (s.stats.applied, s.stats.opened, s.stats.notifications),
        (1, 1, 1)
    );
    assert_eq!(s.stats.skipped.get(&SkipReason::Duplicate), Some(&2));
    let before = env.dump();
    // The same records under another file name are duplicates too.
    let copy = env.write("copy.json", &[std::fs::read_to_string(&f).unwrap()]);
    let s = env.replay(&[copy]);
    assert_eq!((s.stats.applied, s.stats.opened), (0, 0));
    let after = env.dump();
    let strip = |d: &str| {
        d.lines()
            .filter(|l| !l.contains("replay:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(&before),
        strip(&after),
        "only the new file's checkpoint may differ"
    );
    // And replaying the same file again reads past its checkpoint.
    let s = env.replay(&[f]);
    assert_eq!((s.records, s.stats.applied), (0, 0));
}

#[test]
fn a_failed_write_applies_nothing() {
    let env = Env::new();
    capture(&env);
    let [start, _, _] = owner_grant("corr-3", "ra3", "p3", 3);
    let mut failure = start.clone();
    failure.v["resultType"] = json!("Failure");
    failure.v["properties"] = json!({"statusCode": "Forbidden"});
    // Failure first, then a late Start: still nothing.
    let f = env.write("a.json", &[failure.line(), start.line()]);
    let s = env.replay(&[f]);
    assert_eq!(s.stats.applied, 0);
    assert_eq!(s.stats.skipped.get(&SkipReason::Failed), Some(&2));
    assert!(env.store().read().unwrap().facts().unwrap().is_empty());
}

#[test]
fn metadata_only_kubernetes_changes_are_no_change() {
    let env = Env::new();
    let f = env.write(
        "k1.ndjson",
        &[watch(
            "ADDED",
            &crb("ops", "view", ("Group", "g1"), "10", "2026-11-01T00:00:00Z"),
        )],
    );
    env.replay(&[f]);
    capture(&env);
    let mut churn = crb("ops", "view", ("Group", "g1"), "11", "2026-11-02T00:00:00Z");
    churn["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    let f = env.write("k2.ndjson", &[watch("MODIFIED", &churn)]);
    let s = env.replay(&[f]);
    assert_eq!(
        (s.stats.applied, s.stats.unchanged, s.stats.opened),
        (0, 1, 0)
    );
    // A real change to the subjects is drift.
    let f = env.write(
        "k3.ndjson",
        &[watch(
            "MODIFIED",
            &crb(
                "ops",
                "cluster-admin",
                ("User", "mallory@contoso.com"),
                "12",
                "2026-11-03T00:00:00Z",
            ),
        )],
    );
    let s = env.replay(&[f]);
    // The drift, and the rules K8S-CLUSTER-ADMIN-BINDING and K8S-USER-SUBJECT.
    assert_eq!(s.stats.opened, 3);
    let drift: Vec<_> = findings(&env)
        .into_iter()
        .filter(|f| f.kind == FindingKind::Drift)
        .collect();
    let f = &drift[0];
    assert_eq!(
        (f.fact_kind, f.fact_key.as_str(), f.change),
        (
            FactKind::ClusterRoleBinding,
            "c1/ops",
            Some(DriftChange::Changed)
        )
    );
    assert_eq!(f.severity, accessdrift::engine::Severity::Critical);
    // Back to the approved state: resolved by itself.
    let f2 = env.write(
        "k4.ndjson",
        &[watch(
            "MODIFIED",
            &crb("ops", "view", ("Group", "g1"), "13", "2026-11-04T00:00:00Z"),
        )],
    );
    let s = env.replay(&[f2]);
    assert_eq!(
        s.stats.resolved, 3,
        "the drift and both rules resolve by themselves"
    );
    assert!(findings(&env).iter().all(|f| f.status == Status::Resolved));
}

#[test]
fn delete_by_assignment_id_resolves_the_semantic_key() {
    let env = Env::new();
    let [start, accept, success] = owner_grant("corr-4", "ra4", "p4", 2);
    env.replay(&[env.write("d1.json", &[envelope(&[&start, &accept, &success])])]);
    capture(&env);
    let del = Rec::new(
        "Microsoft.Authorization/roleAssignments/delete",
        &assignment_id("RA4"),
        "Success",
        "corr-5",
        "2026-11-03T00:00:00Z",
    );
    let unknown = Rec::new(
        "Microsoft.Authorization/roleAssignments/delete",
        &assignment_id("nope"),
        "Success",
        "corr-6",
        "2026-11-03T00:00:00Z",
    );
    let s = env.replay(&[env.write("d2.json", &[del.line(), unknown.line()])]);
    assert_eq!((s.stats.applied, s.stats.opened), (1, 1));
    assert_eq!(s.stats.tombstoned, 1);
    assert_eq!(findings(&env)[0].change, Some(DriftChange::Missing));
}

#[test]
fn stale_writes_lose_to_newer_ones() {
    let env = Env::new();
    let new = crb("x", "view", ("Group", "g-new"), "2", "2026-11-05T00:00:00Z");
    let old = crb("x", "view", ("Group", "g-old"), "1", "2026-11-04T00:00:00Z");
    let s = env.replay(&[env.write(
        "k.ndjson",
        &[watch("MODIFIED", &new), watch("MODIFIED", &old)],
    )]);
    assert_eq!(s.stats.skipped.get(&SkipReason::Stale), Some(&1));
    let facts = env.store().read().unwrap().facts().unwrap();
    assert_eq!(
        facts[0].value.as_ref().unwrap()["subjects"][0]["name"],
        "g-new"
    );
}

#[test]
fn admin_credential_listing_is_critical_when_baseline_disables_local_accounts() {
    let env = Env::new();
    let body = json!({"identity": {"type": "SystemAssigned"}, "properties": {"disableLocalAccounts": true, "aadProfile": {"managed": true, "enableAzureRBAC": true}}});
    let op = "Microsoft.ContainerService/managedClusters/write";
    let w = [
        Rec::new(op, &cluster_id(), "Start", "w1", "2026-11-02T00:00:00Z").request(body),
        Rec::new(op, &cluster_id(), "Success", "w1", "2026-11-02T00:00:05Z"),
    ];
    env.replay(&[env.write("c1.json", &[envelope(&[&w[0], &w[1]])])]);
    capture(&env);
    let list = "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";
    let l = [
        Rec::new(list, &cluster_id(), "Start", "l1", "2026-11-03T00:00:00Z"),
        Rec::new(list, &cluster_id(), "Success", "l1", "2026-11-03T00:00:01Z"),
    ];
    let s = env.replay(&[env.write("c2.json", &[l[0].line(), l[1].line(), l[1].line()])]);
    assert_eq!((s.stats.opened, s.stats.notifications), (1, 1));
    let f = &findings(&env)[0];
    assert_eq!(
        (f.kind, f.severity, f.rule.as_str()),
        (
            FindingKind::Activity,
            accessdrift::engine::Severity::Critical,
            "AKS-ADMIN-CREDENTIAL-USED"
        )
    );
    assert_eq!(f.actor.ip.as_deref(), Some("198.51.100.77"));
}

#[test]
fn malformed_records_are_counted_located_and_skipped() {
    let env = Env::new();
    let [start, accept, success] = owner_grant("corr-7", "ra7", "p7", 3);
    let mut bad_time = success.clone();
    bad_time.v["time"] = json!("not a time");
    bad_time.v["correlationId"] = json!("other");
    let lines = vec![
        start.line(),
        "{\"records\": [ {\"truncated\": ".to_string(),
        accept.line(),
        bad_time.line(),
        success.line(),
    ];
    let s = env.replay(&[env.write("m.json", &lines)]);
    assert_eq!(
        s.stats.applied, 1,
        "good records around the bad ones still apply"
    );
    assert_eq!(s.malformed.len(), 2);
    assert_eq!((s.malformed[0].line, s.malformed[1].line), (2, 4));
    assert!(
        s.malformed[1].problem.contains("`time`"),
        "{}",
        s.malformed[1].problem
    );
    assert!(s.malformed[0].input.ends_with("m.json"));
}

#[test]
fn records_without_correlation_id_join_by_resource_and_do_not_block_later_changes() {
    let env = Env::new();
    capture(&env);
    let op = "Microsoft.ContainerService/managedClusters/write";
    let body = |off: bool| json!({"properties": {"disableLocalAccounts": off}});
    let mut recs = vec![
        Rec::new(op, &cluster_id(), "Start", "", "2026-11-03T01:00:00Z").request(body(true)),
        Rec::new(op, &cluster_id(), "Success", "", "2026-11-03T01:00:05Z"),
        Rec::new(op, &cluster_id(), "Start", "", "2026-11-03T02:00:00Z").request(body(false)),
        Rec::new(op, &cluster_id(), "Success", "", "2026-11-03T02:00:05Z"),
    ];
    for r in &mut recs {
        r.v.as_object_mut().unwrap().remove("correlationId");
    }
    let lines: Vec<String> = recs.iter().map(Rec::line).collect();
    let s = env.replay(&[env.write("nc.json", &lines)]);
    assert_eq!(
        s.stats.applied, 2,
        "the second write is a change, not a duplicate"
    );
    let facts = env.store().read().unwrap().facts().unwrap();
    assert_eq!(
        facts[0].value.as_ref().unwrap()["disable_local_accounts"],
        json!(false)
    );
}

#[test]
fn aks_managed_admin_binding_from_kubectl_yaml_is_platform_managed() {
    let env = Env::new();
    let yaml = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/k8s/aks-cluster-admin-binding-aad.yaml"
    ));
    let mut store = env.store();
    let mut p = accessdrift::pipeline::Pipeline::new(&mut store, &env.cfg, vec!["stdout".into()]);
    let s = accessdrift::pipeline::replay::run(&mut p, &[yaml.to_path_buf()], "aks-prod").unwrap();
    assert_eq!((s.records, s.stats.applied), (1, 1));
    let facts = store.read().unwrap().facts().unwrap();
    assert_eq!(facts[0].key, "aks-prod/aks-cluster-admin-binding-aad");
    assert_eq!(
        facts[0].value.as_ref().unwrap()["platform_managed"],
        json!(true)
    );
    assert_eq!(
        facts[0].value.as_ref().unwrap()["role_ref"]["name"],
        json!("cluster-admin")
    );
    drop(store);
    capture(&env);
    // AKS reconciles the binding to new admin groups: drift, but at the platform severity.
    let mut changed: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(yaml).unwrap()).unwrap();
    changed["subjects"][0]["name"] = json!("0f0f0f0f-0000-4000-8000-000000000000");
    changed["metadata"]["creationTimestamp"] = json!("2026-11-03T00:00:00Z");
    let mut store = env.store();
    let mut p = accessdrift::pipeline::Pipeline::new(&mut store, &env.cfg, vec!["stdout".into()]);
    let f = env.write("w.ndjson", &[watch("MODIFIED", &changed)]);
    let s = accessdrift::pipeline::replay::run(&mut p, &[f], "aks-prod").unwrap();
    assert_eq!(s.stats.opened, 1);
    let found = store.read().unwrap().findings(true).unwrap();
    assert_eq!(found[0].severity, accessdrift::engine::Severity::Low);
}

#[test]
fn kubernetes_ties_go_to_the_later_event() {
    let env = Env::new();
    let t = "2026-11-05T00:00:00Z";
    // Two changes within one second, then a DELETED carrying the same managedFields time.
    let a = crb("x", "view", ("Group", "zzz"), "1", t);
    let b = crb("x", "view", ("Group", "aaa"), "2", t);
    env.replay(&[env.write("k.ndjson", &[watch("ADDED", &a), watch("MODIFIED", &b)])]);
    let facts = env.store().read().unwrap().facts().unwrap();
    assert_eq!(
        facts[0].value.as_ref().unwrap()["subjects"][0]["name"],
        "aaa",
        "file order wins a tie"
    );
    let s = env.replay(&[env.write("d.ndjson", &[watch("DELETED", &b)])]);
    assert_eq!(s.stats.applied, 1);
    assert!(
        env.store().read().unwrap().facts().unwrap()[0]
            .value
            .is_none(),
        "the delete applies"
    );
}
