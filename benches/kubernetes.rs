//! `cargo bench --bench kubernetes`: the daemon against the in-test API server holding
//! 100,000 RoleBindings across 500 namespaces and 20,000 ClusterRoles. Prints the time from
//! start to ready, the daemon's peak RSS, and events/s for 10,000 modifications after sync.
//! Goals: synced ≤ 10 s, peak RSS ≤ 150 MB.
//!
//! Sizes can be changed: `cargo bench --bench kubernetes -- ROLEBINDINGS CLUSTERROLES MODS`.

#[path = "../tests/support/daemon.rs"]
mod daemon;
#[path = "../tests/support/kube_api.rs"]
mod kube_api;

use accessdrift::store::Store;
use daemon::{cli, wait_for, write_config, Daemon};
use kube_api::KubeApi;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RBAC: &str = "rbac.authorization.k8s.io";
const NAMESPACES: usize = 500;

fn rolebinding(i: usize, extra_subject: bool) -> Value {
    let mut subjects = vec![
        json!({"kind": "Group", "apiGroup": RBAC, "name": format!("{:08x}-0000-4000-8000-{:012x}", i % 97, i % 89)}),
    ];
    if extra_subject {
        subjects.push(
            json!({"kind": "User", "apiGroup": RBAC, "name": format!("user{i}@contoso.com")}),
        );
    }
    json!({"kind": "RoleBinding",
           "metadata": {"name": format!("rb-{i}"), "namespace": format!("ns-{}", i % NAMESPACES),
                        "labels": {"app": "bench"}, "creationTimestamp": "2024-05-06T07:08:09Z"},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": format!("role-{}", i % 200)},
           "subjects": subjects})
}

fn clusterrole(i: usize) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": format!("role-{i}")},
           "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["get", "list", "watch"]},
                     {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]})
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rolebindings = args.first().copied().unwrap_or(100_000);
    let clusterroles = args.get(1).copied().unwrap_or(20_000);
    let mods = args.get(2).copied().unwrap_or(10_000).min(rolebindings);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(KubeApi::start());
    api.load((0..rolebindings).map(|i| rolebinding(i, false)));
    api.load((0..clusterroles).map(clusterrole));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let cfg = write_config(dir.path(), &api.kubeconfig(), "");
    println!("kubernetes bench: {rolebindings} RoleBindings across {NAMESPACES} namespaces, {clusterroles} ClusterRoles");

    let t0 = Instant::now();
    let mut d = Daemon::start(&cfg, &db);
    d.wait_ready(Duration::from_secs(600));
    let synced = t0.elapsed();
    let pid = d.child.id();
    println!(
        "  start → ready:          {:>8.2} s   (goal ≤ 10 s)",
        synced.as_secs_f64()
    );
    println!(
        "  peak RSS at ready:      {:>8.1} MB",
        peak_rss_mb(pid).unwrap_or(f64::NAN)
    );

    // With a baseline, every modification is evaluated and opens a finding (and an alert).
    let t = Instant::now();
    let (code, _, err) = cli(&[
        "baseline",
        "capture",
        "--db",
        db.to_str().unwrap(),
        "--by",
        "bench",
    ]);
    assert_eq!(code, 0, "{err}");
    println!(
        "  baseline capture (CLI): {:>8.2} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut last_rv = 0;
    for i in 0..mods {
        last_rv = api.apply(rolebinding(i, true));
    }
    let want = format!("resourceVersion={last_rv}");
    let source = "k8s:aks-test:RoleBinding";
    wait_for(
        "the modifications to be committed",
        Duration::from_secs(600),
        || {
            let mut s = Store::open(&db).ok()?;
            let cp = s.read().ok()?.checkpoint(source).ok()??;
            (cp.fingerprint == want).then_some(())
        },
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  {mods} modifications:    {:>8.2} s = {:.0} events/s (committed and evaluated)",
        secs,
        mods as f64 / secs
    );
    println!(
        "  peak RSS overall:       {:>8.1} MB   (goal ≤ 150 MB)",
        peak_rss_mb(pid).unwrap_or(f64::NAN)
    );
    let st = d.terminate(Duration::from_secs(10));
    println!("  SIGTERM → exit:         {st}");
}
