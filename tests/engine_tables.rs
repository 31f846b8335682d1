//! Pure engine tables: every drift kind and every transition, no store, no I/O.

use accessdrift::config::Config;
use accessdrift::domain::{Activity, ActivityKind, Actor, EventTime, FactKind, Provenance};
use accessdrift::engine::drift::{evaluate, Cause, DriftInput, Observed};
use accessdrift::engine::{activity, DriftChange, Finding, Severity, Status, TransitionKind};
use serde_json::{json, Value};

fn prov(t: i64, who: &str, corr: &str) -> Provenance {
    Provenance {
        source: "test".into(),
        event_time: EventTime::from_unix_seconds(t),
        correlation_id: Some(corr.into()),
        resource_version: None,
        operation: "op".into(),
        actor: Actor {
            upn: Some(who.into()),
            ..Default::default()
        },
        location: Default::default(),
    }
}

fn owner_at(scope: &str) -> Value {
    json!({"scope": scope, "principal_id": "p1", "role_definition_id": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"})
}

fn finding_with(
    status: Status,
    severity: Severity,
    change: DriftChange,
    actual: Option<Value>,
) -> Finding {
    let cfg = Config::default();
    let p = prov(100, "alice@contoso.com", "c0");
    let t = evaluate(
        &DriftInput {
            kind: FactKind::RoleAssignment,
            key: "k",
            observed: Observed::Present(&owner_at("/subscriptions/s/resourcegroups/rg")),
            baseline: None,
            existing: None,
            cause: Cause::Observation(&p),
            fact_prov: Some(&p),
        },
        &cfg,
    )
    .unwrap();
    let mut f = t.finding;
    f.status = status;
    f.severity = severity;
    f.change = Some(change);
    f.actual = actual;
    f
}

/// (name, observed, baseline, existing, expected transition, expected change, expected status)
#[test]
fn drift_transition_table() {
    let cfg = Config::default();
    let rg = owner_at("/subscriptions/s/resourcegroups/rg");
    let rg2 = json!({"scope": "/subscriptions/s/resourcegroups/rg", "principal_id": "p1", "role_definition_id": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "condition": "x"});
    let open_unapproved = finding_with(
        Status::Open,
        Severity::High,
        DriftChange::Unapproved,
        Some(rg.clone()),
    );
    let resolved = finding_with(
        Status::Resolved,
        Severity::High,
        DriftChange::Unapproved,
        Some(rg.clone()),
    );
    let open_low = finding_with(
        Status::Open,
        Severity::Low,
        DriftChange::Unapproved,
        Some(rg.clone()),
    );
    type Row<'a> = (
        &'a str,
        Observed<'a>,
        Option<&'a Value>,
        Option<&'a Finding>,
        Option<TransitionKind>,
        Option<DriftChange>,
        Option<Status>,
    );
    let table: Vec<Row> = vec![
        (
            "unapproved opens",
            Observed::Present(&rg),
            None,
            None,
            Some(TransitionKind::Opened),
            Some(DriftChange::Unapproved),
            Some(Status::Open),
        ),
        (
            "missing opens",
            Observed::Deleted,
            Some(&rg),
            None,
            Some(TransitionKind::Opened),
            Some(DriftChange::Missing),
            Some(Status::Open),
        ),
        (
            "changed opens",
            Observed::Present(&rg2),
            Some(&rg),
            None,
            Some(TransitionKind::Opened),
            Some(DriftChange::Changed),
            Some(Status::Open),
        ),
        (
            "equal is quiet",
            Observed::Present(&rg),
            Some(&rg),
            None,
            None,
            None,
            None,
        ),
        (
            "never observed is not missing",
            Observed::Unknown,
            Some(&rg),
            None,
            None,
            None,
            None,
        ),
        (
            "deleted and unapproved is quiet",
            Observed::Deleted,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            "state returns: resolve",
            Observed::Deleted,
            None,
            Some(&open_unapproved),
            Some(TransitionKind::Resolved),
            Some(DriftChange::Unapproved),
            Some(Status::Resolved),
        ),
        (
            "same drift again: no transition",
            Observed::Present(&rg),
            None,
            Some(&open_unapproved),
            None,
            None,
            None,
        ),
        (
            "drift after resolve: reopen",
            Observed::Present(&rg),
            None,
            Some(&resolved),
            Some(TransitionKind::Reopened),
            Some(DriftChange::Unapproved),
            Some(Status::Open),
        ),
        (
            "severity moves: severity_changed",
            Observed::Present(&rg),
            None,
            Some(&open_low),
            Some(TransitionKind::SeverityChanged {
                from: Severity::Low,
            }),
            Some(DriftChange::Unapproved),
            Some(Status::Open),
        ),
        (
            "unapproved becomes changed: update",
            Observed::Present(&rg2),
            Some(&rg),
            Some(&open_unapproved),
            Some(TransitionKind::Updated),
            Some(DriftChange::Changed),
            Some(Status::Open),
        ),
    ];
    for (name, observed, baseline, existing, want_kind, want_change, want_status) in table {
        let p = prov(200, "mallory@contoso.com", "c1");
        let t = evaluate(
            &DriftInput {
                kind: FactKind::RoleAssignment,
                key: "k",
                observed,
                baseline,
                existing,
                cause: Cause::Observation(&p),
                fact_prov: Some(&p),
            },
            &cfg,
        );
        assert_eq!(
            t.as_ref().map(|t| t.kind.clone()),
            want_kind,
            "{name}: transition"
        );
        if let Some(t) = t {
            assert_eq!(t.finding.change, want_change, "{name}: change");
            assert_eq!(Some(t.finding.status), want_status, "{name}: status");
            assert_eq!(
                t.finding.id, open_unapproved.id,
                "{name}: one finding per fact"
            );
            if t.kind != TransitionKind::Resolved {
                assert_eq!(
                    t.finding.actor.upn.as_deref(),
                    Some("mallory@contoso.com"),
                    "{name}: who"
                );
            }
        }
    }
}

#[test]
fn approval_resolves_as_approved_and_counts_a_transition() {
    let cfg = Config::default();
    let rg = owner_at("/subscriptions/s/resourcegroups/rg");
    let open = finding_with(
        Status::Open,
        Severity::High,
        DriftChange::Unapproved,
        Some(rg.clone()),
    );
    let t = evaluate(
        &DriftInput {
            kind: FactKind::RoleAssignment,
            key: "k",
            observed: Observed::Present(&rg),
            baseline: Some(&rg),
            existing: Some(&open),
            cause: Cause::Baseline {
                by: "lead",
                at: EventTime::from_unix_seconds(300),
            },
            fact_prov: None,
        },
        &cfg,
    )
    .unwrap();
    assert_eq!(t.kind, TransitionKind::Resolved);
    assert_eq!(t.finding.status, Status::Approved);
    assert_eq!(t.finding.resolution.as_deref(), Some("approved by lead"));
    assert_eq!(t.finding.approved_by.as_deref(), Some("lead"));
    assert_eq!(t.finding.transitions, open.transitions + 1);
    assert_ne!(t.finding.idempotency_key(), open.idempotency_key());
}

#[test]
fn changed_has_a_field_level_diff() {
    let cfg = Config::default();
    let base = json!({"disable_local_accounts": true, "aad": {"managed": true, "admin_group_object_ids": ["g1"]}});
    let now = json!({"disable_local_accounts": false, "aad": {"managed": true, "admin_group_object_ids": ["g1", "g2"]}});
    let p = prov(1, "m@x", "c");
    let t = evaluate(
        &DriftInput {
            kind: FactKind::ClusterSettings,
            key: "/s/managedclusters/aks",
            observed: Observed::Present(&now),
            baseline: Some(&base),
            existing: None,
            cause: Cause::Observation(&p),
            fact_prov: Some(&p),
        },
        &cfg,
    )
    .unwrap();
    let diff: Vec<String> = t.finding.diff.iter().map(ToString::to_string).collect();
    assert_eq!(
        diff,
        vec![
            "aad.admin_group_object_ids[+]: ∅ → \"g2\"",
            "disable_local_accounts: true → false"
        ]
    );
    assert_eq!(
        t.finding.severity,
        Severity::Critical,
        "turning local accounts back on is critical"
    );
}

#[test]
fn severity_table() {
    let cfg = Config::default();
    let p = prov(1, "m@x", "c");
    let cases: Vec<(FactKind, Value, Severity)> = vec![
        (
            FactKind::RoleAssignment,
            owner_at("/subscriptions/s"),
            Severity::Critical,
        ),
        (
            FactKind::RoleAssignment,
            owner_at("/subscriptions/s/resourcegroups/rg"),
            Severity::High,
        ),
        (
            FactKind::RoleAssignment,
            json!({"scope": "/subscriptions/s/resourcegroups/rg", "principal_id": "p", "role_definition_id": "7f951dda-4ed3-4680-a7ca-43fe172d538d"}),
            Severity::Low,
        ),
        (
            FactKind::ClusterRoleBinding,
            json!({"role_ref": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [], "platform_managed": false}),
            Severity::Critical,
        ),
        (
            FactKind::ClusterRoleBinding,
            json!({"role_ref": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [], "platform_managed": true}),
            Severity::Low,
        ),
        (
            FactKind::RoleBinding,
            json!({"role_ref": {"kind": "Role", "name": "deployer"}, "subjects": [], "platform_managed": false}),
            Severity::Medium,
        ),
        (
            FactKind::FederatedCredential,
            json!({"issuer": "i", "subject": "s", "audiences": []}),
            Severity::High,
        ),
        (
            FactKind::RoleDefinition,
            json!({"permissions": [{"actions": ["microsoft.containerservice/managedclusters/listclusteradmincredential/action"]}]}),
            Severity::High,
        ),
    ];
    for (kind, v, want) in cases {
        let t = evaluate(
            &DriftInput {
                kind,
                key: "k",
                observed: Observed::Present(&v),
                baseline: None,
                existing: None,
                cause: Cause::Observation(&p),
                fact_prov: Some(&p),
            },
            &cfg,
        )
        .unwrap();
        assert_eq!(t.finding.severity, want, "{kind} {v}");
    }
}

#[test]
fn admin_credential_activity_table() {
    let cluster = "/subscriptions/s/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks";
    let a = Activity {
        kind: ActivityKind::AdminCredentialListed,
        subject: cluster.into(),
    };
    let off = json!({"disable_local_accounts": true});
    let on = json!({"disable_local_accounts": false});
    let p1 = prov(10, "mallory@contoso.com", "c1");
    let p2 = prov(20, "mallory@contoso.com", "c2");

    // Severity follows the baseline's local-accounts setting.
    for (baseline, want) in [
        (Some(&off), Severity::Critical),
        (Some(&on), Severity::High),
        (None, Severity::High),
    ] {
        let t = activity::evaluate(&a, &p1, baseline, None).unwrap();
        assert_eq!(
            (t.kind.clone(), t.finding.severity),
            (TransitionKind::Opened, want),
            "{baseline:?}"
        );
    }
    let first = activity::evaluate(&a, &p1, Some(&off), None)
        .unwrap()
        .finding;
    // The same record again (duplicate): nothing.
    assert_eq!(activity::evaluate(&a, &p1, Some(&off), Some(&first)), None);
    // Another listing while open: folded in, no new alert.
    let t = activity::evaluate(&a, &p2, Some(&off), Some(&first)).unwrap();
    assert_eq!(
        (t.kind.clone(), t.finding.occurrences, t.finding.id.clone()),
        (TransitionKind::Updated, 2, first.id.clone())
    );
    // After acknowledgement a new listing reopens it.
    let mut acked = t.finding.clone();
    acked.status = Status::Acknowledged;
    let t = activity::evaluate(
        &a,
        &prov(30, "mallory@contoso.com", "c3"),
        Some(&off),
        Some(&acked),
    )
    .unwrap();
    assert_eq!(
        (t.kind, t.finding.status),
        (TransitionKind::Reopened, Status::Open)
    );
    // Someone else gets a finding of their own.
    assert_ne!(
        activity::finding_id(&a, &prov(10, "bob@contoso.com", "c9")),
        first.id
    );
}
