//! The baseline service as the CLI and the daemon call it: approve, ack, import, export,
//! rollback and diff against a real store.

mod common;

use accessdrift::baseline::{BaselineError, BaselineService, ImportOptions};
use accessdrift::domain::FactKind;
use accessdrift::engine::{DriftChange, Finding, Status};
use accessdrift::store::Store;
use common::*;
use serde_json::{json, Value};

fn sinks() -> Vec<String> {
    vec!["stdout".to_string()]
}

fn svc<'a>(store: &'a mut Store, env: &'a Env, sinks: &'a [String]) -> BaselineService<'a> {
    BaselineService::new(store, &env.cfg, sinks)
}

/// Day 1 replayed and captured by `lead`, day 2 replayed: one open Owner drift for P2.
fn two_days() -> (Env, Finding) {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let s = sinks();
    let mut store = env.store();
    svc(&mut store, &env, &s).capture("lead", "day 1").unwrap();
    env.replay(&[baseline_day2(&env)]);
    let f = open_drift(&env, P2);
    (env, f)
}

fn all_findings(env: &Env) -> Vec<Finding> {
    env.store().read().unwrap().findings(false).unwrap()
}

fn open_drift(env: &Env, principal: &str) -> Finding {
    all_findings(env)
        .into_iter()
        .find(|f| f.fact_key.contains(principal))
        .unwrap_or_else(|| panic!("no finding for {principal}"))
}

fn finding(env: &Env, id: &str) -> Finding {
    env.store().read().unwrap().finding(id).unwrap().unwrap()
}

fn baseline_version(env: &Env) -> Option<i64> {
    env.store()
        .read()
        .unwrap()
        .baseline_version()
        .unwrap()
        .map(|v| v.version)
}

#[test]
fn approve_takes_the_shown_value_and_the_alert_names_the_approver() {
    let (env, f) = two_days();
    assert_eq!(f.status, Status::Open);
    let s = sinks();
    let mut store = env.store();
    let out = svc(&mut store, &env, &s)
        .approve("lead", std::slice::from_ref(&f.id), None)
        .unwrap();
    assert_eq!(out.approved.len(), 1);
    assert_eq!(out.approved[0].status, Status::Approved);
    let tx = store.read().unwrap();
    assert_eq!(
        tx.baseline_value(f.fact_kind, &f.fact_key).unwrap(),
        f.actual
    );
    let g = tx.finding(&f.id).unwrap().unwrap();
    assert_eq!(g.resolution.as_deref(), Some("approved by lead"));
    let alerts = tx
        .outbox(accessdrift::store::OutboxState::Pending, None, 100)
        .unwrap();
    let resolved: Value = alerts
        .iter()
        .filter(|r| r.finding_id == f.id && r.transition == "resolved")
        .map(|r| serde_json::from_str(&r.payload).unwrap())
        .next()
        .expect("the approval notifies");
    assert_eq!(resolved["resolution"], "approved by lead");
}

#[test]
fn approve_refuses_when_the_fact_changed_after_the_finding() {
    let (env, mut f) = two_days();
    // The finding as someone reviewed it, before the fact moved on (a writer in between).
    f.actual = Some(
        json!({"scope": "/subscriptions/elsewhere", "principal_id": P2, "role_definition_id": OWNER}),
    );
    {
        let mut store = env.store();
        let tx = store.tx().unwrap();
        tx.put_finding(&f).unwrap();
        tx.commit().unwrap();
    }
    let before = env.dump();
    let s = sinks();
    let mut store = env.store();
    let err = svc(&mut store, &env, &s)
        .approve("lead", std::slice::from_ref(&f.id), None)
        .unwrap_err();
    assert!(matches!(err, BaselineError::FactChanged { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&f.id)
            && msg.contains("/subscriptions/elsewhere")
            && msg.contains("approve again"),
        "{msg}"
    );
    drop(store);
    assert_eq!(env.dump(), before, "a refused approve changes nothing");
}

#[test]
fn revision_counts_content_changes_and_approve_can_pin_it() {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let s = sinks();
    svc(&mut env.store(), &env, &s).capture("lead", "").unwrap();
    let step = |name: &str, subjects: &[(&str, &str)], rv: &str| {
        let f = env.write(
            name,
            &[watch(
                "MODIFIED",
                &crb_subjects("ops", "view", subjects, rv),
            )],
        );
        env.replay(&[f]);
    };
    step("k2.ndjson", &[("User", "zed"), ("User", "eve")], "11");
    let id = accessdrift::engine::drift::finding_id(FactKind::ClusterRoleBinding, "c1/ops");
    assert_eq!(finding(&env, &id).revision, 1, "opened");
    step("k3.ndjson", &[("User", "zed"), ("User", "mallory")], "12");
    assert_eq!(finding(&env, &id).revision, 2, "actual changed");
    step("k4.ndjson", &[("User", "mallory"), ("User", "zed")], "13");
    assert_eq!(finding(&env, &id).revision, 2, "same access, same revision");

    let mut store = env.store();
    let err = svc(&mut store, &env, &s)
        .approve("lead", std::slice::from_ref(&id), Some(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            BaselineError::RevisionMismatch {
                pinned: 1,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("mallory"),
        "names what it is now: {err}"
    );
    let out = svc(&mut store, &env, &s)
        .approve("lead", std::slice::from_ref(&id), Some(2))
        .unwrap();
    assert_eq!(out.approved[0].status, Status::Approved);
    assert_eq!(out.approved[0].revision, 3, "status change is a revision");
}

/// Findings with crafted ids, to exercise prefix lookup.
fn plant(env: &Env, template: &Finding, ids: &[&str]) {
    let mut store = env.store();
    let tx = store.tx().unwrap();
    for id in ids {
        let mut f = template.clone();
        f.id = id.to_string();
        f.title = format!("planted {id}");
        tx.put_finding(&f).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn id_prefixes_are_literal_and_ambiguity_lists_candidates() {
    let (env, f) = two_days();
    plant(&env, &f, &["abcd00000001", "abcd00000002", "abce00000003"]);
    let many: Vec<String> = (0..12).map(|i| format!("eeee{i:08}")).collect();
    plant(
        &env,
        &f,
        &many.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let s = sinks();
    let mut store = env.store();
    let tx = store.read().unwrap();
    type Check = fn(&Result<Finding, BaselineError>) -> bool;
    let table: &[(&str, Check)] = &[
        ("%", |r| matches!(r, Err(BaselineError::PrefixTooShort(_)))),
        ("%%%%", |r| matches!(r, Err(BaselineError::NotFound(_)))),
        ("abc%", |r| matches!(r, Err(BaselineError::NotFound(_)))),
        ("abc_", |r| matches!(r, Err(BaselineError::NotFound(_)))),
        ("ab_d0", |r| matches!(r, Err(BaselineError::NotFound(_)))),
        ("abce", |r| matches!(r, Ok(f) if f.id == "abce00000003")),
        (
            " ABCD00000002 ",
            |r| matches!(r, Ok(f) if f.id == "abcd00000002"),
        ),
        ("abcd", |r| {
            matches!(r, Err(BaselineError::Ambiguous { candidates, more: false, .. })
                if candidates.iter().map(|c| c.id.as_str()).collect::<Vec<_>>() == ["abcd00000001", "abcd00000002"])
        }),
        (
            "eeee",
            |r| matches!(r, Err(BaselineError::Ambiguous { candidates, more: true, .. }) if candidates.len() == 10),
        ),
    ];
    for (input, check) in table {
        let r = accessdrift::baseline::resolve(&tx, input);
        assert!(check(&r), "{input:?}: {r:?}");
    }
    let msg = accessdrift::baseline::resolve(&tx, "abcd")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("abcd00000001  planted abcd00000001") && msg.contains("abcd00000002"),
        "{msg}"
    );
    drop(tx);
    let err = svc(&mut store, &env, &s)
        .approve("x", &["%".to_string()], None)
        .unwrap_err();
    assert!(matches!(err, BaselineError::PrefixTooShort(_)), "{err}");
}

#[test]
fn several_ids_apply_all_or_none() {
    let (env, f) = two_days();
    let version = baseline_version(&env);
    let before = env.dump();
    let s = sinks();
    let mut store = env.store();
    for bad in ["ffffffffffff", "%%%%"] {
        let ids = [f.id.clone(), bad.to_string()];
        let err = svc(&mut store, &env, &s)
            .approve("lead", &ids, None)
            .unwrap_err();
        assert!(matches!(err, BaselineError::NotFound(_)), "{err}");
        let err = svc(&mut store, &env, &s).ack("oncall", &ids).unwrap_err();
        assert!(matches!(err, BaselineError::NotFound(_)), "{err}");
    }
    drop(store);
    assert_eq!(env.dump(), before, "nothing written when one id is bad");
    assert_eq!(baseline_version(&env), version);
    assert_eq!(finding(&env, &f.id).status, Status::Open);
}

#[test]
fn ack_of_an_acknowledged_finding_is_a_no_op() {
    let (env, f) = two_days();
    let s = sinks();
    let mut store = env.store();
    let out = svc(&mut store, &env, &s)
        .ack("oncall", std::slice::from_ref(&f.id))
        .unwrap();
    assert_eq!(out.acknowledged.len(), 1);
    assert_eq!(
        out.acknowledged[0].resolution.as_deref(),
        Some("acknowledged by oncall")
    );
    let again = svc(&mut store, &env, &s)
        .ack("someone-else", &[f.id[..6].to_string(), f.id.clone()])
        .unwrap();
    assert!(again.acknowledged.is_empty());
    assert_eq!(again.already.len(), 1, "the same finding twice counts once");
    drop(store);
    assert_eq!(
        finding(&env, &f.id).resolution.as_deref(),
        Some("acknowledged by oncall"),
        "a no-op keeps who acknowledged first"
    );
}

fn export_json(env: &Env) -> Value {
    let s = sinks();
    let file = svc(&mut env.store(), env, &s).export().unwrap();
    serde_json::to_value(file).unwrap()
}

fn import(
    env: &Env,
    by: &str,
    file: &Value,
    opts: ImportOptions,
) -> Result<accessdrift::baseline::ImportOutcome, BaselineError> {
    let s = sinks();
    svc(&mut env.store(), env, &s).import(by, "b.json", &file.to_string(), opts)
}

#[test]
fn import_of_a_hand_edited_file_canonicalises_and_records_the_importer() {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let s = sinks();
    svc(&mut env.store(), &env, &s).capture("lead", "").unwrap();
    let mut file = export_json(&env);
    for e in file["entries"].as_array_mut().unwrap() {
        e["approved_by"] = json!("mallory");
        match e["kind"].as_str().unwrap() {
            "role_assignment" => {
                // Upper-case GUIDs and scope, in the value and the key.
                e["key"] = json!(e["key"].as_str().unwrap().to_uppercase());
                let p = e["value"]["principal_id"].as_str().unwrap().to_uppercase();
                e["value"]["principal_id"] = json!(p);
                let sc = e["value"]["scope"].as_str().unwrap().to_uppercase();
                e["value"]["scope"] = json!(sc);
            }
            "cluster_role_binding" => {
                let subj = e["value"]["subjects"].as_array_mut().unwrap();
                subj.reverse();
                for x in subj.iter_mut() {
                    if x["kind"] == "Group" {
                        x["name"] = json!(GROUP.to_uppercase());
                    }
                }
            }
            _ => {}
        }
    }
    let out = import(&env, "reviewer", &file, ImportOptions::default()).unwrap();
    assert!(out.plan.is_empty(), "canonically equal: {:?}", out.plan);
    let mut store = env.store();
    let diffs = svc(&mut store, &env, &s).diff().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");

    // A real change in the file is recorded as approved by the importer, not the file.
    let mut file = export_json(&env);
    file["entries"][0]["value"]["subjects"] = json!([{"kind": "User", "name": "zed"}]);
    file["entries"][0]["approved_by"] = json!("mallory");
    let out = import(&env, "reviewer", &file, ImportOptions::default()).unwrap();
    assert_eq!(out.plan.replaces.len(), 1);
    let snap = svc(&mut store, &env, &s).snapshot().unwrap();
    let crb = snap
        .entries
        .iter()
        .find(|e| e.kind == FactKind::ClusterRoleBinding)
        .unwrap();
    assert_eq!(crb.approved_by, "reviewer");
    assert_eq!(snap.version.unwrap().actor, "reviewer");
}

#[test]
fn import_validates_every_entry_against_its_kind() {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let ra = json!({"scope": "/subscriptions/s", "principal_id": P1, "role_definition_id": OWNER});
    let good_key = format!("/subscriptions/s|{P1}|{OWNER}");
    // (entries, index, field, words in the message)
    let table: Vec<(Value, usize, &str, &str)> = vec![
        (
            json!([{"kind": "role_assignment", "key": good_key, "value": ra}, {"kind": "nope", "key": "k", "value": {}}]),
            1,
            "kind",
            "unknown fact kind",
        ),
        (
            json!([{"kind": "role_assignment", "key": good_key, "value": {"scope": "/subscriptions/s", "role_definition_id": OWNER}}]),
            0,
            "value.principal_id",
            "required",
        ),
        (
            json!([{"kind": "role_assignment", "key": good_key, "value": {"scope": "/subscriptions/s", "principal_id": 7, "role_definition_id": OWNER}}]),
            0,
            "value.principal_id",
            "found a number",
        ),
        (
            json!([{"kind": "role_assignment", "key": "/subscriptions/other|x|y", "value": ra}]),
            0,
            "key",
            "does not match the value",
        ),
        (
            json!([{"kind": "role_binding", "key": "c1/ns/b", "value": {"role_ref": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User"}]}}]),
            0,
            "value.subjects[0].name",
            "required",
        ),
        (
            json!([{"kind": "cluster_role_binding", "key": "c1/ns/b", "value": {"role_ref": {"kind": "ClusterRole", "name": "r"}}}]),
            0,
            "key",
            "cluster/name",
        ),
        (
            json!([{"kind": "cluster_settings", "key": "/x/managedclusters/a", "value": {"disable_local_acounts": true}}]),
            0,
            "value.disable_local_accounts",
            "required",
        ),
        (
            json!([{"kind": "service_account", "key": "c1/ns/sa", "value": {"automount_token": "yes"}}]),
            0,
            "value.automount_token",
            "true, false or null",
        ),
        (
            json!([{"kind": "role", "key": "c1/ns/r", "value": {"rules": [], "rulez": []}}]),
            0,
            "value.rulez",
            "not a field",
        ),
        (
            json!([{"kind": "federated_credential", "key": "/x/fic", "value": []}]),
            0,
            "value",
            "must be an object",
        ),
        (
            json!([{"kind": "role_assignment", "key": good_key, "value": ra}, {"kind": "role_assignment", "key": good_key.to_uppercase(), "value": ra}]),
            1,
            "key",
            "appears twice",
        ),
    ];
    let before = env.dump();
    for (entries, index, field, words) in table {
        let file = json!({"format": "accessdrift-baseline/v1", "entries": entries});
        let err = import(&env, "x", &file, ImportOptions::default()).unwrap_err();
        let msg = err.to_string();
        match &err {
            BaselineError::BadEntry(e) => {
                assert_eq!((e.index, e.field.as_str()), (index, field), "{msg}");
            }
            other => panic!("{entries}: {other}"),
        }
        assert!(msg.contains(words) && msg.contains("b.json"), "{msg}");
    }
    assert_eq!(env.dump(), before, "invalid files change nothing");
}

#[test]
fn import_refuses_removing_most_of_the_baseline_unless_forced_and_dry_run_changes_nothing() {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let s = sinks();
    svc(&mut env.store(), &env, &s).capture("lead", "").unwrap();
    let mut file = export_json(&env);
    assert_eq!(file["entries"].as_array().unwrap().len(), 2);
    // Remove both entries, add one: 2 of 2 removed.
    file["entries"] = json!([{"kind": "service_account", "key": "c1/ns/sa", "value": {"automount_token": false}}]);
    let before = env.dump();
    let err = import(&env, "x", &file, ImportOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            BaselineError::WouldRemoveMost {
                removes: 2,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    let dry = import(
        &env,
        "x",
        &file,
        ImportOptions {
            dry_run: true,
            force: true,
        },
    )
    .unwrap();
    assert!(dry.applied.is_none());
    assert_eq!(
        (
            dry.plan.adds.len(),
            dry.plan.replaces.len(),
            dry.plan.removes.len()
        ),
        (1, 0, 2)
    );
    assert_eq!(
        env.dump(),
        before,
        "refused and dry-run imports change nothing"
    );
    let done = import(
        &env,
        "x",
        &file,
        ImportOptions {
            dry_run: false,
            force: true,
        },
    )
    .unwrap();
    assert_eq!(done.applied.unwrap().changed, 3);
    // Removing exactly half is allowed without --force.
    let env2 = Env::new();
    env2.replay(&baseline_day1(&env2));
    svc(&mut env2.store(), &env2, &s)
        .capture("lead", "")
        .unwrap();
    let mut half = export_json(&env2);
    half["entries"].as_array_mut().unwrap().pop();
    assert!(import(&env2, "x", &half, ImportOptions::default()).is_ok());
}

#[test]
fn export_without_a_baseline_is_an_error() {
    let env = Env::new();
    env.replay(&baseline_day1(&env));
    let s = sinks();
    let err = svc(&mut env.store(), &env, &s).export().unwrap_err();
    assert!(matches!(err, BaselineError::NoBaseline), "{err}");
    assert!(err.to_string().contains("baseline capture"), "{err}");
}

#[test]
fn rollback_restores_an_earlier_version_as_a_new_one() {
    let (env, f) = two_days();
    let s = sinks();
    let mut store = env.store();
    let v1 = baseline_version(&env).unwrap();
    let v1_entries = svc(&mut store, &env, &s).snapshot().unwrap().entries;
    svc(&mut store, &env, &s)
        .approve("lead", std::slice::from_ref(&f.id), None)
        .unwrap();
    assert_eq!(finding(&env, &f.id).status, Status::Approved);

    let a = svc(&mut store, &env, &s).rollback("oncall", v1).unwrap();
    assert_eq!(a.version, v1 + 2);
    assert_eq!(a.changed, 1);
    assert_eq!(a.stats.reopened, 1, "the approved grant is drift again");
    let snap = svc(&mut store, &env, &s).snapshot().unwrap();
    let v = snap.version.unwrap();
    assert_eq!(
        (v.action.as_str(), v.actor.as_str()),
        ("rollback", "oncall")
    );
    let values = |es: &[accessdrift::store::BaselineEntry]| {
        es.iter()
            .map(|e| (e.kind, e.key.clone(), e.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&snap.entries), values(&v1_entries));
    let g = finding(&env, &f.id);
    assert_eq!(
        (g.status, g.change),
        (Status::Open, Some(DriftChange::Unapproved))
    );

    for (version, want) in [
        (v1 + 2, "current one"),
        (99, "versions are 1 to 3"),
        (0, "does not exist"),
    ] {
        let err = svc(&mut store, &env, &s)
            .rollback("x", version)
            .unwrap_err();
        assert!(err.to_string().contains(want), "{version}: {err}");
    }
}

#[test]
fn diff_names_the_finding_of_each_difference() {
    let (env, f) = two_days();
    let s = sinks();
    let diffs = svc(&mut env.store(), &env, &s).diff().unwrap();
    assert_eq!(diffs.len(), 1);
    let d = &diffs[0];
    assert_eq!(
        (d.change, d.finding_id.as_str(), d.finding_status),
        (DriftChange::Unapproved, f.id.as_str(), Some(Status::Open))
    );
    assert_eq!(d.actual, f.actual);
}
