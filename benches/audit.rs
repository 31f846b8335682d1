//! `cargo bench --bench audit`: the AKS audit log through `accessdrift run`.
//!
//! 1. A backlog of `kube-audit` records as a busy cluster's diagnostic setting writes them
//!    (20,000 a minute, 1% RBAC writes, the rest get/list/watch of pods, configmaps, leases,
//!    ten records per event) read by the real Event Hubs client from the in-test broker:
//!    records/s through the filter, and beside it the Activity Log path on as many records.
//! 2. Attribution latency: ClusterRoleBindings created on the in-test API server, the watch
//!    opens their findings, then their audit records arrive among the filler at the
//!    nominal rate: time from a record's arrival on the hub to its finding naming the author
//!    (p50, p99).
//!
//! Sizes: `cargo bench --bench audit -- RECORDS CHANGES` (default 200000 and 200).

#[path = "../tests/support/amqp_broker.rs"]
mod amqp_broker;
#[path = "../tests/support/daemon.rs"]
mod daemon;
#[path = "../tests/support/kube_api.rs"]
mod kube_api;

use accessdrift::store::{EventHubsPosition, Store};
use amqp_broker::AmqpBroker;
use daemon::{cli, wait_for, Daemon};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const NS: &str = "bench.servicebus.windows.net";
const SUB: &str = "6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";
const RBAC: &str = "rbac.authorization.k8s.io";
const PER_EVENT: usize = 10;
const PARTITIONS: usize = 4;

fn cluster_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod")
}

fn now() -> String {
    accessdrift::domain::EventTime::now().to_string()
}

/// One `kube-audit` record; `write` makes it an RBAC create by a person.
fn audit(i: usize, write: Option<&str>) -> Value {
    let (verb, oref, user) = match write {
        Some(name) => (
            "create",
            json!({"resource": "clusterrolebindings", "name": name, "apiGroup": RBAC, "apiVersion": "v1"}),
            json!({"username": format!("user{}@contoso.com", i % 40), "groups": ["team", "system:authenticated"],
                   "extra": {"oid": [format!("6d6d6d6d-0000-4000-8000-{:012}", i % 40)]}}),
        ),
        None => {
            let (verb, res) = [
                ("get", "pods"),
                ("list", "configmaps"),
                ("watch", "pods"),
                ("get", "leases"),
            ][i % 4];
            (
                verb,
                json!({"resource": res, "namespace": format!("ns-{}", i % 50), "name": format!("obj-{i}"), "apiVersion": "v1"}),
                json!({"username": format!("system:serviceaccount:ns-{}:app", i % 50), "groups": ["system:serviceaccounts"]}),
            )
        }
    };
    let ev = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("{i:08x}-0000-4000-8000-000000000000"), "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/x/pods/y", "verb": verb, "user": user,
        "sourceIPs": ["10.224.0.4"], "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "objectRef": oref, "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": now(), "stageTimestamp": now(),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"app\""}
    });
    json!({"category": "kube-audit", "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
           "properties": {"pod": "kube-apiserver-6785696748-ck9d8", "log": format!("{ev}\n"), "stream": "stdout",
                          "containerID": "5aeef33b3cfdafa517d8e1d8c4fe4e08901d99958bc6ad3ca5c74891120a0c44"},
           "resourceId": cluster_id().to_uppercase(), "time": now()})
}

/// One Activity Log record: a role assignment write one time in five, else a listKeys.
fn activity(i: usize) -> Value {
    let identity = json!({"claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": format!("user{}@contoso.com", i % 50)}});
    if i.is_multiple_of(5) {
        let body = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"),
                          "principalId": format!("00000000-0000-4000-8000-{i:012}"), "principalType": "User", "scope": format!("/subscriptions/{SUB}")}});
        json!({"time": now(), "resourceId": format!("/SUBSCRIPTIONS/{SUB}/PROVIDERS/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/{i:08X}-0000-4000-8000-000000000000"),
               "operationName": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE", "category": "Administrative", "resultType": "Success",
               "correlationId": format!("corr-{i}"), "callerIpAddress": "198.51.100.7", "identity": identity,
               "properties": {"statusCode": "Created", "requestbody": body.to_string()}})
    } else {
        json!({"time": now(), "resourceId": format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.STORAGE/STORAGEACCOUNTS/ST{i}"),
               "operationName": "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION", "category": "Administrative", "resultType": "Success",
               "correlationId": format!("corr-{i}"), "callerIpAddress": "198.51.100.7", "identity": identity,
               "properties": {"statusCode": "OK", "message": "Microsoft.Storage/storageAccounts/listKeys/action"}})
    }
}

fn config(dir: &Path, hub: &str, endpoint: &str, kubeconfig: Option<&str>) -> std::path::PathBuf {
    let secret = dir.join(format!("cs-{hub}"));
    std::fs::write(
        &secret,
        format!("Endpoint=sb://{NS}/;SharedAccessKeyName=l;SharedAccessKey=a2V5;EntityPath={hub}"),
    )
    .unwrap();
    let kube = match kubeconfig {
        Some(kc) => {
            let p = dir.join("kubeconfig");
            std::fs::write(&p, kc).unwrap();
            format!("[kubernetes]\ncluster = \"aks-prod\"\nkubeconfig = {p:?}\nbatch_max_wait = \"20ms\"\n\n")
        }
        None => String::new(),
    };
    let cfg = dir.join(format!("{hub}.toml"));
    std::fs::write(&cfg, format!(
        "[[clusters]]\nname = \"aks-prod\"\nresource_id = \"{}\"\n\n{kube}\
         [eventhubs]\nnamespace = \"{NS}\"\neventhub = \"{hub}\"\nconsumer_group = \"accessdrift\"\n\
         auth = \"connection_string\"\nconnection_string = {{ file = {secret:?} }}\ncustom_endpoint = \"{endpoint}\"\n\
         max_batch = 500\nmax_wait = \"20ms\"\nrebalance_interval = \"1s\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [notify]\npoll_interval = \"200ms\"\nattribution_wait = \"5s\"\n",
        cluster_id()
    )).unwrap();
    cfg
}

fn fresh_db(path: &Path) {
    drop(Store::open(path).unwrap());
    let (code, _, err) = cli(&[
        "baseline",
        "capture",
        "--db",
        &path.display().to_string(),
        "--by",
        "bench",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// Appends `records` as events of `PER_EVENT` records, round-robin; returns the last
/// sequence number per partition.
fn load(broker: &AmqpBroker, records: &[Value]) -> Vec<(String, i64)> {
    let mut last = HashMap::new();
    for (i, chunk) in records.chunks(PER_EVENT).enumerate() {
        let p = i % PARTITIONS;
        let seq = broker.append(p, json!({ "records": chunk }).to_string().as_bytes());
        last.insert(p.to_string(), seq);
    }
    let mut v: Vec<_> = last.into_iter().collect();
    v.sort();
    v
}

/// Starts the daemon and waits until every partition committed its last event.
fn catch_up(cfg: &Path, db: &Path, hub: &str, last: &[(String, i64)]) -> Duration {
    let started = Instant::now();
    let mut d = Daemon::start(cfg, db);
    wait_for("the backlog committed", Duration::from_secs(3600), || {
        let mut s = Store::open(db).ok()?;
        let tx = s.read().ok()?;
        let rows = tx
            .checkpoints_with_prefix(&format!("eventhubs:{NS}/{hub}/accessdrift/"))
            .ok()?;
        let mut got: Vec<(String, i64)> = rows
            .iter()
            .filter_map(|(n, cp, _)| {
                let p = EventHubsPosition::from_checkpoint(n, cp).ok()?;
                Some((n.rsplit('/').next()?.to_string(), p.sequence_number))
            })
            .collect();
        got.sort();
        (got == last).then_some(())
    });
    let took = started.elapsed();
    d.terminate(Duration::from_secs(30));
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let changes = args.get(1).copied().unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // 1. Filter throughput, and the Activity Log path beside it.
    let audit_hub = rt.block_on(AmqpBroker::start("aks-audit", PARTITIONS, &["accessdrift"]));
    let recs: Vec<Value> = (0..n)
        .map(|i| {
            audit(
                i,
                i.is_multiple_of(100)
                    .then(|| format!("backlog-{i}"))
                    .as_deref(),
            )
        })
        .collect();
    let last = load(&audit_hub, &recs);
    let db = dir.path().join("audit.db");
    fresh_db(&db);
    let cfg = config(dir.path(), "aks-audit", &audit_hub.endpoint(), None);
    let audit_took = catch_up(&cfg, &db, "aks-audit", &last);
    drop(recs);

    let activity_hub = rt.block_on(AmqpBroker::start("activity", PARTITIONS, &["accessdrift"]));
    let recs: Vec<Value> = (0..n).map(activity).collect();
    let last = load(&activity_hub, &recs);
    let db = dir.path().join("activity.db");
    fresh_db(&db);
    let cfg = config(dir.path(), "activity", &activity_hub.endpoint(), None);
    let activity_took = catch_up(&cfg, &db, "activity", &last);
    drop(recs);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{n} kube-audit records (1% RBAC writes, {PER_EVENT} per event, {PARTITIONS} partitions): {audit_took:.2?}, {:.0} records/s through the filter ({:.0}× the 333/s of 20,000 a minute)",
        rate(audit_took),
        rate(audit_took) / (20_000.0 / 60.0)
    );
    println!(
        "{n} Activity Log records (1 in 5 watched) on the same path: {activity_took:.2?}, {:.0} records/s",
        rate(activity_took)
    );

    // 2. Attribution latency at the nominal rate.
    let api = rt.block_on(kube_api::KubeApi::start());
    let live_hub = rt.block_on(AmqpBroker::start("live", PARTITIONS, &["accessdrift"]));
    let db = dir.path().join("live.db");
    fresh_db(&db);
    let cfg = config(
        dir.path(),
        "live",
        &live_hub.endpoint(),
        Some(&api.kubeconfig()),
    );
    let mut d = Daemon::start(&cfg, &db);
    d.wait_ready(Duration::from_secs(60));
    let names: Vec<String> = (0..changes).map(|i| format!("live-{i}")).collect();
    for name in &names {
        api.apply(
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "team"}]}),
        );
    }
    let findings = |db: &Path| -> HashMap<String, bool> {
        let Ok(mut s) = Store::open(db) else {
            return HashMap::new();
        };
        let Ok(tx) = s.read() else {
            return HashMap::new();
        };
        tx.findings(false)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.fact_key.starts_with("aks-prod/live-"))
            .map(|f| (f.fact_key.clone(), !f.actor.is_empty()))
            .collect()
    };
    wait_for(
        "the findings of the changes",
        Duration::from_secs(120),
        || (findings(&db).len() == changes).then_some(()),
    );
    // 20,000 records a minute: one event of ten every 30 ms, each change's record inside one.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut done: HashMap<String, Instant> = HashMap::new();
    let mut i = 0;
    let mut next = names.iter();
    let mut pending = true;
    let tick = Duration::from_millis(30);
    let deadline = Instant::now() + Duration::from_secs(600);
    while (pending || done.len() < changes) && Instant::now() < deadline {
        let t = Instant::now();
        let mut batch: Vec<Value> = (0..PER_EVENT)
            .map(|k| audit(10_000_000 + i * PER_EVENT + k, None))
            .collect();
        if let Some(name) = next.next() {
            batch[i % PER_EVENT] = audit(20_000_000 + i, Some(name));
            live_hub.append(
                i % PARTITIONS,
                json!({ "records": batch }).to_string().as_bytes(),
            );
            sent.insert(format!("aks-prod/{name}"), Instant::now());
        } else {
            pending = false;
            live_hub.append(
                i % PARTITIONS,
                json!({ "records": batch }).to_string().as_bytes(),
            );
        }
        i += 1;
        if i.is_multiple_of(5) {
            let now = Instant::now();
            for (k, attributed) in findings(&db) {
                if attributed {
                    done.entry(k).or_insert(now);
                }
            }
        }
        std::thread::sleep(tick.saturating_sub(t.elapsed()));
    }
    d.terminate(Duration::from_secs(30));
    let mut lat: Vec<Duration> = done
        .iter()
        .filter_map(|(k, at)| Some(at.saturating_duration_since(*sent.get(k)?)))
        .collect();
    lat.sort();
    assert!(!lat.is_empty(), "nothing was attributed");
    println!(
        "attribution of {} changes (audit record on the hub → finding names its author, polled every 150 ms): p50 {:.0?}, p99 {:.0?}, max {:.0?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );
}
