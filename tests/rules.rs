//! The rules catalogue through the pipeline: policy findings open and resolve by themselves,
//! with or without a baseline; joins fire whichever side arrives first; exceptions and rule
//! settings gate them.

use accessdrift::config::rules::{Exception, RuleSettings};
use accessdrift::config::{ClusterConfig, Config};
use accessdrift::domain::{
    Actor, ChangeOp, EventTime, Fact, FactKind, FactRef, Location, Observation, Provenance,
    Severity,
};
use accessdrift::engine::rules::finding_id;
use accessdrift::engine::{Finding, FindingKind, Status};
use accessdrift::pipeline::Pipeline;
use accessdrift::store::Store;
use serde_json::{json, Value};

const SUB: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";
const CLUSTER: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks";
const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/tenant/aks/";
const MI: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/payments";
const MI_OID: &str = "eeeeeeee-0000-4000-8000-00000000000e";
const CLIENT: &str = "c11e0000-0000-4000-8000-0000000000c1";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const KUBELET_OID: &str = "aaaaaaaa-0000-4000-8000-00000000001e";

struct Env {
    dir: tempfile::TempDir,
    cfg: Config,
    t: i64,
}

fn config() -> Config {
    Config {
        clusters: vec![ClusterConfig {
            name: "c1".into(),
            resource_id: CLUSTER.into(),
            oidc_issuer: None,
        }],
        ..Config::default()
    }
}

fn prov(t: i64) -> Provenance {
    Provenance {
        source: "test".into(),
        event_time: EventTime::from_unix_seconds(1_790_000_000 + t),
        correlation_id: Some(format!("corr-{t}")),
        resource_version: None,
        operation: "test/write".into(),
        actor: Actor {
            upn: Some("mallory@contoso.com".into()),
            ..Actor::default()
        },
        location: Location {
            input: "test".into(),
            index: t as u64,
        },
    }
}

fn up(kind: FactKind, key: &str, value: Value) -> ChangeOp {
    ChangeOp::Upsert(Fact {
        kind,
        key: key.into(),
        value,
        resource_id: None,
    })
}

fn del(kind: FactKind, key: &str) -> ChangeOp {
    ChangeOp::Delete {
        kind,
        target: FactRef::Key(key.into()),
    }
}

fn wall_2027_03_01() -> EventTime {
    EventTime::parse("2027-03-01T00:00:00Z").unwrap()
}
fn wall_2027_04_02() -> EventTime {
    EventTime::parse("2027-04-02T00:00:00Z").unwrap()
}

impl Env {
    fn new(cfg: Config) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            cfg,
            t: 0,
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("t.db")).unwrap()
    }

    /// Applies the ops as one batch, one second apart; returns (opened, resolved, notifications).
    fn apply_at(&mut self, clock: fn() -> EventTime, ops: Vec<ChangeOp>) -> (u64, u64, u64) {
        let batch: Vec<Observation> = ops
            .into_iter()
            .map(|op| {
                self.t += 1;
                Observation::immediate(op, prov(self.t))
            })
            .collect();
        let mut store = self.store();
        let mut p = Pipeline::new(&mut store, &self.cfg, vec!["stdout".into()]).with_clock(clock);
        let s = p.apply_batch(batch, None).unwrap();
        (s.opened + s.reopened, s.resolved, s.notifications)
    }

    fn apply(&mut self, ops: Vec<ChangeOp>) -> (u64, u64, u64) {
        self.apply_at(wall_2027_03_01, ops)
    }

    fn finding(&self, rule: &str, key: &str) -> Option<Finding> {
        self.store()
            .read()
            .unwrap()
            .finding(&finding_id(rule, key))
            .unwrap()
    }

    fn status(&self, rule: &str, key: &str) -> Option<Status> {
        self.finding(rule, key).map(|f| f.status)
    }
}

fn cluster(local_accounts_off: bool) -> Value {
    json!({
        "disable_local_accounts": local_accounts_off,
        "enable_rbac": true,
        "aad": {"managed": true, "enable_azure_rbac": true, "admin_group_object_ids": ["0ad0ad00-0000-4000-8000-000000000001"], "tenant_id": "t"},
        "identity_type": "systemassigned",
        "user_assigned_identities": [],
        "kubelet_identity": {"resource_id": "/x/kubelet", "client_id": "k", "object_id": KUBELET_OID},
        "service_principal_client_id": "msi",
        "oidc_issuer_enabled": true,
        "oidc_issuer_url": ISSUER,
        "workload_identity_enabled": true,
        "addon_identities": {},
    })
}

fn fic_key() -> String {
    format!("{MI}/federatedidentitycredentials/payments-api")
}

fn fic() -> Value {
    json!({"issuer": ISSUER, "subject": "system:serviceaccount:payments:api", "audiences": ["api://AzureADTokenExchange"]})
}

fn admin_crb() -> Value {
    json!({"role_ref": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "payments"}], "platform_managed": false})
}

fn sa(client: Option<&str>) -> Value {
    json!({"workload_identity_client_id": client, "workload_identity_tenant_id": null, "automount_token": null, "platform_managed": false})
}

fn ra(scope: &str, principal: &str, role: &str) -> (String, Value) {
    (
        format!("{scope}|{principal}|{role}"),
        json!({"scope": scope, "principal_id": principal, "role_definition_id": role}),
    )
}

fn user_binding(platform: bool) -> Value {
    json!({"role_ref": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "alice@contoso.com"}], "platform_managed": platform})
}

#[test]
fn policy_opens_without_a_baseline_and_resolves_by_itself() {
    let mut env = Env::new(config());
    let (opened, _, notes) =
        env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(false))]);
    assert_eq!(
        (opened, notes),
        (1, 1),
        "AKS-LOCAL-ACCOUNTS opens before any baseline"
    );
    let f = env.finding("AKS-LOCAL-ACCOUNTS", CLUSTER).unwrap();
    assert_eq!(
        (f.kind, f.status, f.severity),
        (FindingKind::Policy, Status::Open, Severity::High)
    );
    assert_eq!(f.title, "Local accounts are enabled on cluster aks");
    assert_eq!(f.actor.upn.as_deref(), Some("mallory@contoso.com"));
    assert!(f.expected.as_ref().unwrap()["remediation"]
        .as_str()
        .unwrap()
        .contains("--disable-local-accounts"));
    let (_, resolved, _) = env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(true))]);
    assert_eq!(resolved, 1);
    assert_eq!(
        env.status("AKS-LOCAL-ACCOUNTS", CLUSTER),
        Some(Status::Resolved)
    );
    // The same state again: no new transition, no alert.
    assert_eq!(
        env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(true))]),
        (0, 0, 0)
    );
}

#[test]
fn owner_above_the_cluster_names_role_scope_and_principal() {
    let mut env = Env::new(config());
    let (key, v) = ra(SUB, "11111111-0000-4000-8000-000000000001", OWNER);
    env.apply(vec![up(FactKind::RoleAssignment, &key, v)]);
    let f = env
        .finding("AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER", &key)
        .unwrap();
    assert_eq!(
        f.title,
        "Owner on subscription 6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f for principal 11111111-0000-4000-8000-000000000001 (covers cluster aks)"
    );
    env.apply(vec![del(FactKind::RoleAssignment, &key)]);
    assert_eq!(
        env.status("AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER", &key),
        Some(Status::Resolved)
    );
}

/// X-FIC-TO-CLUSTER-ADMIN: either side first, and either side going resolves it.
#[test]
fn cross_plane_fires_whichever_side_arrives_first_and_resolves_when_either_goes() {
    let fic_side = || up(FactKind::FederatedCredential, &fic_key(), fic());
    let k8s_side = || {
        up(
            FactKind::ClusterRoleBinding,
            "c1/payments-api-admin",
            admin_crb(),
        )
    };
    for (first, second, name) in [
        (fic_side(), k8s_side(), "credential first"),
        (k8s_side(), fic_side(), "binding first"),
    ] {
        for (remove, what) in [
            (
                del(FactKind::ClusterRoleBinding, "c1/payments-api-admin"),
                "binding",
            ),
            (del(FactKind::FederatedCredential, &fic_key()), "credential"),
        ] {
            let mut env = Env::new(config());
            env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(true))]);
            env.apply(vec![first.clone()]);
            assert_eq!(
                env.status("X-FIC-TO-CLUSTER-ADMIN", &fic_key()),
                None,
                "{name}: one side only"
            );
            env.apply(vec![second.clone()]);
            let f = env.finding("X-FIC-TO-CLUSTER-ADMIN", &fic_key()).unwrap();
            assert_eq!(
                (f.status, f.severity),
                (Status::Open, Severity::Critical),
                "{name}"
            );
            env.apply(vec![remove]);
            assert_eq!(
                env.status("X-FIC-TO-CLUSTER-ADMIN", &fic_key()),
                Some(Status::Resolved),
                "{name}, then the {what} goes"
            );
        }
    }
}

/// X-WORKLOAD-IDENTITY-PRIVILEGED joins three facts; every arrival order ends in one finding.
#[test]
fn workload_identity_privileged_in_every_arrival_order() {
    let (ra_key, ra_v) = ra(SUB, MI_OID, OWNER);
    let sides = [
        up(
            FactKind::ServiceAccount,
            "c1/payments/api",
            sa(Some(CLIENT)),
        ),
        up(
            FactKind::ManagedIdentity,
            MI,
            json!({"principal_id": MI_OID, "client_id": CLIENT, "tenant_id": "t"}),
        ),
        up(FactKind::RoleAssignment, &ra_key, ra_v),
    ];
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut env = Env::new(config());
        for i in order {
            env.apply(vec![sides[i].clone()]);
        }
        let f = env.finding("X-WORKLOAD-IDENTITY-PRIVILEGED", "c1/payments/api");
        let f = f.unwrap_or_else(|| panic!("order {order:?}: no finding"));
        assert_eq!(f.status, Status::Open, "{order:?}");
        assert!(f.title.contains("Owner on subscription"), "{}", f.title);
        assert_eq!(
            f.evidence.len(),
            1,
            "{order:?}: opened once, by the last side"
        );
        // The grant going away resolves it; the annotation going away too.
        let mut gone = Env::new(config());
        for i in order {
            gone.apply(vec![sides[i].clone()]);
        }
        gone.apply(vec![del(FactKind::RoleAssignment, &ra_key)]);
        assert_eq!(
            gone.status("X-WORKLOAD-IDENTITY-PRIVILEGED", "c1/payments/api"),
            Some(Status::Resolved)
        );
        env.apply(vec![up(
            FactKind::ServiceAccount,
            "c1/payments/api",
            sa(None),
        )]);
        assert_eq!(
            env.status("X-WORKLOAD-IDENTITY-PRIVILEGED", "c1/payments/api"),
            Some(Status::Resolved)
        );
    }
}

#[test]
fn kubelet_grant_is_judged_when_the_cluster_settings_arrive_later() {
    let mut env = Env::new(config());
    // Reader: excess for a kubelet, but no other rule holds on it, so only the join can tell.
    let (key, v) = ra(SUB, KUBELET_OID, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    env.apply(vec![up(FactKind::RoleAssignment, &key, v)]);
    assert_eq!(env.status("ID-KUBELET-EXCESS-ROLES", &key), None);
    env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(true))]);
    assert_eq!(
        env.status("ID-KUBELET-EXCESS-ROLES", &key),
        Some(Status::Open)
    );
    // A new kubelet identity: the old one's grant is no longer the kubelet's.
    let mut other = cluster(true);
    other["kubelet_identity"]["object_id"] = json!("bbbbbbbb-0000-4000-8000-00000000001e");
    env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, other)]);
    assert_eq!(
        env.status("ID-KUBELET-EXCESS-ROLES", &key),
        Some(Status::Resolved)
    );
}

#[test]
fn orphan_subject_opens_when_the_service_account_goes_and_resolves_when_it_returns() {
    let mut env = Env::new(config());
    env.apply(vec![
        up(FactKind::ClusterSettings, CLUSTER, cluster(true)),
        up(FactKind::FederatedCredential, &fic_key(), fic()),
    ]);
    assert_eq!(
        env.status("ID-FIC-ORPHAN-SUBJECT", &fic_key()),
        None,
        "not synced yet"
    );
    env.apply(vec![up(
        FactKind::ServiceAccount,
        "c1/kube-system/default",
        sa(None),
    )]);
    assert_eq!(
        env.status("ID-FIC-ORPHAN-SUBJECT", &fic_key()),
        Some(Status::Open),
        "synced, api missing"
    );
    env.apply(vec![up(
        FactKind::ServiceAccount,
        "c1/payments/api",
        sa(Some(CLIENT)),
    )]);
    assert_eq!(
        env.status("ID-FIC-ORPHAN-SUBJECT", &fic_key()),
        Some(Status::Resolved)
    );
    env.apply(vec![del(FactKind::ServiceAccount, "c1/payments/api")]);
    assert_eq!(
        env.status("ID-FIC-ORPHAN-SUBJECT", &fic_key()),
        Some(Status::Open)
    );
}

#[test]
fn platform_managed_bindings_never_trigger_kubernetes_rules() {
    let mut env = Env::new(config());
    let (opened, _, _) = env.apply(vec![up(
        FactKind::ClusterRoleBinding,
        "c1/aks-managed",
        user_binding(true),
    )]);
    assert_eq!(opened, 0);
    env.apply(vec![up(
        FactKind::ClusterRoleBinding,
        "c1/aks-managed",
        user_binding(false),
    )]);
    assert_eq!(
        env.status("K8S-USER-SUBJECT", "c1/aks-managed"),
        Some(Status::Open)
    );
}

fn exception(expires: &str) -> Exception {
    Exception {
        rule: "K8S-USER-SUBJECT".into(),
        pattern: "c1/alice-*".into(),
        reason: "break-glass reviewed in CHG-1234".into(),
        expires: Some(expires.into()),
    }
}

#[test]
fn an_excepted_finding_is_not_opened_and_opens_by_itself_when_the_exception_expires() {
    let mut cfg = config();
    cfg.exceptions = vec![exception("2027-03-31")];
    let mut env = Env::new(cfg);
    let (opened, _, notes) = env.apply(vec![
        up(
            FactKind::ClusterRoleBinding,
            "c1/alice-view",
            user_binding(false),
        ),
        up(
            FactKind::ClusterRoleBinding,
            "c1/bob-view",
            user_binding(false),
        ),
    ]);
    assert_eq!((opened, notes), (1, 1), "only bob's binding opens");
    let f = env.finding("K8S-USER-SUBJECT", "c1/alice-view").unwrap();
    assert_eq!(f.status, Status::Excepted);
    assert_eq!(
        f.resolution.as_deref(),
        Some("excepted until 2027-03-31: break-glass reviewed in CHG-1234")
    );
    // Time passes, nothing is observed: the next batch (even empty) finds it expired.
    let (opened, _, notes) = env.apply_at(wall_2027_04_02, vec![]);
    assert_eq!((opened, notes), (1, 1));
    assert_eq!(
        env.status("K8S-USER-SUBJECT", "c1/alice-view"),
        Some(Status::Open)
    );
}

#[test]
fn an_exception_added_later_resolves_the_open_finding_as_excepted() {
    let mut env = Env::new(config());
    env.apply(vec![up(
        FactKind::ClusterRoleBinding,
        "c1/alice-view",
        user_binding(false),
    )]);
    assert_eq!(
        env.status("K8S-USER-SUBJECT", "c1/alice-view"),
        Some(Status::Open)
    );
    env.cfg.exceptions = vec![exception("2027-03-31")];
    let (_, resolved, notes) = env.apply(vec![]);
    assert_eq!((resolved, notes), (1, 1));
    assert_eq!(
        env.status("K8S-USER-SUBJECT", "c1/alice-view"),
        Some(Status::Excepted)
    );
    // An exception that already expired does not apply at all.
    let mut env = Env::new(config());
    env.cfg.exceptions = vec![exception("2027-02-28")];
    env.apply(vec![up(
        FactKind::ClusterRoleBinding,
        "c1/alice-view",
        user_binding(false),
    )]);
    assert_eq!(
        env.status("K8S-USER-SUBJECT", "c1/alice-view"),
        Some(Status::Open)
    );
}

#[test]
fn rule_settings_disable_and_re_severity() {
    let mut env = Env::new(config());
    env.apply(vec![up(
        FactKind::ClusterRoleBinding,
        "c1/alice-view",
        user_binding(false),
    )]);
    env.cfg.rules.insert(
        "K8S-USER-SUBJECT".into(),
        RuleSettings {
            enabled: Some(false),
            ..RuleSettings::default()
        },
    );
    let (_, resolved, _) = env.apply(vec![]);
    assert_eq!(resolved, 1);
    let f = env.finding("K8S-USER-SUBJECT", "c1/alice-view").unwrap();
    assert_eq!(
        f.resolution.as_deref(),
        Some("rule disabled in the configuration")
    );
    env.cfg.rules.insert(
        "K8S-USER-SUBJECT".into(),
        RuleSettings {
            severity: Some(Severity::Critical),
            ..RuleSettings::default()
        },
    );
    env.apply(vec![]);
    let f = env.finding("K8S-USER-SUBJECT", "c1/alice-view").unwrap();
    assert_eq!((f.status, f.severity), (Status::Open, Severity::Critical));
}

fn approve(env: &Env, kind: FactKind, key: &str, value: Value) {
    use accessdrift::store::BaselineEntry;
    let mut store = env.store();
    let tx = store.tx().unwrap();
    let at = wall_2027_03_01();
    let version = tx
        .new_baseline_version("lead", "approve", "test", at)
        .unwrap();
    let entry = BaselineEntry {
        kind,
        key: key.into(),
        value,
        version,
        approved_by: "lead".into(),
        approved_at: at,
        from_finding: None,
    };
    tx.approve(version, &entry).unwrap();
    accessdrift::pipeline::reevaluate_all(&tx, &env.cfg, "lead", at, &["stdout".to_string()])
        .unwrap();
    tx.commit().unwrap();
}

#[test]
fn drift_and_policy_are_separate_and_approving_drift_keeps_the_policy_finding() {
    let mut env = Env::new(config());
    env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(true))]);
    approve(&env, FactKind::ClusterSettings, CLUSTER, cluster(true));
    env.apply(vec![up(FactKind::ClusterSettings, CLUSTER, cluster(false))]);
    let drift = accessdrift::engine::drift::finding_id(FactKind::ClusterSettings, CLUSTER);
    let read = |id: &str| env.store().read().unwrap().finding(id).unwrap().unwrap();
    assert_eq!(read(&drift).status, Status::Open);
    let policy = env.finding("AKS-LOCAL-ACCOUNTS", CLUSTER).unwrap();
    assert_ne!(policy.id, drift, "two findings for one fact");
    approve(&env, FactKind::ClusterSettings, CLUSTER, cluster(false));
    assert_eq!(read(&drift).status, Status::Approved);
    assert_eq!(
        env.status("AKS-LOCAL-ACCOUNTS", CLUSTER),
        Some(Status::Open),
        "approval is not an exception"
    );
}

/// A grant revoked later, delivered revoke-first: the finding exists as if in order.
#[test]
fn a_grant_revoked_before_its_write_arrives_still_opens_and_resolves() {
    let (key, v) = ra(SUB, "22222222-0000-4000-8000-000000000002", OWNER);
    let mut in_order = Env::new(config());
    in_order.apply(vec![
        up(FactKind::RoleAssignment, &key, v.clone()),
        del(FactKind::RoleAssignment, &key),
    ]);
    let want = in_order
        .finding("AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER", &key)
        .unwrap();
    assert_eq!((want.status, want.transitions), (Status::Resolved, 2));

    let mut reversed = Env::new(config());
    let mut store = reversed.store();
    let cfg = reversed.cfg.clone();
    let mut p = Pipeline::new(&mut store, &cfg, vec!["stdout".into()]).with_clock(wall_2027_03_01);
    let (write, delete) = (prov(1), prov(2));
    let s = p
        .apply_batch(
            vec![
                Observation::immediate(del(FactKind::RoleAssignment, &key), delete),
                Observation::immediate(up(FactKind::RoleAssignment, &key, v), write),
            ],
            None,
        )
        .unwrap();
    drop(p);
    drop(store);
    reversed.t = 2;
    assert_eq!((s.opened, s.resolved, s.notifications), (1, 1, 2));
    let got = reversed
        .finding("AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER", &key)
        .unwrap();
    assert_eq!((got.status, got.transitions), (Status::Resolved, 2));
}
