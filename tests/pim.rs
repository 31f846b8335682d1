//! PIM through the pipeline and a real store, with an injected clock: an activation of an
//! approved eligibility is not drift whatever order its records come in, it resolves at its end
//! time, a redelivery changes nothing, and an expiry that overtakes its activation wins.

use accessdrift::config::Config;
use accessdrift::domain::{
    ChangeOp, EventTime, Fact, FactKind, FactRef, Location, Observation, Provenance,
};
use accessdrift::engine::{Finding, FindingKind, Status};
use accessdrift::pipeline::Pipeline;
use accessdrift::store::{BaselineEntry, Store};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};

const SCOPE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg";
const CAROL: &str = "cccccccc-0000-0000-0000-00000000000c";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const T0: i64 = 1_796_000_000;

static NOW: AtomicI64 = AtomicI64::new(T0);

fn clock() -> EventTime {
    EventTime::from_unix_seconds(NOW.load(Ordering::SeqCst))
}

fn key() -> String {
    format!("{SCOPE}|{CAROL}|{OWNER}")
}

fn prov(t: i64, op: &str) -> Provenance {
    Provenance {
        source: "activity-log".into(),
        event_time: EventTime::from_unix_seconds(t),
        correlation_id: Some(format!("corr-{op}-{t}")),
        resource_version: None,
        operation: op.into(),
        actor: Default::default(),
        location: Location {
            input: "test".into(),
            index: t as u64,
        },
    }
}

fn base() -> serde_json::Value {
    json!({"scope": SCOPE, "principal_id": CAROL, "role_definition_id": OWNER})
}

fn assignment(t: i64) -> Observation {
    Observation::immediate(
        ChangeOp::Upsert(Fact {
            kind: FactKind::RoleAssignment,
            key: key(),
            value: base(),
            resource_id: None,
        }),
        prov(t, "microsoft.authorization/roleassignments/write"),
    )
}

fn activation(t: i64, end: Option<i64>) -> Observation {
    let mut v = base();
    v["member_type"] = json!("Direct");
    v["end"] = json!(end.map(|e| EventTime::from_unix_seconds(e).to_string()));
    v["eligibility"] = json!(null);
    Observation::immediate(
        ChangeOp::Upsert(Fact {
            kind: FactKind::PimActivation,
            key: key(),
            value: v,
            resource_id: None,
        }),
        prov(t, "add member to role completed (pim activation)"),
    )
}

fn expiry(t: i64) -> Observation {
    Observation::immediate(
        ChangeOp::Delete {
            kind: FactKind::PimActivation,
            target: FactRef::Key(key()),
        },
        prov(t, "remove member from role (pim activation expired)"),
    )
}

/// A store whose baseline approves Carol's eligibility for Owner on the resource group.
fn store(dir: &tempfile::TempDir, approved: bool) -> Store {
    let mut s = Store::open(&dir.path().join("p.db")).unwrap();
    let tx = s.tx().unwrap();
    let at = EventTime::from_unix_seconds(1);
    let v = tx.new_baseline_version("test", "capture", "", at).unwrap();
    if approved {
        let mut value = base();
        value["member_type"] = json!("Direct");
        value["end"] = json!(null);
        tx.approve(
            v,
            &BaselineEntry {
                kind: FactKind::RoleEligibility,
                key: key(),
                value,
                version: v,
                approved_by: "test".into(),
                approved_at: at,
                from_finding: None,
            },
        )
        .unwrap();
    }
    tx.commit().unwrap();
    s
}

fn run(store: &mut Store, batches: Vec<Vec<Observation>>, now: i64) -> Vec<Finding> {
    NOW.store(now, Ordering::SeqCst);
    let cfg = Config::default();
    let mut p = Pipeline::new(store, &cfg, vec!["stdout".into()]).with_clock(clock);
    for b in batches {
        p.apply_batch(b, None).unwrap();
    }
    store.read().unwrap().findings(false).unwrap()
}

fn open(fs: &[Finding], rule: &str) -> usize {
    fs.iter()
        .filter(|f| f.rule == rule && f.status == Status::Open)
        .count()
}

fn assignment_drift(fs: &[Finding]) -> Option<&Finding> {
    fs.iter()
        .find(|f| f.kind == FindingKind::Drift && f.fact_kind == FactKind::RoleAssignment)
}

// One test: the clock is process-wide.
#[test]
fn activations_of_approved_eligibilities() {
    // Activation first, then the assignment it made: never drift; resolves at its end time.
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, true);
    let fs = run(
        &mut s,
        vec![vec![activation(T0, Some(T0 + 3600)), assignment(T0 + 1)]],
        T0 + 5,
    );
    assert!(assignment_drift(&fs).is_none(), "{fs:#?}");
    assert_eq!(open(&fs, "AZ-PIM-ACTIVATION"), 1, "{fs:#?}");
    // The same records again (redelivered): nothing new.
    let fs = run(
        &mut s,
        vec![vec![activation(T0, Some(T0 + 3600)), assignment(T0 + 1)]],
        T0 + 10,
    );
    assert_eq!(fs.len(), 1, "{fs:#?}");
    // Past the end, with no expiry record yet: any batch resolves it.
    let fs = run(&mut s, vec![vec![]], T0 + 3601);
    assert_eq!(open(&fs, "AZ-PIM-ACTIVATION"), 0, "{fs:#?}");
    assert!(assignment_drift(&fs).is_none());
    // PIM then removes the assignment: no "missing approved".
    let fs = run(
        &mut s,
        vec![vec![ChangeOp::Delete {
            kind: FactKind::RoleAssignment,
            target: FactRef::Key(key()),
        }]
        .into_iter()
        .map(|op| {
            Observation::immediate(
                op,
                prov(T0 + 3602, "microsoft.authorization/roleassignments/delete"),
            )
        })
        .collect()],
        T0 + 3700,
    );
    assert!(fs.iter().all(|f| f.status != Status::Open), "{fs:#?}");

    // The assignment first, its activation in a later batch: the drift it opened resolves.
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, true);
    let fs = run(&mut s, vec![vec![assignment(T0 + 1)]], T0 + 5);
    assert_eq!(assignment_drift(&fs).unwrap().status, Status::Open);
    let fs = run(&mut s, vec![vec![activation(T0, Some(T0 + 3600))]], T0 + 6);
    assert_ne!(
        assignment_drift(&fs).unwrap().status,
        Status::Open,
        "{fs:#?}"
    );

    // An eligibility nobody approved: the assignment is drift, the activation reported too.
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, false);
    let fs = run(
        &mut s,
        vec![vec![activation(T0, Some(T0 + 3600)), assignment(T0 + 1)]],
        T0 + 5,
    );
    assert_eq!(assignment_drift(&fs).unwrap().status, Status::Open);
    assert_eq!(open(&fs, "AZ-PIM-ACTIVATION"), 1);

    // The expiry record overtakes its activation: the older activation loses.
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, true);
    let fs = run(&mut s, vec![vec![expiry(T0 + 3600)]], T0 + 3601);
    assert!(fs.is_empty());
    let fs = run(&mut s, vec![vec![activation(T0, None)]], T0 + 3602);
    assert_eq!(open(&fs, "AZ-PIM-ACTIVATION"), 0, "{fs:#?}");
}
