//! Operating the daemon: `/metrics` scraped over HTTP from a running daemon (OpenMetrics); traces
//! exported over OTLP/HTTP and OTLP/gRPC to real in-test receivers (`support/otlp.rs`); a
//! collector that is down or silent does not hold a replay; the dashboard and the alert rules
//! query only exported metrics.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/openmetrics.rs"]
mod openmetrics;
#[path = "support/otlp.rs"]
mod otlp;
#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/smtp.rs"]
mod smtp;

use daemon::{cli, http_get, wait_for, write_config, Daemon};
use kube_api::KubeApi;
use openmetrics::Exposition;
use otlp::{GrpcReceiver, Receiver, Span};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RBAC: &str = "rbac.authorization.k8s.io";
const ADMINS: &str = "6b3f1c2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c";
const LIMIT: Duration = Duration::from_secs(30);

fn crb(name: &str, role: &str, subject: Value) -> Value {
    json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": [subject]})
}

fn seed(api: &KubeApi) {
    api.apply(crb(
        "ops-admin",
        "cluster-admin",
        json!({"kind": "Group", "apiGroup": RBAC, "name": ADMINS}),
    ));
    api.apply(
        json!({"kind": "ClusterRole", "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    );
    api.apply(
        json!({"kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}}),
    );
}

/// Watch-event files of a baseline day (an ops binding) and a change day (a backdoor
/// cluster-admin binding), for tests that replay.
fn two_days(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let event = |name: &str, user: &str, rv: u32| {
        let mut obj = crb(
            name,
            "cluster-admin",
            json!({"kind": "User", "apiGroup": RBAC, "name": user}),
        );
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        json!({"type": "ADDED", "object": obj}).to_string() + "\n"
    };
    let day1 = dir.join("day1.jsonl");
    std::fs::write(&day1, event("ops", "ops@contoso.com", 1)).unwrap();
    let day2 = dir.join("day2.jsonl");
    std::fs::write(&day2, event("backdoor", "mallory@contoso.com", 2)).unwrap();
    (day1, day2)
}

fn backdoor() -> Value {
    crb(
        "backdoor",
        "cluster-admin",
        json!({"kind": "User", "apiGroup": RBAC, "name": "mallory@contoso.com"}),
    )
}

struct Env {
    rt: tokio::runtime::Runtime,
    api: KubeApi,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let api = rt.block_on(KubeApi::start());
        Env {
            rt,
            api,
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> String {
        self.dir.path().join("ad.db").display().to_string()
    }
    fn start(&self, env: &[(&str, &str)]) -> Daemon {
        let cfg = write_config(self.dir.path(), &self.api.kubeconfig(), "");
        Daemon::start_env(&cfg, self.dir.path().join("ad.db").as_path(), &[], env)
    }
    fn capture_baseline(&self) {
        let (code, _, err) = cli(&["baseline", "capture", "--db", &self.db(), "--by", "t"]);
        assert_eq!(code, 0, "{err}");
    }
    fn finding_on(&self, key: &str) -> Value {
        wait_for(&format!("a finding on {key}"), LIMIT, || {
            let (code, out, err) = cli(&["findings", "--db", &self.db(), "--json"]);
            assert_eq!(code, 0, "{err}");
            let all: Vec<Value> = serde_json::from_str(&out).unwrap();
            all.into_iter().find(|f| f["fact_key"] == key)
        })
    }
}

fn scrape(d: &Daemon) -> Exposition {
    let (code, body) = http_get(d.port(), "/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{body}");
    Exposition::parse(&body)
}

#[test]
fn metrics_are_openmetrics_and_move_with_a_sync_a_finding_and_its_alert() {
    let env = Env::new();
    seed(&env.api);
    let mut d = env.start(&[]);
    d.wait_ready(LIMIT);

    let m = wait_for("the fact gauges after the initial sync", LIMIT, || {
        let m = scrape(&d);
        (m.sum("accessdrift_facts", Some(("kind", "cluster_role_binding"))) >= 1.0).then_some(m)
    });
    for (family, ty) in [
        ("accessdrift_build", "info"),
        ("accessdrift_source_records_read", "counter"),
        ("accessdrift_batches_committed", "counter"),
        ("accessdrift_batch_commit_duration_seconds", "histogram"),
        ("accessdrift_facts", "gauge"),
        ("accessdrift_source_ready", "gauge"),
        ("accessdrift_alert_delivery_duration_seconds", "histogram"),
        ("accessdrift_outbox_alerts", "gauge"),
        ("accessdrift_outbox_oldest_pending_age_seconds", "gauge"),
        ("accessdrift_kubernetes_watch_restarts", "counter"),
        ("accessdrift_kubernetes_relists", "counter"),
        ("accessdrift_finding_transitions", "counter"),
        ("accessdrift_findings_active", "gauge"),
        ("accessdrift_trace_spans_dropped", "counter"),
    ] {
        // (Event Hubs partition families appear once that source runs: partitions are labels.)
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(ty),
            "{family}"
        );
    }
    assert_eq!(m.sum("accessdrift_build_info", None), 1.0);
    // Every watch reported ready, by name.
    let ready: Vec<_> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "accessdrift_source_ready")
        .collect();
    assert_eq!(ready.len(), 5, "{ready:?}");
    assert!(ready.iter().all(|(_, _, v)| *v == 1.0), "{ready:?}");
    let crb_source = ("source", "k8s:aks-test:ClusterRoleBinding");
    assert!(m.sum("accessdrift_source_records_read_total", Some(crb_source)) >= 1.0);
    assert!(m.sum("accessdrift_batches_committed_total", Some(crb_source)) >= 1.0);
    assert!(
        m.sum(
            "accessdrift_batch_commit_duration_seconds_count",
            Some(crb_source)
        ) >= 1.0
    );
    assert_eq!(
        m.sum("accessdrift_facts", Some(("kind", "cluster_role"))),
        1.0
    );
    assert_eq!(
        m.sum("accessdrift_facts", Some(("kind", "service_account"))),
        1.0
    );
    // The rules judge from the first sync (no baseline needed): what the sync opened is the
    // starting point; the backdoor below must add to it.
    let opened = |m: &Exposition| {
        m.sum(
            "accessdrift_finding_transitions_total",
            Some(("transition", "opened")),
        )
    };
    let queued =
        |m: &Exposition| m.sum("accessdrift_alerts_queued_total", Some(("sink", "stdout")));
    let (opened_before, queued_before) = (opened(&m), queued(&m));

    env.capture_baseline();
    env.api.apply(backdoor());
    let f = env.finding_on("aks-test/backdoor");
    let severity = f["severity"].as_str().unwrap().to_string();
    let m = wait_for(
        "the alert delivered and the gauges read again",
        LIMIT,
        || {
            let m = scrape(&d);
            (m.sum(
                "accessdrift_alerts_delivered_total",
                Some(("sink", "stdout")),
            ) >= 1.0
                && m.sum("accessdrift_findings_active", Some(("severity", &severity))) >= 1.0)
                .then_some(m)
        },
    );
    // Drift plus the binding's policy findings: each opening queues one alert.
    let new_findings = opened(&m) - opened_before;
    assert!(new_findings >= 1.0, "{new_findings}");
    assert_eq!(queued(&m) - queued_before, new_findings);
    assert!(
        m.sum(
            "accessdrift_alert_delivery_duration_seconds_count",
            Some(("sink", "stdout"))
        ) >= 1.0
    );
    assert_eq!(m.sum("accessdrift_alerts_dead_lettered_total", None), 0.0);
    assert_eq!(
        m.sum("accessdrift_outbox_alerts", Some(("state", "pending"))),
        0.0,
        "the delivered alert left the outbox"
    );
    assert!(d.terminate(LIMIT).success());
}

#[test]
fn a_batch_is_one_trace_from_ingest_to_the_alert_and_the_finding_carries_its_id() {
    let env = Env::new();
    let rx = Receiver::start(&env.rt);
    seed(&env.api);
    let endpoint = format!("http://127.0.0.1:{}", rx.port);
    let mut d = env.start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    d.wait_ready(LIMIT);
    env.capture_baseline();
    env.api.apply(backdoor());
    let f = env.finding_on("aks-test/backdoor");
    let finding_id = f["id"].as_str().unwrap().to_string();
    let trace = f["trace_id"]
        .as_str()
        .expect("trace_id on the finding")
        .to_string();
    let batch_span = f["trace_span_id"].as_str().unwrap().to_string();
    assert_eq!(trace.len(), 32, "{f}");

    let spans = wait_for("the batch's spans and its delivery span", LIMIT, || {
        let s: Vec<Span> = rx
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        s.iter()
            .any(|s| {
                s.name == "notify" && s.attrs.get("accessdrift.finding.id") == Some(&finding_id)
            })
            .then_some(s)
    });
    assert!(rx.paths.lock().unwrap().iter().all(|p| p == "/v1/traces"));
    let one = |name: &str| {
        let v: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(v.len(), 1, "{name} spans in the trace: {spans:#?}");
        v[0].clone()
    };
    let ingest = one("ingest");
    let apply = one("apply");
    // The batch opened the drift finding and the binding's policy findings: one delivery
    // span each; this finding's is the one to follow.
    let notify = spans
        .iter()
        .find(|s| s.name == "notify" && s.attrs.get("accessdrift.finding.id") == Some(&finding_id))
        .unwrap()
        .clone();
    assert!(spans.iter().all(|s| s.service == "accessdrift"));
    // ingest (root) → normalise (the watch event decoded) and apply (the transaction) →
    // evaluate, the pipeline's span, which holds the transition event.
    assert_eq!(ingest.parent, "", "ingest is the root: {ingest:?}");
    let normalise = one("normalise");
    assert_eq!(normalise.parent, ingest.span_id, "{normalise:?}");
    assert_eq!(normalise.attrs["accessdrift.records"], "1");
    assert_eq!(normalise.attrs["accessdrift.observations"], "1");
    assert_eq!(apply.parent, ingest.span_id);
    let inner = spans
        .iter()
        .find(|s| s.span_id == batch_span)
        .expect("the finding's span is in the trace");
    assert_eq!(inner.name, "evaluate", "{inner:?}");
    assert_eq!(inner.parent, apply.span_id, "{inner:?}");
    assert_eq!(
        ingest.attrs["accessdrift.source"],
        "k8s:aks-test:ClusterRoleBinding"
    );
    assert_eq!(ingest.attrs["messaging.batch.message_count"], "1");
    assert_eq!(apply.attrs["db.system.name"], "sqlite");
    let transitions: u32 = apply.attrs["accessdrift.findings.transitions"]
        .parse()
        .unwrap();
    assert!(transitions >= 1, "{apply:?}");
    let (_, ev) = inner
        .events
        .iter()
        .find(|(n, a)| {
            n == "finding transition" && a.get("accessdrift.finding.id") == Some(&finding_id)
        })
        .unwrap_or_else(|| panic!("no transition event on {inner:?}"));
    assert_eq!(ev["accessdrift.transition"], "opened");
    assert_eq!(ev["accessdrift.severity"], f["severity"].as_str().unwrap());
    // The delivery is a child of the batch span the finding names: alert → trace in one hop.
    assert_eq!(notify.parent, batch_span);
    assert_eq!(notify.attrs["accessdrift.sink"], "stdout");
    assert_eq!(notify.attrs["accessdrift.finding.id"], finding_id);

    // Never a record body nor who is in it: the subject only lives in the store and the alert.
    for s in rx.spans() {
        let values = s
            .attrs
            .values()
            .chain(s.events.iter().flat_map(|(_, a)| a.values()));
        for v in values {
            assert!(
                !v.contains("mallory") && !v.contains("roleRef"),
                "{} carries {v}",
                s.name
            );
        }
    }
    assert!(d.terminate(LIMIT).success());
}

/// Each delivery's `notify` span follows the OpenTelemetry client conventions, and carries no
/// secret: kind CLIENT; for webhooks `http.request.method`, `server.address`, `server.port`,
/// `url.full` (Slack's path, a query value and user info redacted), the status code, and
/// `error.type` = the status on an error response; for mail the relay and `smtp`.
#[test]
fn delivery_spans_are_http_and_smtp_client_spans_without_secrets() {
    const SLACK_PATH: &str = "/services/T0SECRET/B0SECRET/slackpathsecret";
    const QUERY_TOKEN: &str = "querytokensecret";
    const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rx = Receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let siem = receiver::Receiver::start();
    let slack = receiver::Receiver::start();
    let broken = receiver::Receiver::start();
    for _ in 0..8 {
        broken.push(receiver::Reply::status(503));
    }
    let mail = smtp::SmtpPeer::start(dir.path(), &["--tls", "none"]);
    let slack_url = format!("http://{}{SLACK_PATH}", slack.addr);
    let cfg = dir.path().join("ad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[notify]\nmax_attempts = 3\n\n\
             [[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nformat = \"cloudevents\"\nurl = \"http://user:pw@{}/ingest?token={QUERY_TOKEN}\"\nsecret = {{ env = \"T_SIGNING\" }}\n\n\
             [[sinks]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = {{ env = \"T_SLACK_URL\" }}\n\n\
             [[sinks]]\nname = \"broken\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
             [[sinks]]\nname = \"mail\"\ntype = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"ad@example.com\"\nto = [\"sre@example.com\"]\n",
            siem.addr,
            broken.url(),
            mail.port
        ),
    )
    .unwrap();
    let db = dir.path().join("ad.db");
    let (day1, day2) = two_days(dir.path());
    let endpoint = format!("http://127.0.0.1:{}", rx.port);
    let ad = |args: &[&str]| {
        let out = std::process::Command::new(daemon::BIN)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .arg("--db")
            .arg(&db)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("T_SLACK_URL", &slack_url)
            .env("T_SIGNING", SIGNING)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = ad(&["replay", "--cluster", "aks", day1.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = ad(&["baseline", "capture", "--by", "t"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = ad(&["replay", "--cluster", "aks", day2.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    ad(&["notify", "--once"]);
    assert!(!siem.requests().is_empty() && !slack.requests().is_empty());
    assert!(!mail.messages().is_empty());

    let spans = wait_for("a notify span per sink", LIMIT, || {
        let s: Vec<Span> = rx
            .spans()
            .into_iter()
            .filter(|s| s.name == "notify")
            .collect();
        ["siem", "slack", "broken", "mail"]
            .iter()
            .all(|k| s.iter().any(|s| s.attrs["accessdrift.sink"] == *k))
            .then_some(s)
    });
    let of = |sink: &str| -> Span {
        spans
            .iter()
            .find(|s| s.attrs["accessdrift.sink"] == sink)
            .unwrap()
            .clone()
    };
    const CLIENT: i32 = 3;
    let s = of("siem");
    assert_eq!(s.kind, CLIENT, "{s:?}");
    assert_eq!(s.attrs["http.request.method"], "POST");
    assert_eq!(s.attrs["server.address"], "127.0.0.1");
    assert_eq!(s.attrs["server.port"], siem.addr.port().to_string());
    assert_eq!(
        s.attrs["url.full"],
        format!("http://{}/ingest?token=REDACTED", siem.addr)
    );
    assert_eq!(s.attrs["http.response.status_code"], "200");
    assert!(!s.attrs.contains_key("error.type"), "{s:?}");

    let s = of("slack");
    assert_eq!(s.kind, CLIENT);
    assert_eq!(
        s.attrs["url.full"],
        format!("http://{}/REDACTED", slack.addr)
    );
    assert_eq!(s.attrs["server.port"], slack.addr.port().to_string());

    let s = of("broken");
    assert_eq!(s.kind, CLIENT);
    assert_eq!(s.attrs["http.response.status_code"], "503");
    assert_eq!(s.attrs["error.type"], "503");
    assert_eq!(s.status, 2, "an error status: {s:?}");

    let s = of("mail");
    assert_eq!(s.kind, CLIENT);
    assert_eq!(s.attrs["server.address"], "127.0.0.1");
    assert_eq!(s.attrs["server.port"], mail.port.to_string());
    assert_eq!(s.attrs["network.protocol.name"], "smtp");

    for s in rx.spans() {
        let values = s
            .attrs
            .values()
            .chain(s.events.iter().flat_map(|(_, a)| a.values()));
        for v in values {
            for secret in [
                "slackpathsecret",
                "T0SECRET",
                QUERY_TOKEN,
                "user:pw",
                &SIGNING[6..],
            ] {
                assert!(!v.contains(secret), "{} carries a secret: {v}", s.name);
            }
        }
    }
}

/// A replay with the collector down (closed port) or silent (accepts, never answers)
/// finishes, applies everything, and counts what it could not send.
#[test]
fn an_unreachable_or_silent_collector_does_not_hold_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let lines: Vec<String> = (0..200)
        .map(|i| {
            json!({"type": "ADDED", "object": {"kind": "ClusterRoleBinding",
                "metadata": {"name": format!("b{i}"), "resourceVersion": format!("{}", i + 1)},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": ADMINS}]}})
            .to_string()
        })
        .collect();
    let input = dir.path().join("watch.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    for (what, port, protocol) in [
        ("closed port", closed, "http/protobuf"),
        ("silent collector", silent_port, "http/protobuf"),
        ("closed port", closed, "grpc"),
        ("silent collector", silent_port, "grpc"),
    ] {
        let what = format!("{what} ({protocol})");
        let db = dir
            .path()
            .join(format!("{port}-{}.db", protocol.replace('/', "-")));
        let started = Instant::now();
        let out = std::process::Command::new(daemon::BIN)
            .args(["replay", "--json", "--db"])
            .arg(&db)
            .arg(&input)
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["applied"], 200, "{what}: {summary}");
        // The exporter's shutdown is bounded (3 s) whatever the collector does.
        assert!(
            took < Duration::from_secs(8),
            "{what}: replay took {took:?}"
        );
    }
    drop(silent);
}

// ---------------------------------------------------------------- dashboards and alert rules

/// The `accessdrift_*` metric names a PromQL expression reads.
fn promql_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        if ident(b[i]) && (i == 0 || !ident(b[i - 1])) {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("accessdrift_") {
                out.push(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    out
}

fn dashboard_exprs(panels: &Value, out: &mut Vec<(String, String)>) {
    for p in panels.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("?").to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
        dashboard_exprs(&p["panels"], out);
    }
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_query_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("dashboards/accessdrift.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    dashboard_exprs(&dash["panels"], &mut queries);
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/base/prometheusrule.yaml")).unwrap(),
    )
    .unwrap();
    for g in rules["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            queries.push((
                format!("rule {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let sections: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        sections,
        ["Ingestion", "Findings", "Alert delivery", "Process"]
    );

    // The FIRST scrape the daemon answers, before it is ready and before the gauge thread's
    // first reading: every family queried must exist, with its zero series for the configured
    // sink and every source and kind (an absence alert must not fire on a healthy start).
    let env = Env::new();
    seed(&env.api);
    let d = env.start(&[]);
    let m = wait_for("the first /metrics answer", LIMIT, || {
        http_get(d.port(), "/metrics").map(|(code, body)| {
            assert_eq!(code, 200, "{body}");
            Exposition::parse(&body)
        })
    });
    let family_of = |name: &str| -> Option<String> {
        let base = ["_total", "_bucket", "_count", "_sum", "_info"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        [name, base]
            .into_iter()
            .find(|f| m.types.contains_key(*f))
            .map(str::to_string)
    };
    let mut checked = 0;
    for (panel, expr) in &queries {
        for name in promql_names(expr) {
            // Partition series exist once the hub's partitions are known (this daemon has no
            // [eventhubs]; daemon_eventhubs.rs scrapes them).
            if name.starts_with("accessdrift_eventhubs_") {
                continue;
            }
            assert!(
                family_of(&name).is_some(),
                "{panel}: the family of `{name}` is not in the first scrape (query: {expr}); families: {:?}",
                m.types.keys().collect::<Vec<_>>()
            );
            checked += 1;
        }
    }
    let has = |name: &str, labels: &[(&str, &str)]| {
        m.samples.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    };
    for (name, labels) in [
        (
            "accessdrift_outbox_alerts",
            vec![("sink", "stdout"), ("state", "pending")],
        ),
        (
            "accessdrift_outbox_alerts",
            vec![("sink", "stdout"), ("state", "dead")],
        ),
        (
            "accessdrift_outbox_oldest_pending_age_seconds",
            vec![("sink", "stdout")],
        ),
        (
            "accessdrift_alerts_delivered_total",
            vec![("sink", "stdout")],
        ),
        (
            "accessdrift_alerts_dead_lettered_total",
            vec![("sink", "stdout")],
        ),
        ("accessdrift_facts", vec![("kind", "role_assignment")]),
        ("accessdrift_facts", vec![("kind", "cluster_role_binding")]),
        (
            "accessdrift_findings_active",
            vec![("kind", "drift"), ("severity", "critical")],
        ),
        (
            "accessdrift_finding_transitions_total",
            vec![("transition", "opened")],
        ),
        ("accessdrift_trace_spans_dropped_total", vec![]),
    ] {
        assert!(
            has(name, &labels),
            "{name} {labels:?} missing from the first scrape"
        );
    }
    for kind in [
        "ClusterRoleBinding",
        "RoleBinding",
        "ClusterRole",
        "Role",
        "ServiceAccount",
    ] {
        let source = format!("k8s:aks-test:{kind}");
        for name in [
            "accessdrift_source_ready",
            "accessdrift_source_records_malformed_total",
            "accessdrift_batches_committed_total",
            "accessdrift_batches_failed_total",
        ] {
            assert!(
                has(name, &[("source", &source)]),
                "{name} of {source} missing"
            );
        }
        assert!(
            has(
                "accessdrift_kubernetes_watch_restarts_total",
                &[("kind", kind), ("reason", "error")]
            ),
            "watch restarts of {kind} missing"
        );
    }
    assert!(checked >= 30, "only {checked} metric references found");
    let mut d = d;
    assert!(d.terminate(LIMIT).success());
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` against a real OTLP/gRPC server: a replayed batch's spans
/// arrive, and the finding it opened names their trace.
#[test]
fn grpc_export_reaches_a_real_receiver_and_the_replayed_finding_names_its_trace() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (port, spans) = GrpcReceiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ad.db").display().to_string();
    let (day1, day2) = two_days(dir.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let replay = |file: &std::path::Path| {
        let out = std::process::Command::new(daemon::BIN)
            .args(["replay", "--cluster", "aks", "--db", &db])
            .arg(file)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    replay(&day1);
    let (code, _, err) = cli(&["baseline", "capture", "--db", &db, "--by", "t"]);
    assert_eq!(code, 0, "{err}");
    replay(&day2);
    let (code, out, err) = cli(&["findings", "--db", &db, "--json"]);
    assert_eq!(code, 0, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    let f = all
        .iter()
        .find(|f| f["fact_key"] == "aks/backdoor")
        .unwrap_or_else(|| panic!("no finding on aks/backdoor: {all:?}"));
    let trace = f["trace_id"].as_str().expect("trace_id on the finding");
    // The replay flushed on exit: its spans are at the receiver already.
    let got: Vec<Span> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect();
    let batch = got
        .iter()
        .find(|s| s.span_id == f["trace_span_id"].as_str().unwrap())
        .unwrap_or_else(|| panic!("the finding's span was not exported: {got:#?}"));
    assert_eq!(batch.service, "accessdrift");
    assert!(
        batch.events.iter().any(|(n, a)| n == "finding transition"
            && a.get("accessdrift.finding.id").map(String::as_str) == f["id"].as_str()),
        "{batch:?}"
    );
}

/// A protocol accessdrift does not speak is a start-up error naming the variable and the fix,
/// not a silent fallback (nor a panic in the exporter later).
#[test]
fn an_unsupported_otlp_protocol_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(daemon::BIN)
        .args(["findings", "--db"])
        .arg(dir.path().join("none.db"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\" is not supported")
            && err.contains("\"http/protobuf\"")
            && err.contains("\"grpc\""),
        "{err}"
    );
}
