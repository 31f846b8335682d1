//! Webhook sinks against a real HTTP receiver on loopback: CloudEvents signed per Standard
//! Webhooks (checked with the receiver's own HMAC), routing at transition time, outages,
//! 500/429 with Retry-After, permanent 4xx to the dead letter, Slack and Teams payloads.

mod common;
#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/smtp.rs"]
mod smtp;

use accessdrift::config::Config;
use accessdrift::notify::{route, Alert, Notifier};
use accessdrift::pipeline::{replay, Pipeline};
use accessdrift::store::{OutboxState, Store};
use common::{envelope, owner_grant, Env};
use receiver::{verify_signature, Receiver, Reply};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");
/// `whsec_` + base64 of "accessdrift-test-signing-key-32b".
const SECRET: &str = "whsec_YWNjZXNzZHJpZnQtdGVzdC1zaWduaW5nLWtleS0zMmI=";

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("test.toml")).unwrap()
}

/// Replays one unapproved Owner grant per principal: one drift finding each.
fn replay_grants(env: &Env, cfg: &Config, principals: &[&str]) {
    let mut lines = Vec::new();
    for (i, p) in principals.iter().enumerate() {
        let [a, b, c] = owner_grant(&format!("corr{i}"), &format!("ra{i}"), p, 3);
        lines.push(envelope(&[&a, &b, &c]));
    }
    let file = env.write("grants.json", &lines);
    let mut store = env.store();
    // An (empty) approved baseline: drift is judged against one.
    let sinks = route::queue_sinks(cfg);
    accessdrift::baseline::BaselineService::new(&mut store, cfg, &sinks)
        .capture("test", "empty")
        .unwrap();
    let mut p = Pipeline::new(&mut store, cfg, route::queue_sinks(cfg));
    replay::run(&mut p, &[file], "c1").unwrap();
}

fn drain(n: &mut Notifier, now: i64) -> accessdrift::notify::DrainReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(n.drain(now))
        .unwrap()
}

#[test]
fn cloudevents_are_signed_and_routed_at_transition_time() {
    let siem = Receiver::start();
    let other = Receiver::start();
    let env_var = "ACCESSDRIFT_TEST_WHSEC_1";
    std::env::set_var(env_var, SECRET);
    let cfg = config(&format!(
        r#"
        [[sinks]]
        name = "siem"
        type = "webhook"
        url = "{}"
        secret = {{ env = "{env_var}" }}
        source = "https://accessdrift.example/prod"
        headers = {{ "X-Tenant" = "contoso" }}

        [[sinks]]
        name = "pager"
        type = "webhook"
        url = "{}"
        rules = ["no.such.rule"]
        "#,
        siem.url(),
        other.url()
    ));
    let env = Env::new();
    replay_grants(&env, &cfg, &["11111111-aaaa-4aaa-8aaa-111111111111"]);

    let mut store = env.store();
    let (installation, queued) = {
        let tx = store.read().unwrap();
        let id = tx
            .meta("installation_id")
            .unwrap()
            .expect("created with the first alert");
        (id, tx.outbox_all(None).unwrap())
    };
    assert!(!queued.is_empty());
    assert!(
        queued.iter().all(|r| r.sink == "siem"),
        "routing decides at transition time: the pager's rule filter takes nothing"
    );

    let mut n = Notifier::new(&cfg, &env.db()).unwrap();
    let r = n.drain_once().unwrap();
    assert_eq!(r.delivered, queued.len() as u64);
    assert!(other.requests().is_empty());
    let got = siem.requests();
    assert_eq!(got.len(), queued.len());
    for req in &got {
        verify_signature(SECRET, req).unwrap();
        assert_eq!(
            req.header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(req.header("x-tenant"), Some("contoso"));
        let ev = req.json();
        assert_eq!(ev["specversion"], "1.0");
        assert_eq!(ev["id"].as_str(), req.header("webhook-id"));
        let id = ev["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("{installation}:")), "{id}");
        assert_eq!(ev["source"], "https://accessdrift.example/prod");
        assert_eq!(ev["type"], "io.accessdrift.finding.opened");
        assert_eq!(ev["subject"], ev["data"]["finding_id"]);
        assert!(ev["time"].as_str().unwrap().starts_with("2026-11-03T10:00"));
        assert_eq!(ev["data"]["actor"]["upn"], "mallory@contoso.com");
        assert_eq!(ev["data"]["kind"], "drift");
    }
    assert_eq!(store.read().unwrap().outbox_counts().unwrap(), (0, 0));
    // A tampered body fails the receiver's check: the check is real.
    let mut bad = got[0].clone();
    bad.body.push(b' ');
    assert!(verify_signature(SECRET, &bad).is_err());
}

#[test]
fn outages_flapping_and_rejections_deliver_each_alert_once_in_order() {
    let hook = Receiver::start();
    let addr = hook.stop(); // down: connection refused
    let backup = Receiver::start();
    let cfg = config(&format!(
        r#"
        [notify]
        initial_backoff = "2s"
        max_backoff = "10s"
        max_attempts = 20

        [[sinks]]
        name = "hook"
        type = "webhook"
        url = "http://{addr}/hook"
        timeout = "2s"

        [[sinks]]
        name = "backup"
        type = "webhook"
        url = "{}"
        "#,
        backup.url()
    ));
    let env = Env::new();
    let mut store = env.store();
    // Three findings, each opened then resolved, interleaved as a pipeline would queue them.
    {
        let tx = store.tx().unwrap();
        for (key, finding, transition) in [
            ("i:a:1", "a", "opened"),
            ("i:b:1", "b", "opened"),
            ("i:a:2", "a", "resolved"),
            ("i:c:1", "c", "opened"),
            ("i:b:2", "b", "resolved"),
            ("i:c:2", "c", "resolved"),
        ] {
            let alert = serde_json::json!({
                "idempotency_key": key, "transition": transition, "finding_id": finding, "kind": "drift",
                "rule": "drift.role_assignment", "severity": "high", "status": "open", "title": "t",
                "fact_kind": "role_assignment", "fact_key": "k",
                "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
            })
            .to_string();
            for sink in ["hook", "backup"] {
                let at = accessdrift::domain::EventTime::from_unix_seconds(0);
                tx.enqueue(
                    &accessdrift::store::NewAlert {
                        idempotency_key: key,
                        finding_id: finding,
                        transition,
                        severity: "high",
                        payload: &alert,
                        at,
                        hold_until: None,
                    },
                    sink,
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut n = Notifier::new(&cfg, &env.db()).unwrap();
    let mut now = 1_000_000;

    // Down: one attempt, everything of that sink waits; the other sink delivers all six.
    let r = drain(&mut n, now);
    assert_eq!((r.delivered, r.retried), (6, 1), "{r:?}");
    assert_eq!(backup.requests().len(), 6);

    // Up again, flapping: 500, then 429 asking for 30 s, then fine; one alert is refused (400).
    let hook = Receiver::start_at(addr);
    hook.push(Reply::status(500));
    hook.push(Reply::status(429).with("Retry-After", "30"));
    now += 3; // past the first backoff (2 s + jitter)
    assert_eq!(drain(&mut n, now).retried, 1, "500 is temporary");
    now += 5; // past the second (4 s + jitter)
    assert_eq!(drain(&mut n, now).retried, 1, "429 is temporary");
    let asked = hook.requests().len();
    now += 15;
    assert_eq!(
        drain(&mut n, now).delivered,
        0,
        "Retry-After: 30 is honoured"
    );
    assert_eq!(
        hook.requests().len(),
        asked,
        "no request before Retry-After"
    );
    now += 16;
    // a:1 goes, b:1 is refused for good, the rest follows in order.
    hook.script.lock().unwrap().extend([
        Reply::status(202),
        Reply::status(400).body("{\"error\":\"schema mismatch\"}"),
    ]);
    let mut rounds = 0;
    loop {
        drain(&mut n, now);
        now += 1;
        rounds += 1;
        if store.read().unwrap().outbox_counts().unwrap().0 == 0 || rounds > 10 {
            break;
        }
    }
    let accepted: Vec<String> = hook
        .requests()
        .iter()
        .filter(|r| (200..300).contains(&r.status))
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(accepted, ["i:a:1", "i:c:1", "i:a:2", "i:b:2", "i:c:2"]);
    // Per finding, in order: never a resolved before its opened.
    for f in ["a", "b", "c"] {
        let seq: Vec<&String> = accepted
            .iter()
            .filter(|k| k.contains(&format!(":{f}:")))
            .collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "{f}: {seq:?}");
    }

    // The refused alert is dead-lettered with the receiver's words, visible in `outbox --dead`.
    let dead = store
        .read()
        .unwrap()
        .outbox_all(Some(OutboxState::Dead))
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].idempotency_key, "i:b:1");
    let out = Command::new(BIN)
        .args(["outbox", "--dead", "--db"])
        .arg(env.db())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("dead") && text.contains("HTTP 400") && text.contains("schema mismatch"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["outbox", "--json", "--db"])
        .arg(env.db())
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["idempotency_key"], "i:b:1");
    assert_eq!(rows[0]["state"], "dead");

    // Requeued, it goes out.
    let id = rows[0]["id"].as_i64().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["outbox", "retry", "--db"])
        .arg(env.db())
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "requeued 1 alert"
    );
    assert_eq!(drain(&mut n, now).delivered, 1);
    assert_eq!(store.read().unwrap().outbox_counts().unwrap(), (0, 0));
}

#[test]
fn slack_and_teams_payloads_with_the_url_kept_secret() {
    let slack = Receiver::start();
    let teams = Receiver::start();
    std::env::set_var(
        "ACCESSDRIFT_TEST_SLACK_URL",
        slack.url() + "/T000/B000/XXXX",
    );
    std::env::set_var("ACCESSDRIFT_TEST_TEAMS_URL", teams.url() + "?sig=abc");
    let cfg = config(
        r#"
        [[sinks]]
        name = "slack"
        type = "webhook"
        format = "slack"
        url = { env = "ACCESSDRIFT_TEST_SLACK_URL" }

        [[sinks]]
        name = "teams"
        type = "webhook"
        format = "teams"
        url = { env = "ACCESSDRIFT_TEST_TEAMS_URL" }
        "#,
    );
    let env = Env::new();
    replay_grants(&env, &cfg, &["11111111-aaaa-4aaa-8aaa-111111111111"]);
    let r = Notifier::new(&cfg, &env.db())
        .unwrap()
        .drain_once()
        .unwrap();
    assert!(r.delivered >= 2, "{r:?}");

    let s = &slack.requests()[0];
    assert!(s.header("webhook-signature").is_none());
    assert_eq!(s.path, "/hook/T000/B000/XXXX");
    let v = s.json();
    let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.starts_with("[HIGH]") || header.starts_with("[CRITICAL]"),
        "{header}"
    );
    let section = v["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(section.contains("*Who:* mallory@contoso.com"), "{section}");
    assert!(
        section.contains("accessdrift baseline approve"),
        "{section}"
    );

    let t = teams.requests()[0].json();
    let card = &t["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let facts = card["content"]["body"][1]["facts"].as_array().unwrap();
    assert!(facts.iter().any(
        |f| f["title"] == "Who" && f["value"].as_str().unwrap().contains("mallory@contoso.com")
    ));

    // The Slack URL is the credential: a plain one is refused without being repeated.
    let err = Config::parse(
        "[[sinks]]\nname = \"s\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/SECRETPART\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sinks[0].url") && !err.contains("SECRETPART"),
        "{err}"
    );
}

#[test]
fn notify_test_reports_what_the_receiver_answered() {
    let hook = Receiver::start();
    hook.push(Reply::status(202).body("queued"));
    let env = Env::new();
    let cfg_path = env.dir.path().join("c.toml");
    std::env::set_var("ACCESSDRIFT_TEST_WHSEC_2", SECRET);
    std::fs::write(
        &cfg_path,
        format!(
            "[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = {{ env = \"ACCESSDRIFT_TEST_WHSEC_2\" }}\n",
            hook.url()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg_path)
        .args(["notify", "--test", "--sink", "siem"])
        .env("ACCESSDRIFT_TEST_WHSEC_2", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sink siem: test alert accepted: HTTP 202 Accepted: queued"),
        "{stdout}"
    );
    let req = &hook.requests()[0];
    verify_signature(SECRET, req).unwrap();
    assert_eq!(req.json()["data"]["rule"], "accessdrift.test");

    // A refusal is exit 1 with the receiver's answer; an unknown sink names the known ones.
    hook.push(Reply::status(401).body("bad token"));
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg_path)
        .args(["notify", "--test", "--sink", "siem"])
        .env("ACCESSDRIFT_TEST_WHSEC_2", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("bad token"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg_path)
        .args(["notify", "--test", "--sink", "nope"])
        .env("ACCESSDRIFT_TEST_WHSEC_2", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no sink named \"nope\"") && stderr.contains("siem"),
        "{stderr}"
    );
    let _ = Store::open(&env.db());
}

/// Waits (bounded) until the receiver has `n` requests.
async fn until_received(hook: &Receiver, n: usize) {
    for _ in 0..250 {
        if hook.requests().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("receiver got {} requests, want {n}", hook.requests().len());
}

#[test]
fn the_daemon_loop_is_woken_by_commits_and_stops_when_cancelled() {
    let hook = Receiver::start();
    // Polling once an hour: only the wake-up can explain a prompt delivery.
    let cfg = config(&format!(
        "[notify]\npoll_interval = \"1h\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        hook.url()
    ));
    let env = Env::new();
    let enqueue = |key: &str| {
        let mut store = env.store();
        let tx = store.tx().unwrap();
        let alert = serde_json::json!({
            "idempotency_key": key, "transition": "opened", "finding_id": key, "kind": "drift",
            "rule": "r", "severity": "high", "status": "open", "title": "t",
            "fact_kind": "role_assignment", "fact_key": "k",
            "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
        })
        .to_string();
        let at = accessdrift::domain::EventTime::from_unix_seconds(0);
        tx.enqueue(
            &accessdrift::store::NewAlert {
                idempotency_key: key,
                finding_id: key,
                transition: "opened",
                severity: "high",
                payload: &alert,
                at,
                hold_until: None,
            },
            "hook",
        )
        .unwrap();
        tx.commit().unwrap();
    };
    enqueue("i:first:1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let cancel = tokio_util::sync::CancellationToken::new();
        let n = Notifier::new(&cfg, &env.db()).unwrap();
        let task = tokio::spawn(n.run(wake.clone(), cancel.clone()));
        until_received(&hook, 1).await;
        enqueue("i:second:1");
        wake.notify_one();
        until_received(&hook, 2).await;
        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("run stops when cancelled")
            .unwrap()
            .unwrap();
    });
    let ids: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["i:first:1", "i:second:1"]);
}

#[test]
fn printing_notify_without_sinks_leaves_the_daemons_alerts_alone() {
    let env = Env::new();
    {
        let mut store = env.store();
        let tx = store.tx().unwrap();
        let at = accessdrift::domain::EventTime::from_unix_seconds(0);
        tx.enqueue(
            &accessdrift::store::NewAlert {
                idempotency_key: "i:f:1",
                finding_id: "f",
                transition: "opened",
                severity: "high",
                payload: "{}",
                at,
                hold_until: None,
            },
            "siem",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    // No --config: the stdout sink only. The row belongs to a sink of another config.
    let out = Command::new(BIN)
        .args(["notify", "--once", "--db"])
        .arg(env.db())
        .env_remove("ACCESSDRIFT_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = env.store().read().unwrap().outbox_all(None).unwrap();
    assert_eq!(rows[0].state, OutboxState::Pending, "{rows:?}");
    assert_eq!(rows[0].attempts, 0);
}

#[test]
fn the_webhook_carries_the_w3c_traceparent_of_the_batch_that_opened_the_finding() {
    let hook = Receiver::start();
    let cfg = config(&format!(
        r#"
        [[sinks]]
        name = "siem"
        type = "webhook"
        url = "{}"
        "#,
        hook.url()
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sink = accessdrift::notify::build_sink(&cfg.sinks[0]).unwrap();
    let mut traced = Alert::test("siem");
    traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    traced.trace_span_id = Some("00f067aa0ba902b7".into());
    let untraced = Alert::test("siem");
    rt.block_on(async {
        sink.deliver(&traced).await.unwrap();
        sink.deliver(&untraced).await.unwrap();
    });
    let got = hook.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(got[1].header("traceparent"), None, "no trace, no header");
}

/// The standard-library HTTPS receiver of tests/peers/https_receiver.py, killed on drop.
struct HttpsPeer {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    port: u16,
}

impl HttpsPeer {
    fn start(cert: &Path, key: &Path) -> HttpsPeer {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/https_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(cert)
            .arg(key)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the HTTPS receiver");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .next()
            .expect("the receiver prints its port")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        HttpsPeer { child, lines, port }
    }

    /// The next request the receiver printed (blocks until it comes or the receiver exits).
    fn next_request(&mut self) -> serde_json::Value {
        let line = self.lines.next().expect("a request line").unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for HttpsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_webhook_trusts_the_configured_ca_and_refuses_an_unknown_issuer() {
    let env = Env::new();
    let (ca, cert, key) = smtp::test_pki(env.dir.path());
    let mut peer = HttpsPeer::start(&cert, &key);
    let url = format!("https://127.0.0.1:{}/hooks/accessdrift", peer.port);
    let write = |name: &str, extra: &str| {
        let p = env.dir.path().join(name);
        std::fs::write(
            &p,
            format!("[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{url}\"\n{extra}"),
        )
        .unwrap();
        p
    };
    let run = |cfg: &Path| {
        Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .args(["notify", "--test", "--sink", "siem"])
            .output()
            .unwrap()
    };

    // With the test CA as ca_file: delivered over TLS, and the receiver has the CloudEvent.
    let trusted = write(
        "trusted.toml",
        &format!("ca_file = {:?}\n", ca.display().to_string()),
    );
    let out = run(&trusted);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test alert accepted: HTTP 200"), "{stdout}");
    let req = peer.next_request();
    assert_eq!(req["path"], "/hooks/accessdrift");
    let body: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["rule"], "accessdrift.test", "{body}");

    // Without it the system roots do not know the issuer: exit 1, and the error says why.
    let untrusted = write("untrusted.toml", "");
    let out = run(&untrusted);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("siem"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "the error names the certificate problem: {stderr}"
    );
}
