//! Kubernetes attribution through the real pipeline and store: watch changes and AKS audit
//! records joined in either order, across replays (each one a fresh process's store handle),
//! with the alerts a user gets. The daemon over real sockets is in tests/daemon_audit.rs.

mod common;

use accessdrift::domain::{ActorClass, EventTime};
use accessdrift::engine::{Finding, FindingKind};
use accessdrift::store::OutboxState;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A line of an API server audit log (what `replay` reads as raw audit lines).
struct Audit {
    v: Value,
}

impl Audit {
    fn write(id: u32, verb: &str, resource: &str, name: &str, user: &str, at: &str) -> Audit {
        Audit {
            v: json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("0a0d1700-0000-4000-8000-{id:012}"), "stage": "ResponseComplete",
                "requestURI": format!("/apis/rbac.authorization.k8s.io/v1/{resource}/{name}"),
                "verb": verb,
                "user": {"username": user, "groups": ["system:authenticated"]},
                "sourceIPs": ["198.51.100.23"], "userAgent": "kubectl/v1.31.2 (linux/amd64)",
                "objectRef": {"resource": resource, "name": name, "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 201},
                "requestReceivedTimestamp": at, "stageTimestamp": at,
                "annotations": {"authorization.k8s.io/decision": "allow",
                                "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"platform-admins\" of ClusterRole \"cluster-admin\" to Group \"platform\""}
            }),
        }
    }

    /// RequestResponse level: the response object carries the resourceVersion.
    fn rv(mut self, rv: &str) -> Audit {
        self.v["level"] = json!("RequestResponse");
        self.v["responseObject"] =
            json!({"kind": "ClusterRoleBinding", "metadata": {"resourceVersion": rv}});
        self
    }

    fn set(mut self, f: impl FnOnce(&mut Value)) -> Audit {
        f(&mut self.v);
        self
    }

    fn line(&self) -> String {
        self.v.to_string()
    }
}

fn capture_empty(env: &Env) {
    let mut store = env.store();
    let tx = store.tx().unwrap();
    tx.new_baseline_version("test", "capture", "", EventTime::from_unix_seconds(1))
        .unwrap();
    tx.commit().unwrap();
}

/// Each file replayed by its own pipeline and store handle: what a restart does.
fn replay_one(env: &Env, name: &str, lines: &[String]) {
    let f: PathBuf = env.write(name, lines);
    env.replay(&[f]);
}

fn findings(env: &Env) -> Vec<Finding> {
    env.store().read().unwrap().findings(false).unwrap()
}

fn drift(env: &Env, key: &str) -> Finding {
    findings(env)
        .into_iter()
        .find(|f| f.kind == FindingKind::Drift && f.fact_key == key)
        .unwrap_or_else(|| panic!("no drift finding of {key}: {:?}", findings(env)))
}

/// `(transition, actor username)` of every queued alert, oldest first.
fn alerts(env: &Env) -> Vec<(String, Option<String>)> {
    let rows = env
        .store()
        .read()
        .unwrap()
        .outbox_all(Some(OutboxState::Pending))
        .unwrap();
    rows.iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.payload).unwrap();
            (
                r.transition.clone(),
                v["actor"]["username"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Alerts due now: a held one is not.
fn due(env: &Env) -> usize {
    let now = EventTime::now().unix_seconds();
    env.store()
        .read()
        .unwrap()
        .outbox(OutboxState::Pending, Some(now), 100)
        .unwrap()
        .len()
}

const T0: &str = "2026-12-07T10:00:00Z";

/// A binding no rule of the catalogue judges: only its drift is a finding.
fn binding(rv: &str, group: &str, time: &str) -> Value {
    crb("ops-admin", "view", ("Group", group), rv, time)
}

#[test]
fn audit_after_watch_attributes_the_finding_and_follows_up() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "w.json",
        &[watch("ADDED", &binding("100", "eve", T0))],
    );
    assert!(drift(&env, "c1/ops-admin").actor.is_empty());
    replay_one(
        &env,
        "a.log",
        &[Audit::write(
            1,
            "create",
            "clusterrolebindings",
            "ops-admin",
            "alice@contoso.com",
            "2026-12-07T10:00:00.5Z",
        )
        .rv("100")
        .line()],
    );
    let f = drift(&env, "c1/ops-admin");
    assert_eq!(f.actor.username.as_deref(), Some("alice@contoso.com"));
    assert_eq!(f.actor.class, Some(ActorClass::User));
    assert!(f
        .actor
        .reason
        .as_deref()
        .unwrap()
        .contains("platform-admins"));
    assert_eq!(
        alerts(&env),
        [
            ("opened".to_string(), None),
            (
                "attributed".to_string(),
                Some("alice@contoso.com".to_string())
            )
        ]
    );
    // The same audit record again (redelivered, another file): nothing more goes out.
    replay_one(
        &env,
        "a2.log",
        &[Audit::write(
            1,
            "create",
            "clusterrolebindings",
            "ops-admin",
            "alice@contoso.com",
            "2026-12-07T10:00:00.5Z",
        )
        .rv("100")
        .line()],
    );
    assert_eq!(alerts(&env).len(), 2);
}

#[test]
fn audit_before_watch_names_the_actor_in_the_first_alert() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "a.log",
        &[Audit::write(
            1,
            "create",
            "clusterrolebindings",
            "ops-admin",
            "alice@contoso.com",
            "2026-12-07T10:00:00.5Z",
        )
        .line()],
    );
    replay_one(
        &env,
        "w.json",
        &[watch(
            "ADDED",
            &binding("100", "eve", "2026-12-07T10:00:02Z"),
        )],
    );
    assert_eq!(
        drift(&env, "c1/ops-admin").actor.username.as_deref(),
        Some("alice@contoso.com")
    );
    assert_eq!(
        alerts(&env),
        [("opened".to_string(), Some("alice@contoso.com".to_string()))]
    );
}

#[test]
fn an_alert_waits_for_its_actor_while_audit_arrives_and_is_released_by_it() {
    let env = Env::new();
    capture_empty(&env);
    // A read of the cluster: filtered out, but it says the cluster's audit records arrive.
    replay_one(
        &env,
        "seen.log",
        &[Audit::write(9, "get", "clusterrolebindings", "x", "bob", T0).line()],
    );
    replay_one(
        &env,
        "w.json",
        &[watch("ADDED", &binding("100", "eve", T0))],
    );
    assert_eq!(alerts(&env), [("opened".to_string(), None)]);
    assert_eq!(due(&env), 0, "held for its actor");
    replay_one(
        &env,
        "a.log",
        &[Audit::write(
            1,
            "create",
            "clusterrolebindings",
            "ops-admin",
            "alice@contoso.com",
            "2026-12-07T10:00:01Z",
        )
        .line()],
    );
    assert_eq!(
        alerts(&env),
        [("opened".to_string(), Some("alice@contoso.com".to_string()))],
        "the one alert says who; no follow-up"
    );
    assert_eq!(due(&env), 1, "released at once");
}

#[test]
fn clusters_without_audit_records_are_not_delayed() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "w.json",
        &[watch("ADDED", &binding("100", "eve", T0))],
    );
    assert_eq!(due(&env), 1);
}

#[test]
fn two_quick_changes_take_their_own_records_in_either_order() {
    for reversed in [false, true] {
        let env = Env::new();
        capture_empty(&env);
        replay_one(
            &env,
            "w.json",
            &[
                watch("ADDED", &binding("100", "eve", T0)),
                watch(
                    "MODIFIED",
                    &binding("101", "mallory", "2026-12-07T10:00:05Z"),
                ),
            ],
        );
        let mut lines = [
            Audit::write(
                1,
                "create",
                "clusterrolebindings",
                "ops-admin",
                "bob@contoso.com",
                "2026-12-07T10:00:00.2Z",
            )
            .line(),
            Audit::write(
                2,
                "patch",
                "clusterrolebindings",
                "ops-admin",
                "carol@contoso.com",
                "2026-12-07T10:00:05.2Z",
            )
            .line(),
        ];
        if reversed {
            lines.reverse();
        }
        for (i, l) in lines.iter().enumerate() {
            replay_one(&env, &format!("a{i}.log"), std::slice::from_ref(l));
        }
        let f = drift(&env, "c1/ops-admin");
        assert_eq!(
            f.actor.username.as_deref(),
            Some("carol@contoso.com"),
            "reversed={reversed}: the second change made the state"
        );
        let authors: Vec<String> = alerts(&env)
            .into_iter()
            .filter(|(t, _)| t == "attributed")
            .filter_map(|(_, u)| u)
            .collect();
        assert!(
            !authors.contains(&"bob@contoso.com".to_string()) || !reversed,
            "reversed: bob's record is older than the state carol made"
        );
        assert!(
            authors.contains(&"carol@contoso.com".to_string()),
            "{authors:?}"
        );
    }
}

#[test]
fn resource_versions_tell_two_changes_apart_whatever_the_times() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "w.json",
        &[
            watch("ADDED", &binding("100", "eve", T0)),
            watch(
                "MODIFIED",
                &binding("101", "mallory", "2026-12-07T10:00:01Z"),
            ),
        ],
    );
    // Times point at the wrong change; the resourceVersions do not.
    replay_one(
        &env,
        "a.log",
        &[
            Audit::write(
                2,
                "patch",
                "clusterrolebindings",
                "ops-admin",
                "carol@contoso.com",
                "2026-12-07T10:00:00Z",
            )
            .rv("101")
            .line(),
            Audit::write(
                1,
                "create",
                "clusterrolebindings",
                "ops-admin",
                "bob@contoso.com",
                "2026-12-07T10:00:01Z",
            )
            .rv("100")
            .line(),
        ],
    );
    assert_eq!(
        drift(&env, "c1/ops-admin").actor.username.as_deref(),
        Some("carol@contoso.com")
    );
}

#[test]
fn a_delete_is_attributed_to_the_delete() {
    let env = Env::new();
    replay_one(
        &env,
        "w.json",
        &[watch("ADDED", &binding("100", "eve", T0))],
    );
    // Approve what is there, then the binding goes.
    {
        let mut store = env.store();
        let tx = store.tx().unwrap();
        let at = EventTime::from_unix_seconds(1);
        let v = tx.new_baseline_version("test", "capture", "", at).unwrap();
        for f in tx.facts().unwrap() {
            tx.approve(
                v,
                &accessdrift::store::BaselineEntry {
                    kind: f.kind,
                    key: f.key,
                    value: f.value.unwrap(),
                    version: v,
                    approved_by: "test".into(),
                    approved_at: at,
                    from_finding: None,
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    replay_one(
        &env,
        "d.json",
        &[watch(
            "DELETED",
            &binding("120", "eve", "2026-12-07T10:10:00Z"),
        )],
    );
    // An update at nearly the same time must not take the delete.
    replay_one(
        &env,
        "a.log",
        &[
            Audit::write(
                3,
                "update",
                "clusterrolebindings",
                "ops-admin",
                "bob@contoso.com",
                "2026-12-07T10:10:00Z",
            )
            .line(),
            Audit::write(
                4,
                "delete",
                "clusterrolebindings",
                "ops-admin",
                "dave@contoso.com",
                "2026-12-07T10:10:01Z",
            )
            .set(|v| v["responseObject"] = json!({"kind": "Status", "status": "Success"}))
            .line(),
        ],
    );
    assert_eq!(
        drift(&env, "c1/ops-admin").actor.username.as_deref(),
        Some("dave@contoso.com")
    );
}

#[test]
fn failed_requests_and_records_outside_the_window_attribute_nothing() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "w.json",
        &[watch("ADDED", &binding("100", "eve", T0))],
    );
    replay_one(
        &env,
        "a.log",
        &[
            Audit::write(
                1,
                "create",
                "clusterrolebindings",
                "ops-admin",
                "mallory@contoso.com",
                "2026-12-07T10:00:00Z",
            )
            .set(|v| v["responseStatus"] = json!({"code": 403, "reason": "Forbidden"}))
            .line(),
            Audit::write(
                2,
                "create",
                "clusterrolebindings",
                "ops-admin",
                "late@contoso.com",
                "2026-12-07T10:11:00Z",
            )
            .line(),
        ],
    );
    assert!(drift(&env, "c1/ops-admin").actor.is_empty());
    assert_eq!(alerts(&env), [("opened".to_string(), None)]);
}

#[test]
fn local_account_writes_are_findings_and_platform_writes_are_not() {
    let env = Env::new();
    capture_empty(&env);
    replay_one(
        &env,
        "a.log",
        &[
            Audit::write(1, "patch", "clusterrolebindings", "ops-admin", "masterclient", T0)
                .set(|v| v["user"]["groups"] = json!(["system:masters", "system:authenticated"]))
                .line(),
            Audit::write(2, "update", "clusterroles", "admin", "aksService", T0)
                .set(|v| v["user"]["groups"] = json!(["system:masters"]))
                .line(),
            // A pod written with the admin certificate: a use as well.
            Audit::write(3, "create", "pods", "debug", "masterclient", "2026-12-07T10:01:00Z")
                .set(|v| {
                    v["objectRef"] = json!({"resource": "pods", "namespace": "default", "name": "debug", "apiVersion": "v1"});
                })
                .line(),
        ],
    );
    let local: Vec<Finding> = findings(&env)
        .into_iter()
        .filter(|f| f.rule == "K8S-LOCAL-ACCOUNT-USED")
        .collect();
    assert_eq!(
        local.len(),
        1,
        "one finding per cluster and account: {local:?}"
    );
    assert_eq!(local[0].occurrences, 2);
    assert_eq!(local[0].actor.username.as_deref(), Some("masterclient"));
    assert_eq!(local[0].actor.class, Some(ActorClass::LocalAccount));
    assert_eq!(local[0].severity.as_str(), "high");
    // The platform's write is attributed as the platform when its change comes.
    replay_one(
        &env,
        "w.json",
        &[watch(
            "ADDED",
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "admin", "resourceVersion": "7", "managedFields": [{"time": "2026-12-07T10:00:01Z"}]},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]}),
        )],
    );
    let platform = findings(&env)
        .into_iter()
        .find(|f| f.fact_key == "c1/admin")
        .expect("a finding of the ClusterRole");
    assert_eq!(platform.actor.username.as_deref(), Some("aksService"));
    assert_eq!(platform.actor.class, Some(ActorClass::Platform));
}
