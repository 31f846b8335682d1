//! The SMTP sink against a real server (aiosmtpd as a child process): plain, STARTTLS and
//! implicit TLS with a CA the test generates, AUTH, 451 then OK, 5xx to the dead letter, and
//! the mail itself (subject, both parts, Message-ID, threading of the resolve notice).

mod common;
#[path = "common/smtp.rs"]
mod smtp;

use accessdrift::baseline::BaselineService;
use accessdrift::config::Config;
use accessdrift::notify::{route, Notifier};
use accessdrift::pipeline::{replay, Pipeline};
use accessdrift::store::OutboxState;
use common::{cluster_id, envelope, owner_grant, Env};
use smtp::{test_pki, SmtpPeer};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

/// A config with one SMTP sink `mail` and the test cluster `aks-prod`.
fn config(port: u16, extra: &str) -> Config {
    Config::parse(
        &format!(
            r#"
            [notify]
            initial_backoff = "2s"

            [[clusters]]
            name = "aks-prod"
            resource_id = "{}"

            [[sinks]]
            name = "mail"
            type = "smtp"
            host = "127.0.0.1"
            port = {port}
            from = "Access Drift <accessdrift@example.com>"
            to = ["sre@example.com", "sec@example.com"]
            timeout = "5s"
            {extra}
            "#,
            cluster_id()
        ),
        Path::new("test.toml"),
    )
    .unwrap()
}

/// Opens one drift finding (an unapproved Owner grant); returns its id.
fn open_finding(env: &Env, cfg: &Config) -> String {
    let sinks = route::queue_sinks(cfg);
    let mut store = env.store();
    BaselineService::new(&mut store, cfg, &sinks)
        .capture("test", "empty")
        .unwrap();
    let [a, b, c] = owner_grant(
        "corr-mail",
        "ra-mail",
        "33333333-cccc-4ccc-8ccc-333333333333",
        3,
    );
    let file = env.write("grant.json", &[envelope(&[&a, &b, &c])]);
    replay::run(&mut Pipeline::new(&mut store, cfg, sinks), &[file], "c1").unwrap();
    let f = store.read().unwrap().findings(true).unwrap();
    let drift = f
        .iter()
        .find(|f| f.rule.starts_with("drift."))
        .expect("a drift finding");
    drift.id.clone()
}

fn part<'a>(m: &'a serde_json::Value, ty: &str) -> &'a str {
    m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} part in {m}"))["text"]
        .as_str()
        .unwrap()
}

fn header<'a>(m: &'a serde_json::Value, name: &str) -> &'a str {
    m["headers"][name].as_str().unwrap_or_default()
}

#[test]
fn plain_mail_has_both_parts_a_stable_message_id_and_threads_the_resolve_notice() {
    let env = Env::new();
    let peer = SmtpPeer::start(env.dir.path(), &["--tls", "none"]);
    let cfg = config(peer.port, "tls = \"none\"\nrules = [\"drift.\"]");
    let id = open_finding(&env, &cfg);
    // Approving it resolves it: the resolve notice must thread under the opening mail.
    let sinks = route::queue_sinks(&cfg);
    BaselineService::new(&mut env.store(), &cfg, &sinks)
        .approve("alice", std::slice::from_ref(&id), None)
        .unwrap();
    let r = Notifier::new(&cfg, &env.db())
        .unwrap()
        .drain_once()
        .unwrap();
    assert_eq!((r.delivered, r.dead_lettered), (2, 0), "{r:?}");

    let mails = peer.messages();
    assert_eq!(mails.len(), 2);
    let (open, resolved) = (&mails[0], &mails[1]);
    assert_eq!(
        open["rcpt_tos"],
        serde_json::json!(["sre@example.com", "sec@example.com"])
    );
    let subject = header(open, "subject");
    assert!(
        (subject.starts_with("[HIGH] ") || subject.starts_with("[CRITICAL] "))
            && subject.ends_with("(aks-prod)"),
        "{subject}"
    );
    assert!(header(open, "content-type").starts_with("multipart/alternative"));
    let text = part(open, "text/plain");
    for want in [
        "Who: mallory@contoso.com",
        "from 198.51.100.77",
        "Cluster: aks-prod",
        "Correlation id: corr-mail",
        &format!("accessdrift baseline approve {id}"),
    ] {
        assert!(text.contains(want), "text part lacks {want:?}:\n{text}");
    }
    let html = part(open, "text/html");
    assert!(
        html.contains("<table>") && html.contains("mallory@contoso.com"),
        "{html}"
    );
    // Message-ID from the idempotency key (`installation:finding:n`, `:` as `.`).
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Alert key: "))
        .expect("the key is in the mail");
    assert!(key.contains(&format!(":{id}:")), "{key}");
    let msg_id = header(open, "message-id");
    assert_eq!(msg_id, format!("<{}@accessdrift>", key.replace(':', ".")));
    assert!(header(open, "in-reply-to").is_empty());

    assert!(
        header(resolved, "subject").contains("Resolved: "),
        "{resolved}"
    );
    assert_eq!(header(resolved, "in-reply-to"), msg_id);
    assert!(header(resolved, "references").contains(msg_id));
    assert_ne!(header(resolved, "message-id"), msg_id);
    assert!(part(resolved, "text/plain").contains("Approved by: alice"));
}

#[test]
fn starttls_and_implicit_tls_with_auth_trusting_the_configured_ca() {
    let env = Env::new();
    let (ca, cert, key) = test_pki(env.dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    std::env::set_var("ACCESSDRIFT_TEST_SMTP_PW", "s3cret-pw");
    let auth = format!(
        "username = \"alerts\"\npassword = {{ env = \"ACCESSDRIFT_TEST_SMTP_PW\" }}\nca_file = {:?}",
        ca.display().to_string()
    );
    for (peer_tls, sink_tls) in [("starttls", "starttls"), ("implicit", "tls")] {
        let peer = SmtpPeer::start(
            env.dir.path(),
            &[
                "--tls",
                peer_tls,
                "--cert",
                cert,
                "--key",
                key,
                "--auth",
                "alerts:s3cret-pw",
            ],
        );
        let cfg_path = env.dir.path().join(format!("{sink_tls}.toml"));
        let cfg = config(peer.port, &format!("tls = \"{sink_tls}\"\n{auth}"));
        std::fs::write(&cfg_path, cfg.to_toml().unwrap()).unwrap();
        // At trace level nothing logs the password or the AUTH PLAIN line that carries it
        // (lettre's `tracing` feature would: it is off).
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg_path)
            .args(["--log-level", "trace", "notify", "--test", "--sink", "mail"])
            .env("ACCESSDRIFT_TEST_SMTP_PW", "s3cret-pw")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // base64("\0alerts\0s3cret-pw"), as AUTH PLAIN sends it.
        assert!(
            !stderr.contains("s3cret-pw") && !stderr.contains("AGFsZXJ0cwBzM2NyZXQtcHc"),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{sink_tls}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("test alert accepted: 250 2.0.0 Ok: queued as test-1"),
            "{stdout}"
        );
        let mails = peer.messages();
        assert_eq!(mails.len(), 1, "{sink_tls}");
        assert_eq!(mails[0]["auth"], true);
        assert!(header(&mails[0], "subject").contains("Test alert"));

        // A wrong password: names the sink and the user, never the password; retried later.
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg_path)
            .args(["notify", "--test", "--sink", "mail"])
            .env("ACCESSDRIFT_TEST_SMTP_PW", "wrong-pw-123")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("smtp sink mail")
                && stderr.contains("user \"alerts\"")
                && stderr.contains("temporary"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("wrong-pw-123") && !stderr.contains("s3cret-pw"),
            "{stderr}"
        );
    }
}

#[test]
fn starttls_is_required_not_opportunistic() {
    let env = Env::new();
    let peer = SmtpPeer::start(env.dir.path(), &["--tls", "none"]);
    let cfg = config(peer.port, "tls = \"starttls\"");
    let env_db = env.db();
    let _ = env_db;
    let err = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(accessdrift::notify::send_test(&cfg, "mail"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("temporary"), "{err}");
    assert!(peer.messages().is_empty(), "nothing sent in clear text");
}

#[test]
fn a_451_is_retried_and_a_5xx_is_dead_lettered_with_the_relays_words() {
    let env = Env::new();
    let flaky = SmtpPeer::start(env.dir.path(), &["--fail-first", "1"]);
    let cfg = config(flaky.port, "tls = \"none\"\nrules = [\"drift.\"]");
    open_finding(&env, &cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut n = Notifier::new(&cfg, &env.db()).unwrap();
    let now = 2_000_000_000;
    let r = rt.block_on(n.drain(now)).unwrap();
    assert_eq!((r.delivered, r.retried), (0, 1), "{r:?}");
    let waiting = env.store().read().unwrap().outbox_all(None).unwrap();
    assert!(
        waiting[0].last_error.as_deref().unwrap().contains("451"),
        "{waiting:?}"
    );
    let r = rt.block_on(n.drain(now + 3)).unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(flaky.messages().len(), 1);

    // A relay that refuses the content: dead-lettered at once, with its reply.
    let env = Env::new();
    let refusing = SmtpPeer::start(env.dir.path(), &["--reject"]);
    let cfg = config(refusing.port, "tls = \"none\"\nrules = [\"drift.\"]");
    open_finding(&env, &cfg);
    let r = Notifier::new(&cfg, &env.db())
        .unwrap()
        .drain_once()
        .unwrap();
    assert_eq!((r.delivered, r.dead_lettered), (0, 1), "{r:?}");
    let dead = env
        .store()
        .read()
        .unwrap()
        .outbox_all(Some(OutboxState::Dead))
        .unwrap();
    let err = dead[0].last_error.as_deref().unwrap();
    assert!(
        err.contains("554") && err.contains("test relay says no"),
        "{err}"
    );
}

#[test]
fn a_relay_that_stops_answering_is_given_up_on_after_the_timeout() {
    let env = Env::new();
    let peer = SmtpPeer::start(env.dir.path(), &["--stall"]);
    let cfg = config(peer.port, "tls = \"none\"\nrules = [\"drift.\"]");
    let cfg = Config {
        sinks: vec![accessdrift::config::SinkConfig {
            timeout: Some(std::time::Duration::from_secs(1)),
            ..cfg.sinks[0].clone()
        }],
        ..cfg
    };
    open_finding(&env, &cfg);
    let started = std::time::Instant::now();
    let r = Notifier::new(&cfg, &env.db())
        .unwrap()
        .drain_once()
        .unwrap();
    assert_eq!((r.delivered, r.retried), (0, 1), "{r:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let rows = env.store().read().unwrap().outbox_all(None).unwrap();
    assert!(
        rows[0].last_error.as_deref().unwrap().contains("within 1s"),
        "{rows:?}"
    );
}
