//! `accessdrift run` with the Event Hubs source: the real `EventProcessor` / `ConsumerClient`
//! over TCP against the in-test AMQP broker (tests/support/amqp_broker.rs).

#[path = "support/amqp_broker.rs"]
mod amqp_broker;
mod common;
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/otlp.rs"]
mod otlp;

use accessdrift::store::{EventHubsPosition, Store};
use amqp_broker::AmqpBroker;
use common::{envelope, owner_grant};
use daemon::{cli, wait_for, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "contoso-logs.servicebus.windows.net";
const HUB: &str = "activity";

struct Env {
    _rt: tokio::runtime::Runtime,
    broker: AmqpBroker,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(partitions: usize) -> Env {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let broker = rt.block_on(AmqpBroker::start(
            HUB,
            partitions,
            &["$Default", "accessdrift"],
        ));
        let env = Env {
            _rt: rt,
            broker,
            dir: tempfile::tempdir().unwrap(),
        };
        // An (empty) approved baseline: from now on everything observed is drift.
        drop(Store::open(&env.db()).unwrap());
        let db = env.db().display().to_string();
        let (code, _, err) = cli(&["baseline", "capture", "--db", &db, "--by", "test"]);
        assert_eq!(code, 0, "{err}");
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("ad.db")
    }

    /// Writes the config (connection string from a file secret) and returns its path.
    fn config(&self, extra: &str) -> PathBuf {
        let secret = self.dir.path().join("eh-connection-string");
        std::fs::write(
            &secret,
            format!("Endpoint=sb://{NS}/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0LWtleS1ub3QtaW4tbG9ncw==;EntityPath={HUB}\n"),
        )
        .unwrap();
        let cfg = self.dir.path().join("accessdrift.toml");
        std::fs::write(
            &cfg,
            format!(
                "[eventhubs]\nnamespace = \"{NS}\"\neventhub = \"{HUB}\"\nconsumer_group = \"accessdrift\"\n\
                 auth = \"connection_string\"\nconnection_string = {{ file = {secret:?} }}\ncustom_endpoint = \"{}\"\n\
                 max_wait = \"50ms\"\nlag_poll = \"300ms\"\nrebalance_interval = \"1s\"\n{extra}\n\
                 [server]\nlisten = \"127.0.0.1:0\"\n\n[notify]\npoll_interval = \"200ms\"\ninitial_backoff = \"1s\"\n",
                self.broker.endpoint()
            ),
        )
        .unwrap();
        cfg
    }

    fn start(&self, extra: &str) -> Daemon {
        Daemon::start(&self.config(extra), &self.db())
    }

    fn start_env(&self, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_env(&self.config(extra), &self.db(), &[], env)
    }

    /// Appends a body; returns its sequence number.
    fn send(&self, partition: usize, body: &str) -> i64 {
        self.broker.append(partition, body.as_bytes())
    }
}

/// Committed sequence number per partition id.
fn committed(db: &Path) -> Vec<(String, i64)> {
    let Ok(mut s) = Store::open(db) else {
        return Vec::new();
    };
    let tx = s.read().unwrap();
    tx.checkpoints_with_prefix(&format!("eventhubs:{NS}/{HUB}/accessdrift/"))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, cp, _)| {
            let pos = EventHubsPosition::from_checkpoint(&name, &cp).unwrap();
            (
                name.rsplit('/').next().unwrap().to_string(),
                pos.sequence_number,
            )
        })
        .collect()
}

/// Like [`wait_committed`], with the daemon's log in the failure message.
fn wait_committed_by(d: &Daemon, db: &Path, want: &[(&str, i64)]) {
    wait_committed_within(d, db, want, LIMIT)
}

/// [`wait_committed_by`] with its own limit: recovering from a dropped connection goes
/// through the session's backoff (1 s doubling) and the processor's claims, which on a loaded
/// 2-core machine took longer than 30 s about once in ten runs.
fn wait_committed_within(d: &Daemon, db: &Path, want: &[(&str, i64)], limit: Duration) {
    let want_v: Vec<(String, i64)> = want.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    let deadline = std::time::Instant::now() + limit;
    while committed(db) != want_v {
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for checkpoints {want_v:?} (have {:?}); log:\n{}",
                committed(db),
                d.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_committed(db: &Path, want: &[(&str, i64)]) {
    let want: Vec<(String, i64)> = want.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    wait_for(&format!("checkpoints {want:?}"), LIMIT, || {
        (committed(db) == want).then_some(())
    });
}

/// (rule, fact key, occurrences, evidence locations) of every finding, sorted.
fn findings(db: &Path) -> Vec<(String, String, u64, Vec<String>)> {
    let mut s = Store::open(db).unwrap();
    let tx = s.read().unwrap();
    let mut out: Vec<_> = tx
        .findings(false)
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.fact_key.clone(),
                f.occurrences,
                f.evidence.iter().map(|e| e.location.clone()).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn alert_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(", key "))
        .map(str::to_string)
        .collect()
}

fn grant_body(corr: &str, name: &str, principal: &str) -> String {
    let g = owner_grant(corr, name, principal, 3);
    envelope(&[&g[0], &g[1], &g[2]])
}

fn principal(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

#[test]
fn events_on_two_partitions_become_findings_naming_partition_and_sequence() {
    let env = Env::new(2);
    // A Start on partition 0 and its Success on partition 1: joined all the same.
    let g = owner_grant("corr-split", "a1", &principal(1), 3);
    env.send(0, &envelope(&[&g[0], &g[1]]));
    env.send(1, &envelope(&[&g[2]]));
    env.send(1, &grant_body("corr-2", "a2", &principal(2)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 0), ("1", 1)]);
    let f = wait_for("findings", LIMIT, || {
        let f = findings(&env.db());
        (!f.is_empty()).then_some(f)
    });
    let locations: Vec<&String> = f.iter().flat_map(|x| x.3.iter()).collect();
    assert!(
        locations.iter().any(|l| l.contains(&format!(
            "eventhubs:{NS}/{HUB} partition 1 sequence 0 record 0"
        ))),
        "{locations:?}"
    );
    assert!(
        locations
            .iter()
            .any(|l| l.contains(&format!("eventhubs:{NS}/{HUB} partition 1 sequence 1"))),
        "{locations:?}"
    );
    // The connection string is a SAS: put-token with the SAS token type, and never logged.
    assert!(env
        .broker
        .tokens()
        .iter()
        .any(|(ty, _)| ty == "servicebus.windows.net:sastoken"));
    d.terminate(LIMIT);
    assert!(!d.stderr().contains("c2VjcmV0LWtleS1ub3QtaW4tbG9ncw"));
    assert!(!d.stdout().contains("c2VjcmV0LWtleS1ub3QtaW4tbG9ncw"));
}

#[test]
fn restart_resumes_after_the_last_commit_without_double_effects() {
    let env = Env::new(2);
    env.send(0, &grant_body("c1", "r1", &principal(1)));
    env.send(1, &grant_body("c2", "r2", &principal(2)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 0), ("1", 0)]);
    let before = findings(&env.db());
    wait_for("alerts of the first run", LIMIT, || {
        (!alert_lines(&d.stdout()).is_empty()).then_some(())
    });
    assert!(d.terminate(LIMIT).success());
    let first_alerts = alert_lines(&d.stdout());

    // While it was down: one more event on partition 1.
    env.send(1, &grant_body("c3", "r3", &principal(3)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 0), ("1", 1)]);
    let after = findings(&env.db());
    // The earlier findings are untouched (no occurrence counted twice), one grant more.
    for f in &before {
        assert!(after.contains(f), "{f:?} changed after restart: {after:?}");
    }
    assert!(after.len() > before.len());
    std::thread::sleep(Duration::from_millis(600));
    d.terminate(LIMIT);
    let second_alerts = alert_lines(&d.stdout());
    for a in &second_alerts {
        assert!(!first_alerts.contains(a), "alert sent twice: {a}");
    }
    // The restarted receiver asked for what follows the committed event, by offset.
    let filters = env.broker.filters();
    assert!(
        filters.iter().any(|(a, f)| a.ends_with("/Partitions/1")
            && f.starts_with("amqp.annotation.x-opt-offset >'")),
        "{filters:?}"
    );
}

#[test]
fn sigkill_mid_stream_then_restart_equals_an_uninterrupted_run() {
    let total = 40;
    let bodies: Vec<String> = (0..total)
        .map(|i| grant_body(&format!("k{i}"), &format!("k{i}"), &principal(100 + i)))
        .collect();
    // The reference: everything in one uninterrupted run.
    let reference = {
        let env = Env::new(2);
        for (i, b) in bodies.iter().enumerate() {
            env.send(i % 2, b);
        }
        let mut d = env.start("max_batch = 3\n");
        d.wait_ready(LIMIT);
        wait_committed(
            &env.db(),
            &[("0", total as i64 / 2 - 1), ("1", total as i64 / 2 - 1)],
        );
        d.terminate(LIMIT);
        findings(&env.db())
            .into_iter()
            .map(|(r, k, n, _)| (r, k, n))
            .collect::<Vec<_>>()
    };

    let env = Env::new(2);
    for (i, b) in bodies.iter().enumerate().take(total / 2) {
        env.send(i % 2, b);
    }
    let mut d = env.start("max_batch = 3\n");
    d.wait_ready(LIMIT);
    // Kill while the second half is arriving and batches are committing.
    for (i, b) in bodies.iter().enumerate().skip(total / 2).take(6) {
        env.send(i % 2, b);
    }
    wait_for("some commits", LIMIT, || {
        (committed(&env.db()).iter().map(|c| c.1).sum::<i64>() > 4).then_some(())
    });
    d.child.kill().unwrap();
    let _ = d.child.wait();
    for (i, b) in bodies.iter().enumerate().skip(total / 2 + 6) {
        env.send(i % 2, b);
    }
    let mut d = env.start("max_batch = 3\n");
    d.wait_ready(LIMIT);
    wait_committed(
        &env.db(),
        &[("0", total as i64 / 2 - 1), ("1", total as i64 / 2 - 1)],
    );
    d.terminate(LIMIT);
    let got: Vec<_> = findings(&env.db())
        .into_iter()
        .map(|(r, k, n, _)| (r, k, n))
        .collect();
    assert_eq!(got, reference);
}

#[test]
fn malformed_and_foreign_bodies_are_counted_and_the_partition_keeps_going() {
    let env = Env::new(1);
    env.send(0, "{\"records\": [ {\"operationName\": ");
    env.send(
        0,
        r#"{"records":[{"time":"2026-11-03T10:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"0"}]}"#,
    );
    env.send(0, &grant_body("m1", "m1", &principal(7)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 2)]);
    assert!(!findings(&env.db()).is_empty());
    let body = wait_for("partition figures in /readyz", LIMIT, || {
        let (_, b) = d.readyz()?;
        let p =
            b["details"][format!("eventhubs:{NS}/{HUB}/accessdrift")]["partitions"]["0"].clone();
        (p["malformed"] == 1 && p["lag"] == 0).then_some(p)
    });
    assert_eq!(body["skipped"]["irrelevant_operation"], 1, "{body}");
    assert_eq!(body["last_committed_sequence"], 2, "{body}");
    d.terminate(LIMIT);
    let log = d.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("skipping malformed record"))
        .unwrap_or_else(|| panic!("no malformed log line in {log}"));
    for want in ["partition=0", "sequence=0", "offset=0", "record=0"] {
        assert!(line.contains(want), "{want} not in {line}");
    }
}

#[test]
fn start_latest_skips_the_backlog_and_earliest_reads_it() {
    let env = Env::new(1);
    env.send(0, &grant_body("old", "old", &principal(8)));
    let mut d = env.start("start = \"latest\"\n");
    d.wait_ready(LIMIT);
    wait_for("the latest filter", LIMIT, || {
        env.broker
            .filters()
            .iter()
            .any(|(_, f)| f.contains("'@latest'"))
            .then_some(())
    });
    let new = env.send(0, &grant_body("new", "new", &principal(9)));
    wait_committed(&env.db(), &[("0", new)]);
    let keys: Vec<String> = findings(&env.db()).into_iter().map(|f| f.1).collect();
    assert!(keys.iter().any(|k| k.contains(&principal(9))), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&principal(8))), "{keys:?}");
    d.terminate(LIMIT);

    let env = Env::new(1);
    env.send(0, &grant_body("old", "old", &principal(8)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 0)]);
    assert!(env
        .broker
        .filters()
        .iter()
        .any(|(_, f)| f.contains("> '-1'")));
    d.terminate(LIMIT);
}

#[test]
fn a_redelivered_batch_is_dropped_as_duplicates_not_alerted_twice() {
    let env = Env::new(1);
    for i in 0..3 {
        env.send(
            0,
            &grant_body(&format!("d{i}"), &format!("d{i}"), &principal(20 + i)),
        );
    }
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 2)]);
    let before = findings(&env.db());
    wait_for("alerts", LIMIT, || {
        (!alert_lines(&d.stdout()).is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let alerts = alert_lines(&d.stdout()).len();
    // The service resends from sequence 0 after a reconnect.
    env.broker.resend_next_attach_from(0);
    env.broker.drop_connections();
    let next = env.send(0, &grant_body("d9", "d9", &principal(29)));
    wait_committed(&env.db(), &[("0", next)]);
    let body = wait_for("duplicates counted", LIMIT, || {
        let (_, b) = d.readyz()?;
        let p =
            b["details"][format!("eventhubs:{NS}/{HUB}/accessdrift")]["partitions"]["0"].clone();
        (p["duplicates"].as_u64() >= Some(3) && p["events"] == 4).then_some(p)
    });
    assert_eq!(body["events"], 4, "{body}");
    let after = findings(&env.db());
    for f in &before {
        assert!(
            after.contains(f),
            "{f:?} changed by the redelivery: {after:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(600));
    d.terminate(LIMIT);
    let lines = alert_lines(&d.stdout());
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        lines.len(),
        "an alert was sent twice: {lines:#?}"
    );
    assert!(lines.len() > alerts);
}

#[test]
fn lag_is_reported_in_readyz_and_a_stalled_partition_is_named() {
    let env = Env::new(1);
    let mut d = env.start("stall_after = \"1s\"\n");
    d.wait_ready(LIMIT);
    let src = format!("eventhubs:{NS}/{HUB}/accessdrift");
    for i in 0..3 {
        env.send(
            0,
            &grant_body(&format!("l{i}"), &format!("l{i}"), &principal(40 + i)),
        );
    }
    wait_committed(&env.db(), &[("0", 2)]);
    wait_for("lag 0 in /readyz", LIMIT, || {
        let (code, b) = d.readyz()?;
        let p = &b["details"][&src]["partitions"]["0"];
        (code == 200 && p["lag"] == 0 && p["last_enqueued_sequence"] == 2).then_some(())
    });
    // Events wait and nothing arrives: lag grows, then the partition is a stall.
    env.broker.hold_deliveries(true);
    env.send(0, &grant_body("l8", "l8", &principal(48)));
    env.send(0, &grant_body("l9", "l9", &principal(49)));
    let reason = wait_for("a stall in /readyz", LIMIT, || {
        let (code, b) = d.readyz()?;
        let p = &b["details"][&src]["partitions"]["0"];
        let r = b["not_ready"][&src].as_str()?.to_string();
        (code == 503 && p["lag"] == 2 && p["stalled"] == true).then_some(r)
    });
    assert!(reason.contains("partition(s) 0 of activity"), "{reason}");
    // The same lag is exported for Prometheus, per partition.
    let (code, metrics) = daemon::http_get(d.port(), "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("accessdrift_eventhubs_lag_events{partition=\"0\"} 2")),
        "{metrics}"
    );
    env.broker.hold_deliveries(false);
    wait_committed(&env.db(), &[("0", 4)]);
    d.wait_ready(LIMIT);
    d.terminate(LIMIT);
    assert!(d.stderr().contains("source degraded"));
}

#[test]
fn stolen_links_and_dropped_connections_recover_without_loss() {
    let env = Env::new(2);
    // A receiver the SDK leaves dead after the dropped connection is replaced after
    // 3 × stall_after (seen about once in ten runs).
    let mut d = env.start("stall_after = \"2s\"\n");
    d.wait_ready(LIMIT);
    env.send(0, &grant_body("s0", "s0", &principal(60)));
    env.send(1, &grant_body("s1", "s1", &principal(61)));
    wait_committed_by(&d, &env.db(), &[("0", 0), ("1", 0)]);
    env.broker.steal_links();
    env.send(0, &grant_body("s2", "s2", &principal(62)));
    let recover = Duration::from_secs(90);
    wait_committed_within(&d, &env.db(), &[("0", 1), ("1", 0)], recover);
    env.broker.drop_connections();
    env.send(1, &grant_body("s3", "s3", &principal(63)));
    wait_committed_within(&d, &env.db(), &[("0", 1), ("1", 1)], recover);
    let keys: Vec<String> = findings(&env.db()).into_iter().map(|f| f.1).collect();
    for i in 60..64 {
        assert!(
            keys.iter().any(|k| k.contains(&principal(i))),
            "{i}: {keys:?}"
        );
    }
    d.terminate(LIMIT);
}

#[test]
fn a_rejected_token_is_reported_naming_the_hub_and_auth_mode_and_recovers() {
    let env = Env::new(1);
    env.broker.reject_tokens(true);
    let mut d = env.start("");
    let src = format!("eventhubs:{NS}/{HUB}/accessdrift");
    let reason = wait_for("unauthorized in /readyz", LIMIT, || {
        let (code, b) = d.readyz()?;
        let r = b["not_ready"][&src].as_str()?.to_string();
        // The state is classified from the SDK's error types (a CBS 401), not its words.
        (code == 503 && b["sources"][&src] == "unauthorized").then_some(r)
    });
    for want in [HUB, NS, "connection_string"] {
        assert!(reason.contains(want), "{want} not in {reason}");
    }
    assert!(!reason.contains("c2VjcmV0"), "{reason}");
    env.broker.reject_tokens(false);
    env.send(0, &grant_body("t1", "t1", &principal(50)));
    d.wait_ready(Duration::from_secs(60));
    wait_committed(&env.db(), &[("0", 0)]);
    d.terminate(LIMIT);
    assert!(!d.stderr().contains("c2VjcmV0LWtleS1ub3QtaW4tbG9ncw"));
}

#[test]
fn eventhubs_check_prints_checkpoint_last_enqueued_and_lag_and_fails_clearly_on_401() {
    let env = Env::new(2);
    env.send(0, &grant_body("e0", "e0", &principal(70)));
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    wait_committed(&env.db(), &[("0", 0)]);
    d.terminate(LIMIT);
    env.send(0, &grant_body("e1", "e1", &principal(71)));
    env.send(0, &grant_body("e2", "e2", &principal(72)));
    let cfg = env.config("");
    let (cfg, db) = (cfg.display().to_string(), env.db().display().to_string());
    let (code, out, err) = cli(&["--config", &cfg, "eventhubs", "check", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![vec!["0", "0", "2", "2"], vec!["1", "-", "(empty)", "0"]],
        "{out}"
    );
    assert!(out.contains("consumer group accessdrift"), "{out}");

    env.broker.reject_tokens(true);
    let (code, out, err) = cli(&["--config", &cfg, "eventhubs", "check", "--db", &db]);
    assert_eq!(code, 1, "{out}");
    for want in [HUB, NS, "connection_string", "401"] {
        assert!(err.contains(want), "{want} not in {err}");
    }
    assert!(!err.contains("c2VjcmV0"), "{err}");
}

#[test]
fn workload_identity_without_the_webhook_variables_is_a_clear_error() {
    let env = Env::new(1);
    let cfg = env.dir.path().join("wi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eventhubs]\nenabled = true\nnamespace = \"{NS}\"\neventhub = \"{HUB}\"\ncustom_endpoint = \"{}\"\n",
            env.broker.endpoint()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(daemon::BIN)
        .args([
            "--config",
            &cfg.display().to_string(),
            "eventhubs",
            "check",
            "--db",
        ])
        .arg(env.db())
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("auth = \"workload_identity\""), "{err}");
    assert!(err.contains("AZURE_"), "{err}");
}

#[test]
fn sigterm_while_the_hub_never_answers_exits_promptly() {
    let env = Env::new(1);
    // A peer that accepts TCP and never speaks AMQP: the SDK waits on its open.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = env.config("");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &env.broker.endpoint(),
        &format!("amqp://{}", silent.local_addr().unwrap()),
    );
    std::fs::write(&cfg, text).unwrap();
    let mut d = Daemon::start(&cfg, &env.db());
    wait_for("the health server", LIMIT, || d.readyz());
    std::thread::sleep(Duration::from_millis(500));
    let st = d.terminate(Duration::from_secs(6));
    assert!(st.success(), "{st:?}: {}", d.stderr());
}

#[test]
fn a_partition_batch_is_one_trace_with_the_messaging_attributes() {
    let env = Env::new(1);
    let rx = otlp::Receiver::start(&env._rt);
    env.send(0, &grant_body("corr-trace", "a1", &principal(7)));
    let endpoint = format!("http://127.0.0.1:{}", rx.port);
    let mut d = env.start_env(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    d.wait_ready(LIMIT);
    let db = env.db().display().to_string();
    let finding = wait_for("a finding with its trace", LIMIT, || {
        let (code, out, err) = cli(&["findings", "--db", &db, "--json"]);
        assert_eq!(code, 0, "{err}");
        let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        all.into_iter()
            .find(|f| f["kind"] == "drift" && f["trace_id"].is_string())
    });
    let trace = finding["trace_id"].as_str().unwrap().to_string();
    let spans = wait_for("the batch's spans", LIMIT, || {
        let s: Vec<otlp::Span> = rx
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        (s.iter().any(|s| s.name == "ingest") && s.iter().any(|s| s.name == "evaluate"))
            .then_some(s)
    });
    let one = |name: &str| {
        let v: Vec<&otlp::Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(v.len(), 1, "{name} spans in the trace: {spans:#?}");
        v[0].clone()
    };
    let (ingest, normalise, apply, evaluate) = (
        one("ingest"),
        one("normalise"),
        one("apply"),
        one("evaluate"),
    );
    assert_eq!(ingest.parent, "", "{ingest:?}");
    for (k, v) in [
        ("messaging.system", "eventhubs"),
        ("messaging.destination.name", HUB),
        ("messaging.destination.partition.id", "0"),
        ("messaging.consumer.group.name", "accessdrift"),
        ("messaging.batch.message_count", "1"),
        (
            "accessdrift.source",
            &format!("eventhubs:{NS}/{HUB}/accessdrift/0"),
        ),
    ] {
        assert_eq!(
            ingest.attrs.get(k).map(String::as_str),
            Some(v),
            "{k} on {ingest:?}"
        );
    }
    // The event's three records (Start, Accept, Success) decoded under the batch's trace.
    assert_eq!(normalise.parent, ingest.span_id, "{normalise:?}");
    assert_eq!(normalise.attrs["accessdrift.records"], "3");
    assert_eq!(apply.parent, ingest.span_id, "{apply:?}");
    assert_eq!(evaluate.parent, apply.span_id, "{evaluate:?}");
    assert_eq!(finding["trace_span_id"], evaluate.span_id.as_str());
    assert!(
        evaluate
            .events
            .iter()
            .any(|(n, a)| n == "finding transition"
                && a.get("accessdrift.finding.id").map(String::as_str) == finding["id"].as_str()),
        "{evaluate:?}"
    );
    d.terminate(LIMIT);
}
