//! `accessdrift run` attributing Kubernetes changes from the AKS audit log: the watch from the
//! in-test API server (tests/support/kube_api.rs), `kube-audit-admin` records through the real
//! Event Hubs client from a second hub of the in-test broker (tests/support/amqp_broker.rs),
//! the Activity Log on the first; alerts read as the stdout sink prints them.

#[path = "support/amqp_broker.rs"]
mod amqp_broker;
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/kube_api.rs"]
mod kube_api;

use accessdrift::store::Store;
use amqp_broker::AmqpBroker;
use daemon::{cli, http_get, wait_for, Daemon};
use kube_api::KubeApi;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "contoso-logs.servicebus.windows.net";
const RBAC: &str = "rbac.authorization.k8s.io";
const CLUSTER_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-test";

struct Env {
    _rt: tokio::runtime::Runtime,
    api: KubeApi,
    activity: AmqpBroker,
    audit: AmqpBroker,
    dir: tempfile::TempDir,
    ids: std::cell::Cell<u32>,
}

impl Env {
    fn new() -> Env {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let api = rt.block_on(KubeApi::start());
        let activity = rt.block_on(AmqpBroker::start("activity", 1, &["accessdrift"]));
        let audit = rt.block_on(AmqpBroker::start("aks-audit", 2, &["accessdrift"]));
        let env = Env {
            _rt: rt,
            api,
            activity,
            audit,
            dir: tempfile::tempdir().unwrap(),
            ids: std::cell::Cell::new(0),
        };
        drop(Store::open(&env.db()).unwrap());
        let (code, _, err) = cli(&["baseline", "capture", "--db", &env.db_s(), "--by", "test"]);
        assert_eq!(code, 0, "{err}");
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("ad.db")
    }

    fn db_s(&self) -> String {
        self.db().display().to_string()
    }

    fn config(&self, wait: &str) -> PathBuf {
        let secret = |hub: &str| {
            let p = self.dir.path().join(format!("cs-{hub}"));
            std::fs::write(&p, format!("Endpoint=sb://{NS}/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath={hub}\n")).unwrap();
            p
        };
        let kc = self.dir.path().join("kubeconfig");
        std::fs::write(&kc, self.api.kubeconfig()).unwrap();
        let cfg = self.dir.path().join("accessdrift.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[clusters]]\nname = \"aks-test\"\nresource_id = \"{CLUSTER_ID}\"\n\n\
                 [kubernetes]\ncluster = \"aks-test\"\nkubeconfig = {kc:?}\nbatch_max_wait = \"50ms\"\n\n\
                 [eventhubs]\nnamespace = \"{NS}\"\neventhub = \"activity\"\nconsumer_group = \"accessdrift\"\n\
                 auth = \"connection_string\"\nconnection_string = {{ file = {:?} }}\ncustom_endpoint = \"{}\"\n\
                 max_wait = \"50ms\"\nrebalance_interval = \"1s\"\n\n\
                 [[eventhubs.hubs]]\neventhub = \"aks-audit\"\nauth = \"connection_string\"\nconnection_string = {{ file = {:?} }}\ncustom_endpoint = \"{}\"\n\n\
                 [server]\nlisten = \"127.0.0.1:0\"\n\n[notify]\npoll_interval = \"200ms\"\ninitial_backoff = \"1s\"\nattribution_wait = \"{wait}\"\n",
                secret("activity"),
                self.activity.endpoint(),
                secret("aks-audit"),
                self.audit.endpoint(),
            ),
        )
        .unwrap();
        cfg
    }

    fn start(&self, wait: &str) -> Daemon {
        let mut d = Daemon::start(&self.config(wait), &self.db());
        d.wait_ready(LIMIT);
        d
    }

    /// Sends one resource-log record of `category` on the audit hub (AKS writes the cluster's
    /// resource id upper-case, the event as a string with a newline).
    fn send(&self, category: &str, resource_id: &str, log: &str) {
        let rec = json!({
            "category": category,
            "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
            "properties": {"pod": "kube-apiserver-6785696748-ck9d8", "log": log, "stream": "stdout"},
            "resourceId": resource_id.to_uppercase(),
            "time": now(),
        });
        let n = self.ids.get();
        self.audit.append(
            n as usize % 2,
            json!({"records": [rec]}).to_string().as_bytes(),
        );
    }

    /// Sends the audit record of one request.
    fn audit(&self, ev: Value) {
        self.send("kube-audit-admin", CLUSTER_ID, &format!("{ev}\n"));
    }

    /// An audit event of a write; `rv` is the response object's resourceVersion.
    fn event(
        &self,
        verb: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        user: &str,
        rv: Option<u64>,
    ) -> Value {
        let n = self.ids.get() + 1;
        self.ids.set(n);
        let mut oref = json!({"resource": resource, "name": name, "apiGroup": if resource == "serviceaccounts" { "" } else { RBAC }, "apiVersion": "v1"});
        if let Some(ns) = ns {
            oref["namespace"] = json!(ns);
        }
        let mut ev = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("7e1c0d2a-0000-4000-8000-{n:012}"), "stage": "ResponseComplete",
            "requestURI": format!("/apis/{RBAC}/v1/{resource}/{name}"), "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": ["198.51.100.23"], "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
            "objectRef": oref, "responseStatus": {"metadata": {}, "code": 201},
            "requestReceivedTimestamp": now(), "stageTimestamp": now(),
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"platform-admins\" of ClusterRole \"cluster-admin\" to Group \"platform\""}
        });
        if let Some(rv) = rv {
            ev["level"] = json!("RequestResponse");
            ev["responseObject"] =
                json!({"kind": "X", "metadata": {"name": name, "resourceVersion": rv.to_string()}});
        }
        ev
    }
}

fn now() -> String {
    accessdrift::domain::EventTime::now().to_string()
}

fn crb(name: &str, group: &str) -> Value {
    json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
           "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": group}]})
}

/// Alert lines of the stdout sink that mention `what`.
fn lines(d: &Daemon, what: &str) -> Vec<String> {
    d.stdout()
        .lines()
        .filter(|l| l.contains(", key ") && l.contains(what))
        .map(str::to_string)
        .collect()
}

fn wait_line(d: &Daemon, what: &str, also: &str) -> String {
    wait_for(
        &format!("an alert with {what:?} and {also:?}"),
        LIMIT,
        || lines(d, what).into_iter().find(|l| l.contains(also)),
    )
}

/// Waits until the daemon has stored that the cluster's audit records arrive.
fn wait_audit_seen(env: &Env, d: &Daemon) {
    let deadline = std::time::Instant::now() + LIMIT;
    let seen = || -> Option<()> {
        let mut s = Store::open(&env.db()).ok()?;
        let tx = s.read().ok()?;
        tx.audit_seen("aks-test").ok()?.map(|_| ())
    };
    while seen().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster's audit records were never seen; log:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(d: &Daemon, needle: &str) -> bool {
    http_get(d.port(), "/metrics")
        .is_some_and(|(_, body)| body.lines().any(|l| l.starts_with(needle)))
}

#[test]
fn the_alert_waits_for_its_actor_and_other_records_are_skipped() {
    let env = Env::new();
    let d = env.start("20s");
    // Audit records arrive: a lease renewal by the platform (filtered, but it says so), a
    // plain-text category, and a record of a cluster nobody configured.
    env.audit(env.event(
        "update",
        "leases",
        Some("kube-system"),
        "cloud-controller-manager",
        "aksService",
        None,
    ));
    env.send(
        "guard",
        CLUSTER_ID,
        "I1207 10:00:00.000000 1 guard.go:10] authenticated\n",
    );
    let other = env.event(
        "create",
        "clusterrolebindings",
        None,
        "x",
        "eve@contoso.com",
        None,
    );
    env.send(
        "kube-audit-admin",
        "/subscriptions/00000000-0000-0000-0000-000000000009/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/other",
        &format!("{other}\n"),
    );
    wait_audit_seen(&env, &d);
    let rv = env.api.apply(crb("ops-readers", "ops"));
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        lines(&d, "aks-test/ops-readers").is_empty(),
        "held while the audit record may come"
    );
    env.audit(env.event(
        "create",
        "clusterrolebindings",
        None,
        "ops-readers",
        "alice@contoso.com",
        Some(rv),
    ));
    let line = wait_line(&d, "aks-test/ops-readers", "drift opened");
    assert!(line.contains("by alice@contoso.com"), "{line}");
    assert!(
        line.contains("allowed: RBAC: allowed by ClusterRoleBinding \"platform-admins\""),
        "{line}"
    );
    assert!(line.contains("with kubectl/v1.31.2"), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lines(&d, "aks-test/ops-readers").len(),
        1,
        "one alert, no follow-up"
    );
    wait_for("resource-log metrics", LIMIT, || {
        (metric(&d, "accessdrift_resource_log_records_total{category=\"guard\",outcome=\"skipped\"} 1")
            && metric(&d, "accessdrift_resource_log_records_total{category=\"kube-audit-admin\",outcome=\"unknown_cluster\"} 1")
            && metric(&d, "accessdrift_attributions_total{how=\"resource_version\"} 1"))
        .then_some(())
    });
    assert!(!d.stderr().contains("malformed"), "{}", d.stderr());
}

#[test]
fn late_records_follow_up_and_either_half_survives_a_restart() {
    let env = Env::new();
    let mut d = env.start("1s");
    env.audit(env.event("get", "clusterrolebindings", None, "x", "bob", None));
    wait_audit_seen(&env, &d);

    // Audit after the wait: the alert goes out without an actor, then a follow-up names it.
    env.api.apply(crb("late-readers", "late"));
    let opened = wait_line(&d, "aks-test/late-readers", "drift opened");
    assert!(!opened.contains(" — by "), "{opened}");
    // A restart between the halves: the change waits in the store for its audit record.
    d.terminate(LIMIT);
    let carol = env.event(
        "create",
        "clusterrolebindings",
        None,
        "late-readers",
        "carol@contoso.com",
        None,
    );
    env.audit(carol.clone());
    let mut d = env.start("1s");
    let follow = wait_line(&d, "aks-test/late-readers", "drift attributed");
    assert!(follow.contains("by carol@contoso.com"), "{follow}");

    // Audit before watch, across a restart: the record waits for its change.
    env.audit(env.event(
        "create",
        "rolebindings",
        Some("team-a"),
        "dev-edit",
        "bob@contoso.com",
        None,
    ));
    wait_for("the audit record kept", LIMIT, || {
        metric(&d, "accessdrift_resource_log_records_total{category=\"kube-audit-admin\",outcome=\"kept\"} 1").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500)); // its batch commits within max_wait
    d.terminate(LIMIT);
    let mut d = env.start("1s");
    env.api.apply(
        json!({"kind": "RoleBinding", "metadata": {"name": "dev-edit", "namespace": "team-a"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "devs"}]}),
    );
    let line = wait_line(&d, "aks-test/team-a/dev-edit", "drift opened");
    assert!(line.contains("by bob@contoso.com"), "{line}");

    // Two quick changes of one object: each record names its own; the state is carol's.
    let rv1 = env.api.apply(crb("quick", "one"));
    let rv2 = env.api.apply(crb("quick", "two"));
    env.audit(env.event(
        "update",
        "clusterrolebindings",
        None,
        "quick",
        "carol@contoso.com",
        Some(rv2),
    ));
    env.audit(env.event(
        "create",
        "clusterrolebindings",
        None,
        "quick",
        "bob@contoso.com",
        Some(rv1),
    ));
    let quick = || -> Option<Value> {
        let (_, out, _) = cli(&["findings", "--db", &env.db_s(), "--json"]);
        let v: Vec<Value> = serde_json::from_str(&out).ok()?;
        v.into_iter()
            .find(|f| f["fact_key"] == "aks-test/quick" && f["kind"] == "drift")
    };
    let deadline = std::time::Instant::now() + LIMIT;
    while quick().is_none_or(|f| f["actor"]["username"] != "carol@contoso.com") {
        assert!(
            std::time::Instant::now() < deadline,
            "the quick binding is not carol's: {:?}\n{}",
            quick(),
            d.stdout()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A failed request attributes nothing; impersonation names both; a delete is the delete's.
    let mut forbidden = env.event(
        "delete",
        "clusterrolebindings",
        None,
        "late-readers",
        "mallory@contoso.com",
        None,
    );
    forbidden["responseStatus"] = json!({"code": 403});
    env.audit(forbidden);
    assert!(env.api.delete("ClusterRoleBinding", None, "late-readers"));
    let mut del = env.event(
        "delete",
        "clusterrolebindings",
        None,
        "late-readers",
        "alice@contoso.com",
        None,
    );
    del["impersonatedUser"] = json!({"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]});
    env.audit(del);
    let resolved = wait_line(&d, "aks-test/late-readers", "drift resolved");
    assert!(
        resolved
            .contains("by alice@contoso.com as system:serviceaccount:ci:deployer (impersonated)"),
        "{resolved}"
    );
    assert!(!resolved.contains("mallory"), "{resolved}");

    // The local admin certificate is a finding of its own; the platform never is.
    let mut local = env.event(
        "patch",
        "clusterrolebindings",
        None,
        "quick",
        "masterclient",
        None,
    );
    local["user"]["groups"] = json!(["system:masters", "system:authenticated"]);
    env.audit(local);
    let mut platform = env.event("update", "clusterroles", None, "admin", "aksService", None);
    platform["user"]["groups"] = json!(["system:masters"]);
    env.audit(platform);
    let l = wait_line(&d, "Local account", "activity opened");
    assert!(
        l.contains("Local account masterclient wrote to cluster aks-test"),
        "{l}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.stdout().contains("Local account aksService"),
        "{}",
        d.stdout()
    );

    // The same audit record again (a second diagnostic setting, a replayed hub), after
    // another restart: nothing goes out twice.
    d.terminate(LIMIT);
    let d = env.start("1s");
    env.audit(carol);
    std::thread::sleep(Duration::from_secs(2));
    assert!(lines(&d, "drift attributed").is_empty(), "{}", d.stdout());
}
