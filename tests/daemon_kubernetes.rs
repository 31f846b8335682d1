//! `accessdrift run` with the Kubernetes source: the real kube client and watcher against an
//! in-test API server over TCP, the daemon as a child process, observed from outside.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/kube_api.rs"]
mod kube_api;

use accessdrift::domain::FactKind;
use accessdrift::store::{FactRow, Store};
use daemon::{cli, cli_within, wait_for, write_config, Daemon};
use kube_api::KubeApi;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const RBAC: &str = "rbac.authorization.k8s.io";
const ADMINS: &str = "6b3f1c2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c";
const LIMIT: Duration = Duration::from_secs(30);

fn group(id: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": id})
}
fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": RBAC, "name": name})
}
fn crb(name: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects})
}
fn rb(ns: &str, name: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

fn platform_role(verbs: &[&str]) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": "system:controller:node-controller",
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": verbs}]})
}

/// A small cluster: one of each watched kind, and a platform-managed role.
fn seed(api: &KubeApi) {
    api.apply(platform_role(&["get", "list", "watch"]));
    api.apply(crb("ops-admin", "cluster-admin", json!([group(ADMINS)])));
    api.apply(rb("team-a", "dev-edit", "edit", json!([group(ADMINS)])));
    api.apply(
        json!({"kind": "ClusterRole", "metadata": {"name": "pod-reader",
            "creationTimestamp": "2021-03-04T05:06:07Z",
            "managedFields": [{"manager": "kubectl", "time": "2022-03-04T05:06:07Z"}]},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    );
    api.apply(
        json!({"kind": "Role", "metadata": {"name": "secret-reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    );
    api.apply(json!({"kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a",
        "annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}}}));
}

struct Env {
    _rt: tokio::runtime::Runtime,
    api: KubeApi,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let api = rt.block_on(KubeApi::start());
        Env {
            _rt: rt,
            api,
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("ad.db")
    }
    fn db_str(&self) -> String {
        self.db().display().to_string()
    }
    fn start(&self) -> Daemon {
        let cfg = write_config(self.dir.path(), &self.api.kubeconfig(), "");
        Daemon::start(&cfg, &self.db())
    }
    fn capture_baseline(&self) {
        let (code, _, err) = cli(&[
            "baseline",
            "capture",
            "--db",
            &self.db_str(),
            "--by",
            "test",
        ]);
        assert_eq!(code, 0, "{err}");
    }
    fn open_findings(&self) -> Vec<Value> {
        let (code, out, err) = cli(&["findings", "--db", &self.db_str(), "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }
    /// Waits for an open drift finding on a fact key; returns its id.
    fn wait_finding(&self, key: &str) -> String {
        wait_for(&format!("a drift finding on {key}"), LIMIT, || {
            self.open_findings()
                .into_iter()
                .find(|f| f["kind"] == "drift" && f["fact_key"] == key)
                .map(|f| f["id"].as_str().unwrap().to_string())
        })
    }
}

fn fact(db: &Path, kind: FactKind, key: &str) -> Option<FactRow> {
    let mut s = Store::open(db).unwrap();
    let tx = s.read().unwrap();
    tx.fact(kind, key).unwrap()
}

fn live(db: &Path, kind: FactKind) -> usize {
    let mut s = Store::open(db).unwrap();
    let tx = s.read().unwrap();
    tx.facts()
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == kind && f.value.is_some())
        .count()
}

#[test]
fn initial_sync_then_add_modify_delete_and_metadata_only_updates_open_nothing() {
    let env = Env::new();
    seed(&env.api);
    let mut d = env.start();
    d.wait_ready(LIMIT);
    let db = env.db();
    for (kind, key) in [
        (FactKind::ClusterRoleBinding, "aks-test/ops-admin"),
        (FactKind::RoleBinding, "aks-test/team-a/dev-edit"),
        (FactKind::ClusterRole, "aks-test/pod-reader"),
        (FactKind::Role, "aks-test/team-a/secret-reader"),
        (FactKind::ServiceAccount, "aks-test/team-a/builder"),
    ] {
        let f = fact(&db, kind, key).unwrap_or_else(|| panic!("no fact {kind:?} {key}"));
        assert!(f.value.is_some(), "{key}");
        assert_eq!(f.prov.source, "k8s");
    }
    // Object timestamps are months old; a live change happened when it was received.
    let t0 = accessdrift::domain::EventTime::now().unix_seconds() - 300;
    let cr = fact(&db, FactKind::ClusterRole, "aks-test/pod-reader").unwrap();
    assert!(
        cr.event_time.unix_seconds() > t0,
        "event time {} is the object's",
        cr.event_time
    );
    env.capture_baseline();

    // Metadata only (labels, annotations, resourceVersion): same access, no finding. The real
    // change after it on the same watch proves it was processed when we look.
    let mut ops = crb("ops-admin", "cluster-admin", json!([group(ADMINS)]));
    ops["metadata"]["labels"] = json!({"team": "platform"});
    ops["metadata"]["annotations"] = json!({"note": "touched by a controller"});
    env.api.apply(ops);
    let started = Instant::now();
    env.api.apply(crb(
        "backdoor",
        "cluster-admin",
        json!([user("mallory@contoso.com")]),
    ));
    let id = env.wait_finding("aks-test/backdoor");
    // The notifier is woken by the commit: the alert is out well before its poll could matter.
    wait_for("the opened alert on stdout", LIMIT, || {
        d.stdout().contains(&id).then_some(())
    });
    eprintln!("add → alert in {:?}", started.elapsed());
    assert!(
        !env.open_findings()
            .iter()
            // The binding's policy finding (cluster-admin) stands from the initial sync; the
            // metadata-only update must neither open drift nor touch that finding.
            .any(|f| f["fact_key"] == "aks-test/ops-admin"
                && (f["kind"] == "drift" || f["occurrences"] != 1)),
        "metadata-only update opened or repeated a finding: {:?}",
        env.open_findings()
    );

    // An AKS upgrade rewriting a platform-managed role is recorded at the platform severity.
    env.api
        .apply(platform_role(&["get", "list", "watch", "update"]));
    let id = env.wait_finding("aks-test/system:controller:node-controller");
    let f = env
        .open_findings()
        .into_iter()
        .find(|f| f["id"] == id.as_str())
        .unwrap();
    assert_eq!(f["severity"], "low", "{f}");

    env.api.apply(rb(
        "team-a",
        "dev-edit",
        "edit",
        json!([group(ADMINS), user("eve@contoso.com")]),
    ));
    env.wait_finding("aks-test/team-a/dev-edit");
    let f = fact(&db, FactKind::RoleBinding, "aks-test/team-a/dev-edit").unwrap();
    assert!(f.value.unwrap().to_string().contains("eve@contoso.com"));

    assert!(env.api.delete("Role", Some("team-a"), "secret-reader"));
    env.wait_finding("aks-test/team-a/secret-reader");
    let f = fact(&db, FactKind::Role, "aks-test/team-a/secret-reader").unwrap();
    assert!(f.value.is_none(), "delete left a live fact");
    assert!(
        f.event_time.unix_seconds() > t0,
        "DELETED took the object's time {}",
        f.event_time
    );

    let st = d.terminate(Duration::from_secs(10));
    assert!(st.success(), "exit {st:?}; logs:\n{}", d.stderr());
}

#[test]
fn changes_while_the_watch_is_down_converge_after_410_relist_deletes_included() {
    let env = Env::new();
    seed(&env.api);
    // A fact of another cluster, outside every scope this daemon lists: never touched.
    let other = env.dir.path().join("other.json");
    std::fs::write(
        &other,
        json!({"type": "ADDED", "object": rb("team-a", "keep-me", "view", json!([group(ADMINS)]))})
            .to_string(),
    )
    .unwrap();
    let (code, _, err) = cli(&[
        "replay",
        "--db",
        &env.db_str(),
        "--cluster",
        "other",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");

    let mut d = env.start();
    d.wait_ready(LIMIT);
    env.capture_baseline();
    let lists_before = env.api.requests("list:serviceaccounts");

    // While the watch is down: a change and a delete no watch will ever replay.
    env.api.set_silent(true);
    env.api.apply(rb(
        "team-a",
        "dev-edit",
        "edit",
        json!([group(ADMINS), user("eve@contoso.com")]),
    ));
    assert!(env.api.delete("ServiceAccount", Some("team-a"), "builder"));
    env.api.set_silent(false);
    env.api.expire_history();
    env.api.drop_watches();

    let db = env.db();
    let gone = wait_for("the relist to delete the service account", LIMIT, || {
        fact(&db, FactKind::ServiceAccount, "aks-test/team-a/builder").filter(|f| f.value.is_none())
    });
    assert!(
        gone.prov.operation.starts_with("k8s:relist-missing"),
        "{:?}",
        gone.prov
    );
    wait_for("the relist to carry the change", LIMIT, || {
        fact(&db, FactKind::RoleBinding, "aks-test/team-a/dev-edit").filter(|f| {
            f.value
                .as_ref()
                .is_some_and(|v| v.to_string().contains("eve@contoso.com"))
        })
    });
    env.wait_finding("aks-test/team-a/builder");
    env.wait_finding("aks-test/team-a/dev-edit");
    assert!(
        env.api.requests("list:serviceaccounts") > lists_before,
        "no relist happened"
    );
    assert!(
        fact(&db, FactKind::RoleBinding, "other/team-a/keep-me").is_some_and(|f| f.value.is_some()),
        "a fact outside the relist scope was deleted"
    );
    assert!(d.stderr().contains("watch restarted"), "{}", d.stderr());
    assert!(d.terminate(Duration::from_secs(10)).success());
}

#[test]
fn forbidden_kind_leaves_the_others_syncing_and_readyz_names_it() {
    let env = Env::new();
    env.api.set_forbidden("rolebindings", true);
    seed(&env.api);
    let mut d = env.start();
    let db = env.db();
    let body = wait_for("readyz to name only the forbidden kind", LIMIT, || {
        let (code, body) = d.readyz()?;
        let not_ready = body["not_ready"].as_object()?;
        (code == 503
            && not_ready.len() == 1
            && body["sources"]["k8s:aks-test:ClusterRoleBinding"] == "synced")
            .then_some(body)
    });
    let why = body["not_ready"]["k8s:aks-test:RoleBinding"]
        .as_str()
        .unwrap();
    for want in [
        "403",
        "system:serviceaccount:accessdrift:accessdrift",
        "cannot list rolebindings.rbac.authorization.k8s.io",
    ] {
        assert!(why.contains(want), "{want:?} not in {why}");
    }
    assert!(fact(&db, FactKind::ClusterRoleBinding, "aks-test/ops-admin").is_some());
    assert!(fact(&db, FactKind::RoleBinding, "aks-test/team-a/dev-edit").is_none());
    let logs = d.stderr();
    assert!(
        logs.lines().any(|l| l.contains("ERROR")
            && l.contains("k8s:aks-test:RoleBinding")
            && l.contains("system:serviceaccount:accessdrift:accessdrift")),
        "{logs}"
    );
    // Granted: the watch's backoff retries and the kind syncs.
    env.api.set_forbidden("rolebindings", false);
    d.wait_ready(Duration::from_secs(60));
    assert!(fact(&db, FactKind::RoleBinding, "aks-test/team-a/dev-edit").is_some());
    assert!(d.terminate(Duration::from_secs(10)).success());
}

#[test]
fn sigterm_mid_sync_exits_zero_and_a_restart_resumes() {
    let env = Env::new();
    env.api.load((0..2000).map(|i| {
        rb(
            &format!("ns-{}", i % 4),
            &format!("rb-{i}"),
            "view",
            json!([group(ADMINS)]),
        )
    }));
    env.api.set_page_delay(Duration::from_millis(400));
    let mut d = env.start();
    wait_for("the RoleBinding list to be mid-way", LIMIT, || {
        (env.api.requests("list:rolebindings") >= 2).then_some(())
    });
    let t = Instant::now();
    let st = d.terminate(Duration::from_secs(10));
    assert!(st.success(), "exit {st:?}; logs:\n{}", d.stderr());
    assert!(t.elapsed() < Duration::from_secs(10));
    let db = env.db();
    assert!(
        live(&db, FactKind::RoleBinding) < 2000,
        "the sync was not interrupted"
    );

    env.api.set_page_delay(Duration::ZERO);
    let mut d = env.start();
    d.wait_ready(LIMIT);
    assert_eq!(live(&db, FactKind::RoleBinding), 2000, "{}", d.stderr());
    let mut s = Store::open(&db).unwrap();
    let cp = s
        .read()
        .unwrap()
        .checkpoint("k8s:aks-test:RoleBinding")
        .unwrap()
        .expect("checkpoint");
    assert!(cp.fingerprint.starts_with("resourceVersion="), "{cp:?}");
}

#[test]
fn cli_approval_while_the_daemon_runs_is_alerted_by_the_daemon() {
    let env = Env::new();
    seed(&env.api);
    let mut d = env.start();
    d.wait_ready(LIMIT);
    env.capture_baseline();
    env.api.apply(crb(
        "backdoor",
        "cluster-admin",
        json!([user("mallory@contoso.com")]),
    ));
    let id = env.wait_finding("aks-test/backdoor");
    wait_for("the opened alert", LIMIT, || {
        d.stdout().contains(&id).then_some(())
    });

    let (code, out, err) = cli(&[
        "baseline",
        "approve",
        "--db",
        &env.db_str(),
        "--by",
        "test",
        &id,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The CLI queued the resolution; the daemon's notifier (not the CLI) delivers it.
    assert!(
        !out.contains(&format!("(finding {id}")),
        "the CLI delivered the alert itself: {out}"
    );
    wait_for("the daemon to send the approval's alert", LIMIT, || {
        d.stdout()
            .lines()
            .any(|l| l.contains(&id) && l.contains("resolved"))
            .then_some(())
    });
    assert!(!env.open_findings().iter().any(|f| f["id"] == id.as_str()));
}

#[test]
fn unreadable_kubeconfig_is_a_start_up_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "not: [a kubeconfig", "");
    let db = dir.path().join("ad.db");
    let (code, _, err) = cli(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("kubeconfig")
            && err.contains(&dir.path().join("kubeconfig").display().to_string()),
        "{err}"
    );
}

#[test]
fn a_second_signal_exits_at_once_and_nothing_committed_is_lost() {
    let env = Env::new();
    env.api.load((0..2000).map(|i| {
        rb(
            &format!("ns-{}", i % 4),
            &format!("rb-{i}"),
            "view",
            json!([group(ADMINS)]),
        )
    }));
    // Slow pages: the first signal's graceful stop waits for an in-flight list page.
    env.api.set_page_delay(Duration::from_millis(1500));
    let mut d = env.start();
    wait_for("the RoleBinding list to be mid-way", LIMIT, || {
        (env.api.requests("list:rolebindings") >= 2).then_some(())
    });
    d.signal("INT");
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(5));
    // 130 when the second signal lands during the graceful stop; 0 when the graceful stop
    // (cancelled list, writer commit) was already done by then. Never a hang, never a crash.
    let logs = d.stderr();
    match st.code() {
        Some(130) => assert!(logs.contains("second signal"), "{logs}"),
        Some(0) => {}
        other => panic!("exit {other:?}; logs:\n{logs}"),
    }
    // Whatever was committed stays; a restart converges to the full state.
    env.api.set_page_delay(Duration::ZERO);
    let mut d = env.start();
    d.wait_ready(LIMIT);
    assert_eq!(
        live(&env.db(), FactKind::RoleBinding),
        2000,
        "{}",
        d.stderr()
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_source_state_fields() {
    let env = Env::new();
    seed(&env.api);
    let cfg = write_config(env.dir.path(), &env.api.kubeconfig(), "");
    let mut d = Daemon::start_with(&cfg, &env.db(), &["--log-format", "json"]);
    d.wait_ready(LIMIT);
    let st = d.terminate(Duration::from_secs(10));
    assert!(st.success());
    let logs = d.stderr();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l.to_string().contains("synced")),
        "no source state line: {logs}"
    );
}

/// A `[kubernetes]` table without `enabled` starts the watch (it used to be ignored: the
/// daemon watched nothing and `/readyz` stayed 503 with no sources), and `check-config` says
/// which sources `run` would start.
#[test]
fn a_kubernetes_table_turns_the_watch_on_and_check_config_names_it() {
    let env = Env::new();
    seed(&env.api);
    let cfg = write_config(env.dir.path(), &env.api.kubeconfig(), "");
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("enabled"));
    let (code, out, err) = cli(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("# `accessdrift run` would start 1 source(s):")
            && out.contains("#   kubernetes: cluster \"aks-test\""),
        "{out}"
    );
    let mut d = Daemon::start(&cfg, &env.db());
    d.wait_ready(LIMIT);
    let (code, body) = d.readyz().unwrap();
    assert_eq!(code, 200);
    let sources = body["sources"].as_object().unwrap();
    assert_eq!(sources.len(), 5, "{body}");
    assert!(
        sources.keys().all(|k| k.starts_with("k8s:aks-test:")),
        "{body}"
    );
    assert!(d.terminate(LIMIT).success());
}

/// `run` with no source enabled refuses at once, exit 2, in one line naming the file it read
/// and the tables to add, and touches nothing (no database is created).
#[test]
fn run_with_no_source_exits_2_naming_the_file_and_the_tables_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ad.db");
    for (name, text) in [
        (
            "empty.toml",
            "[server]\nlisten = \"127.0.0.1:0\"\n".to_string(),
        ),
        (
            "off.toml",
            "[kubernetes]\nenabled = false\ncluster = \"aks\"\n[eventhubs]\nenabled = false\n"
                .to_string(),
        ),
    ] {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, text).unwrap();
        let (code, out, err) = cli_within(
            &[
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--db",
                db.to_str().unwrap(),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(code, 2, "{name}: {err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            err.contains(&cfg.display().to_string())
                && err.contains("[kubernetes]")
                && err.contains("[eventhubs]"),
            "{name}: {err}"
        );
        assert!(!db.exists(), "{name}: the database was created");
        let (code, out, _) = cli(&["check-config", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(out.contains("would start no source"), "{out}");
    }
    // Without --config at all: says so.
    let (code, _, err) = cli_within(
        &["run", "--db", db.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no --config given"), "{err}");
}
