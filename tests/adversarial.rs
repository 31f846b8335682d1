//! The pipeline under a live, adversarial stream: batch boundaries, arrival order, clock
//! skew, deletes before writes, records without correlation ids, redeliveries. Each case is
//! the one that lost a real change before per-change evaluation, tombstones and ingest-time
//! expiry existed.

mod common;

use accessdrift::config::Config;
use accessdrift::domain::{EventTime, FactKind};
use accessdrift::engine::{Finding, Status};
use accessdrift::notify::Alert;
use accessdrift::pipeline::{replay, Pipeline, SkipReason};
use accessdrift::store::{BaselineEntry, Store};
use common::*;
use serde_json::{json, Value};
use std::cell::Cell;
use std::path::PathBuf;

const MALLORY_OID: &str = "6d6d6d6d-0000-4000-8000-00000000dead";

/// Approves everything observed now (an empty store gives an empty baseline: drift is judged
/// from the first record on).
fn capture(db: &std::path::Path, cfg: &Config) {
    let mut store = Store::open(db).unwrap();
    let tx = store.tx().unwrap();
    let at = EventTime::from_unix_seconds(1);
    let v = tx.new_baseline_version("lead", "capture", "", at).unwrap();
    for f in tx.facts().unwrap() {
        if let Some(value) = f.value {
            let e = BaselineEntry {
                kind: f.kind,
                key: f.key,
                value,
                version: v,
                approved_by: "lead".into(),
                approved_at: at,
                from_finding: None,
            };
            tx.approve(v, &e).unwrap();
        }
    }
    accessdrift::pipeline::reevaluate_all(&tx, cfg, "lead", at, &["stdout".to_string()]).unwrap();
    tx.commit().unwrap();
}

fn findings(env: &Env) -> Vec<Finding> {
    env.store().read().unwrap().findings(false).unwrap()
}

/// `(finding id, transition)` of every queued alert, in queue order.
fn alerts(env: &Env) -> Vec<(String, String)> {
    let mut store = env.store();
    let tx = store.read().unwrap();
    tx.outbox(accessdrift::store::OutboxState::Pending, None, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| (r.finding_id, r.transition))
        .collect()
}

fn alert_payloads(env: &Env) -> Vec<Alert> {
    let mut store = env.store();
    let tx = store.read().unwrap();
    tx.outbox(accessdrift::store::OutboxState::Pending, None, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.payload).unwrap())
        .collect()
}

fn at(day: u32, h: u32, m: u32, s: u32) -> String {
    format!("2026-11-{day:02}T{h:02}:{m:02}:{s:02}.0000000Z")
}

fn owner_body(principal: &str) -> Value {
    json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"),
        "principalId": principal, "principalType": "User", "scope": format!("/subscriptions/{SUB}")}})
}

const RA_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const RA_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";

/// Start (with body), Accept, Success of an Owner grant at one time.
fn grant(corr: &str, name: &str, principal: &str, t: (u32, u32, u32, u32)) -> Vec<Rec> {
    let id = assignment_id(name);
    let (d, h, m, s) = t;
    vec![
        Rec::new(RA_WRITE, &id, "Start", corr, &at(d, h, m, s)).request(owner_body(principal)),
        Rec::new(RA_WRITE, &id, "Accept", corr, &at(d, h, m, s + 1)),
        Rec::new(RA_WRITE, &id, "Success", corr, &at(d, h, m, s + 2)),
    ]
}

fn revoke(corr: &str, name: &str, t: (u32, u32, u32, u32)) -> Vec<Rec> {
    let id = assignment_id(name);
    let (d, h, m, s) = t;
    vec![
        Rec::new(RA_DELETE, &id, "Start", corr, &at(d, h, m, s)),
        Rec::new(RA_DELETE, &id, "Success", corr, &at(d, h, m, s + 1)),
    ]
}

fn lines(recs: &[Rec]) -> Vec<String> {
    recs.iter().map(Rec::line).collect()
}

fn open(env: &Env) -> Vec<Finding> {
    findings(env)
        .into_iter()
        .filter(|f| f.status.is_active())
        .collect()
}

// ---- 1. per-change evaluation --------------------------------------------------------------

#[test]
fn grant_revoked_within_one_batch_is_opened_then_resolved_with_its_actor() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let mut recs = grant("c-grant", "ra-hide", MALLORY_OID, (3, 10, 0, 0));
    recs.extend(revoke("c-revoke", "ra-hide", (3, 10, 0, 40)));
    let s = env.replay(&[env.write("d2.json", &[envelope(&recs.iter().collect::<Vec<_>>())])]);
    assert_eq!((s.stats.opened, s.stats.resolved), (1, 1), "{:?}", s.stats);
    let f = findings(&env);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, Status::Resolved);
    assert_eq!(f[0].actor.upn.as_deref(), Some("mallory@contoso.com"));
    let a = alerts(&env);
    assert_eq!(
        a.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["opened", "resolved"]
    );
    let opened = &alert_payloads(&env)[0];
    assert_eq!(opened.severity.as_str(), "critical");
    assert_eq!(opened.actor.object_id.as_deref(), Some(MALLORY_OID));
}

/// A day of changes that exercises every join: out-of-order phases, use-and-hide, a revoke
/// before its grant, duplicates, Kubernetes churn and deletes.
fn busy_day() -> Vec<String> {
    let mut out = Vec::new();
    let g1 = grant(
        "c1",
        "ra1",
        "11111111-0000-4000-8000-000000000001",
        (3, 9, 0, 0),
    );
    // Success and Accept first, body last.
    out.extend(lines(&[g1[2].clone(), g1[1].clone()]));
    let k = crb(
        "ci-admin",
        "cluster-admin",
        ("User", "ci@contoso.com"),
        "10",
        "2026-11-03T09:00:05Z",
    );
    out.push(watch("ADDED", &k));
    out.push(g1[0].line());
    let hide = grant(
        "c2",
        "ra2",
        "22222222-0000-4000-8000-000000000002",
        (3, 9, 10, 0),
    );
    out.extend(lines(&hide));
    out.extend(lines(&revoke("c3", "ra2", (3, 9, 10, 40))));
    // A revoke delivered before its grant.
    out.extend(lines(&revoke("c5", "ra3", (3, 9, 30, 0))));
    out.extend(lines(&grant(
        "c4",
        "ra3",
        "33333333-0000-4000-8000-000000000003",
        (3, 9, 20, 0),
    )));
    // Redelivered Success of the first grant.
    out.push(g1[2].line());
    let k2 = crb(
        "ci-admin",
        "cluster-admin",
        ("Group", "g-ci"),
        "11",
        "2026-11-03T09:40:00Z",
    );
    out.push(watch("MODIFIED", &k2));
    out.push(watch("DELETED", &k2));
    out
}

fn run_with_batch_size(n: usize) -> (Vec<Finding>, Vec<(String, String)>) {
    let mut env = Env::new();
    env.cfg.pipeline.batch_size = n;
    capture(&env.db(), &env.cfg);
    env.replay(&[env.write("day.ndjson", &busy_day())]);
    let mut f = findings(&env);
    let dir = env.dir.path().display().to_string();
    for x in &mut f {
        for e in &mut x.evidence {
            e.location = e.location.replace(&dir, "");
        }
        // Where a record was read (its index) is the same; nothing else may differ.
        x.evidence.sort_by(|a, b| a.location.cmp(&b.location));
    }
    (f, alerts(&env))
}

#[test]
fn findings_do_not_depend_on_batch_size() {
    let reference = run_with_batch_size(2000);
    assert!(
        reference.0.len() >= 4,
        "the scenario opens findings: {:#?}",
        reference.0
    );
    for n in [1, 3, 7] {
        let got = run_with_batch_size(n);
        assert_eq!(got.0, reference.0, "findings differ with batch_size {n}");
        assert_eq!(got.1, reference.1, "alerts differ with batch_size {n}");
    }
}

// ---- 2. clock skew and expiry --------------------------------------------------------------

#[test]
fn a_record_from_2099_does_not_expire_pending_phases() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let g = grant("c-late", "ra-f", MALLORY_OID, (3, 10, 0, 0));
    let future = Rec::new(
        "Microsoft.Storage/storageAccounts/write",
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
        "Success",
        "c-2099",
        "2099-01-01T00:00:00Z",
    );
    let weird = Rec::new(
        RA_WRITE,
        &assignment_id("ra-2099"),
        "Success",
        "c-2099b",
        "2099-01-01T00:00:00Z",
    )
    .request(owner_body("44444444-0000-4000-8000-000000000004"));
    // Start, then the far-future records (one irrelevant, one watched), then the Success in
    // a later batch: it must still find its Start.
    env.replay(&[env.write("a.json", &[g[0].line(), future.line(), weird.line()])]);
    let s = env.replay(&[env.write("b.json", &[g[2].line()])]);
    assert_eq!(s.stats.applied, 1, "{:?}", s.stats);
    let keys: Vec<String> = open(&env).iter().map(|f| f.fact_key.clone()).collect();
    assert!(keys.iter().any(|k| k.contains(MALLORY_OID)), "{keys:?}");
    // The 2099 grant is clamped to now + skew, not to 2099: a revoke dated today wins.
    let mut store = env.store();
    let tx = store.read().unwrap();
    let f = tx.facts().unwrap();
    let w = f
        .iter()
        .find(|r| r.key.contains("44444444"))
        .expect("the 2099 grant is stored");
    assert!(w.event_time < EventTime::now().add_nanos(3600 * 1_000_000_000));
}

#[test]
fn far_future_times_are_clamped_and_counted() {
    let env = Env::new();
    let r = Rec::new(
        RA_WRITE,
        &assignment_id("ra-x"),
        "Success",
        "c-x",
        "2099-12-31T00:00:00Z",
    )
    .request(owner_body(MALLORY_OID));
    let s = env.replay(&[env.write("a.json", &[r.line()])]);
    assert_eq!(s.stats.clamped, 1);
}

thread_local! {
    static CLOCK: Cell<i64> = const { Cell::new(0) };
}

fn test_clock() -> EventTime {
    EventTime(CLOCK.with(Cell::get))
}

fn replay_at(
    env: &Env,
    now: EventTime,
    files: &[PathBuf],
) -> accessdrift::pipeline::replay::ReplaySummary {
    CLOCK.with(|c| c.set(now.0));
    let mut store = env.store();
    let mut p = Pipeline::new(&mut store, &env.cfg, vec!["stdout".into()]).with_clock(test_clock);
    replay::run(&mut p, files, "c1").unwrap()
}

const HOUR: i64 = 3600 * 1_000_000_000;

#[test]
fn pending_phases_expire_by_ingest_time_and_markers_outlive_them() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let t0 = EventTime::from_unix_seconds(1_800_000_000);
    // An operation whose Success comes 25 h (wall clock) after its Start: the Start is gone.
    let late = grant("c-exp", "ra-exp", MALLORY_OID, (3, 10, 0, 0));
    replay_at(&env, t0, &[env.write("s.json", &[late[0].line()])]);
    let s = replay_at(
        &env,
        t0.add_nanos(25 * HOUR),
        &[env.write("x.json", &[late[2].line()])],
    );
    assert_eq!(s.stats.applied, 0);
    assert_eq!(s.stats.skipped.get(&SkipReason::Pending), Some(&1));
    // One within the TTL joins, even though its event time is days old.
    let ok = grant("c-ok", "ra-ok", MALLORY_OID, (1, 10, 0, 0));
    replay_at(&env, t0, &[env.write("s2.json", &[ok[0].line()])]);
    let s = replay_at(
        &env,
        t0.add_nanos(23 * HOUR),
        &[env.write("x2.json", &[ok[2].line()])],
    );
    assert_eq!(s.stats.applied, 1);
    // Its `applied` marker outlives the phase TTL: a redelivery two days later is a duplicate.
    let s = replay_at(
        &env,
        t0.add_nanos(72 * HOUR),
        &[env.write("x3.json", &[ok[2].line()])],
    );
    assert_eq!(s.stats.skipped.get(&SkipReason::Duplicate), Some(&1));
    // And after marker_ttl it is gone (the fact's last-writer-wins still keeps it harmless).
    let s = replay_at(
        &env,
        t0.add_nanos(10 * 24 * HOUR),
        &[env.write("x4.json", &[ok[2].line()])],
    );
    assert_eq!(s.stats.skipped.get(&SkipReason::Duplicate), None);
    assert_eq!(s.stats.opened + s.stats.reopened, 0);
}

// ---- 3. deletes before writes --------------------------------------------------------------

#[test]
fn revoke_before_grant_does_not_resurrect_the_grant() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let s1 = env.replay(&[env.write(
        "rev.json",
        &lines(&revoke("c-r", "ra-early", (3, 11, 0, 0))),
    )]);
    assert_eq!(s1.stats.tombstoned, 1);
    env.replay(&[env.write(
        "gr.json",
        &lines(&grant("c-g", "ra-early", MALLORY_OID, (3, 10, 0, 0))),
    )]);
    assert!(open(&env).is_empty(), "grant came back: {:#?}", open(&env));
    // It existed for an hour: that is reported, opened and resolved, with who did it.
    let f = findings(&env);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, Status::Resolved);
    assert_eq!(f[0].actor.upn.as_deref(), Some("mallory@contoso.com"));
    assert_eq!(
        alerts(&env)
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>(),
        ["opened", "resolved"]
    );
    let mut store = env.store();
    let tx = store.read().unwrap();
    let facts = tx.facts().unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].value, None, "the assignment is deleted");
}

#[test]
fn revoke_with_a_body_deletes_by_semantic_key() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let mut rev = revoke("c-r", "ra-b", (3, 11, 0, 0));
    rev[1].v["properties"]["responseBody"] = json!(owner_body(MALLORY_OID).to_string());
    let s = env.replay(&[env.write("rev.json", &lines(&rev))]);
    assert_eq!((s.stats.tombstoned, s.stats.applied), (0, 1));
    // A grant with another assignment id but the same principal, role and scope (an
    // re-creation older than the revoke) is superseded too.
    env.replay(&[env.write(
        "gr.json",
        &lines(&grant("c-g", "ra-b-other", MALLORY_OID, (3, 10, 0, 0))),
    )]);
    assert!(open(&env).is_empty());
}

#[test]
fn kubernetes_delete_before_modify_keeps_it_deleted() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let later = crb(
        "x",
        "cluster-admin",
        ("User", "eve@contoso.com"),
        "5",
        "2026-11-05T00:00:00Z",
    );
    let earlier = crb(
        "x",
        "cluster-admin",
        ("User", "eve@contoso.com"),
        "4",
        "2026-11-04T00:00:00Z",
    );
    env.replay(&[env.write(
        "k.ndjson",
        &[watch("DELETED", &later), watch("MODIFIED", &earlier)],
    )]);
    assert!(open(&env).is_empty());
    let mut store = env.store();
    let tx = store.read().unwrap();
    assert_eq!(
        tx.fact(FactKind::ClusterRoleBinding, "c1/x")
            .unwrap()
            .unwrap()
            .value,
        None
    );
}

// ---- 4. records without a correlation id ---------------------------------------------------

fn uncorrelated(mut r: Rec) -> Rec {
    r.v.as_object_mut().unwrap().remove("correlationId");
    r
}

#[test]
fn a_failure_without_correlation_id_blocks_only_its_own_operation() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let id = assignment_id("ra-nc");
    let failed_start = uncorrelated(Rec::new(RA_WRITE, &id, "Start", "", &at(3, 9, 0, 0)))
        .request(owner_body(MALLORY_OID));
    let failure = uncorrelated(Rec::new(RA_WRITE, &id, "Failure", "", &at(3, 9, 0, 1)));
    let g = grant("", "ra-nc", MALLORY_OID, (3, 9, 5, 0))
        .into_iter()
        .map(uncorrelated)
        .collect::<Vec<_>>();
    env.replay(&[env.write("f.json", &[failed_start.line(), failure.line()])]);
    let s = env.replay(&[env.write("g.json", &lines(&g))]);
    assert_eq!((s.stats.applied, s.stats.opened), (1, 1), "{:?}", s.stats);
}

#[test]
fn without_correlation_id_the_body_of_the_start_that_succeeded_applies() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    let id = assignment_id("ra-two");
    let first = uncorrelated(Rec::new(RA_WRITE, &id, "Start", "", &at(3, 9, 0, 0)))
        .request(owner_body("aaaaaaaa-0000-4000-8000-00000000000a"));
    let second = uncorrelated(Rec::new(RA_WRITE, &id, "Start", "", &at(3, 9, 5, 0)))
        .request(owner_body("bbbbbbbb-0000-4000-8000-00000000000b"));
    let success = uncorrelated(Rec::new(RA_WRITE, &id, "Success", "", &at(3, 9, 5, 2)));
    env.replay(&[env.write("a.json", &[first.line(), second.line(), success.line()])]);
    let keys: Vec<String> = open(&env).iter().map(|f| f.fact_key.clone()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains("bbbbbbbb"), "{keys:?}");
}

// ---- 6. who did it -------------------------------------------------------------------------

#[test]
fn a_finding_opened_by_a_baseline_change_names_who_made_the_change() {
    let env = Env::new();
    env.replay(&[env.write(
        "d1.json",
        &lines(&grant("c1", "ra1", MALLORY_OID, (2, 9, 0, 0))),
    )]);
    capture(&env.db(), &env.cfg);
    assert!(open(&env).is_empty());
    // The lead removes the grant from the baseline: the grant is now unapproved drift, made by
    // mallory (not by the lead, and not "unknown").
    let mut store = env.store();
    let tx = store.tx().unwrap();
    let v = tx
        .new_baseline_version("lead", "import", "", EventTime::from_unix_seconds(2))
        .unwrap();
    let key = tx.facts().unwrap()[0].key.clone();
    tx.unapprove(v, FactKind::RoleAssignment, &key).unwrap();
    accessdrift::pipeline::reevaluate_all(
        &tx,
        &env.cfg,
        "lead",
        EventTime::from_unix_seconds(2),
        &["stdout".into()],
    )
    .unwrap();
    tx.commit().unwrap();
    drop(store);
    let f = open(&env);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].actor.upn.as_deref(), Some("mallory@contoso.com"));
    assert_eq!(f[0].correlation_id.as_deref(), Some("c1"));
    // Approving it again resolves it, and the alert says who approved.
    let mut store = env.store();
    let tx = store.tx().unwrap();
    let v = tx
        .new_baseline_version("lead", "approve", "", EventTime::from_unix_seconds(3))
        .unwrap();
    let fact = tx.facts().unwrap().remove(0);
    tx.approve(
        v,
        &BaselineEntry {
            kind: fact.kind,
            key: fact.key,
            value: fact.value.unwrap(),
            version: v,
            approved_by: "carol".into(),
            approved_at: EventTime::from_unix_seconds(3),
            from_finding: None,
        },
    )
    .unwrap();
    accessdrift::pipeline::reevaluate_all(
        &tx,
        &env.cfg,
        "carol",
        EventTime::from_unix_seconds(3),
        &["stdout".into()],
    )
    .unwrap();
    tx.commit().unwrap();
    drop(store);
    let last = alert_payloads(&env).pop().unwrap();
    assert_eq!(last.transition.as_str(), "resolved");
    assert_eq!(last.approved_by.as_deref(), Some("carol"));
    assert!(
        last.one_line().contains("approved by carol"),
        "{}",
        last.one_line()
    );
}

fn admin_listing(corr: Option<&str>, upn: &str, time: &str) -> Rec {
    let mut r = Rec::new(
        "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
        &cluster_id(),
        "Success",
        corr.unwrap_or(""),
        time,
    );
    r.v["identity"]["claims"]["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] =
        json!(upn);
    match corr {
        Some(_) => r,
        None => uncorrelated(r),
    }
}

#[test]
fn activity_findings_key_on_object_id_and_redeliveries_are_duplicates() {
    let env = Env::new();
    capture(&env.db(), &env.cfg);
    // The same object id under two UPN spellings is one caller.
    let a = admin_listing(Some("c-a"), "mallory@contoso.com", &at(3, 9, 0, 0));
    let b = admin_listing(Some("c-b"), "Mallory.Renamed@contoso.com", &at(3, 9, 5, 0));
    env.replay(&[env.write("a.json", &[a.line(), b.line()])]);
    let f = open(&env);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].occurrences, 2);
    // A record without correlation id (no marker possible), delivered twice from two inputs,
    // counts once.
    let c = admin_listing(None, "mallory@contoso.com", &at(3, 9, 9, 0));
    env.replay(&[env.write("p1.json", &[c.line()])]);
    let s = env.replay(&[env.write("p2.json", &[c.line()])]);
    assert_eq!(
        s.stats.skipped.get(&SkipReason::Duplicate),
        Some(&1),
        "{:?}",
        s.stats
    );
    assert_eq!(open(&env)[0].occurrences, 3);
}
