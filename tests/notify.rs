//! The outbox drain under sinks that fail: alerts are delayed with backoff, never lost, sent in
//! order per finding, leased so two drainers never send one alert twice, throttled into
//! digests, and dead-lettered after the configured attempts or when their sink is removed.

use accessdrift::config::NotifyConfig;
use accessdrift::domain::EventTime;
use accessdrift::notify::{Alert, Digest, Notifier, Receipt, Sink, SinkError, SinkFuture};
use accessdrift::store::{OutboxState, Store};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a scripted sink received: one entry per message, the alert keys it carried.
type Log = Arc<Mutex<Vec<Vec<String>>>>;

struct Scripted {
    name: &'static str,
    fail: Arc<Mutex<Option<SinkError>>>,
    got: Log,
    bursts: bool,
    /// Deliveries accepted before the sink goes down (`None`: no limit).
    budget: Option<usize>,
}

impl Scripted {
    fn new(name: &'static str) -> (Scripted, Arc<Mutex<Option<SinkError>>>, Log) {
        let fail = Arc::new(Mutex::new(None));
        let got: Log = Arc::default();
        (
            Scripted {
                name,
                fail: fail.clone(),
                got: got.clone(),
                bursts: true,
                budget: None,
            },
            fail,
            got,
        )
    }

    fn take(&mut self, keys: Vec<String>) -> Result<Receipt, SinkError> {
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        match &mut self.budget {
            Some(0) => return Err(SinkError::Temporary("went down".into())),
            Some(n) => *n -= 1,
            None => {}
        }
        self.got.lock().unwrap().push(keys);
        Ok(Receipt("ok".into()))
    }
}

impl Sink for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn deliver<'a>(&'a mut self, alert: &'a Alert) -> SinkFuture<'a> {
        let r = self.take(vec![alert.idempotency_key.clone()]);
        Box::pin(async move { r })
    }
    fn deliver_digest<'a>(&'a mut self, d: &'a Digest) -> SinkFuture<'a> {
        let r = self.take(d.alerts.iter().map(|a| a.idempotency_key.clone()).collect());
        Box::pin(async move { r })
    }
    fn groups_bursts(&self) -> bool {
        self.bursts
    }
}

fn alert(key: &str, finding: &str, transition: &str, corr: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "idempotency_key": key, "transition": transition, "finding_id": finding, "kind": "drift", "rule": "r",
        "severity": "high", "status": "open", "title": "t", "fact_kind": "role_assignment", "fact_key": "k",
        "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
    });
    if let Some(c) = corr {
        v["correlation_id"] = c.into();
    }
    v.to_string()
}

fn enqueue(store: &mut Store, rows: &[(&str, &str, &str, &str, Option<&str>)]) {
    let tx = store.tx().unwrap();
    for (key, sink, finding, transition, corr) in rows {
        let payload = alert(key, finding, transition, *corr);
        let row = accessdrift::store::NewAlert {
            idempotency_key: key,
            finding_id: finding,
            transition,
            severity: "high",
            payload: &payload,
            at: EventTime::from_unix_seconds(0),
            hold_until: None,
        };
        tx.enqueue(&row, sink).unwrap();
    }
    tx.commit().unwrap();
}

fn policy() -> NotifyConfig {
    NotifyConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(60),
        ..NotifyConfig::default()
    }
}

fn drain(n: &mut Notifier, now: i64) -> accessdrift::notify::DrainReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(n.drain(now))
        .unwrap()
}

fn notifier(sinks: Vec<Scripted>, policy: NotifyConfig, db: &Path) -> Notifier {
    let sinks = sinks
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn Sink>)
        .collect();
    Notifier::with_sinks(sinks, policy, db).unwrap()
}

fn flat(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().flatten().cloned().collect()
}

#[test]
fn a_down_sink_delays_alerts_and_a_poison_alert_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    enqueue(
        &mut store,
        &[
            ("f:1", "webhook", "f", "opened", None),
            ("f:1", "webhook", "f", "opened", None),
            ("h:1", "email", "h", "opened", None),
        ],
    );
    {
        let tx = store.tx().unwrap();
        let row = accessdrift::store::NewAlert {
            idempotency_key: "g:1",
            finding_id: "g",
            transition: "opened",
            severity: "high",
            payload: "{not json",
            at: EventTime::from_unix_seconds(0),
            hold_until: None,
        };
        tx.enqueue(&row, "webhook").unwrap();
        tx.commit().unwrap();
    }
    let (sink, fail, got) = Scripted::new("webhook");
    *fail.lock().unwrap() = Some(SinkError::Temporary("connection refused".into()));
    let mut n = notifier(vec![sink], policy(), &db);

    // Down: retried with backoff; the undecodable row is dead at once; the row for a sink
    // that is not configured is dead-lettered with that reason, not kept for ever.
    let r = drain(&mut n, 1000);
    assert_eq!((r.delivered, r.retried, r.dead_lettered), (0, 1, 2));
    // Not due yet: nothing is tried.
    let r = drain(&mut n, 1005);
    assert_eq!((r.delivered, r.retried), (0, 0));
    // Back up: delivered once, and gone from the outbox.
    *fail.lock().unwrap() = None;
    let r = drain(&mut n, 1013);
    assert_eq!(r.delivered, 1);
    assert_eq!(flat(&got), ["f:1"]);
    let tx = store.read().unwrap();
    assert_eq!(tx.outbox_counts().unwrap(), (0, 2));
    let dead = tx.outbox(OutboxState::Dead, None, 10).unwrap();
    let err = |k: &str| {
        dead.iter()
            .find(|r| r.idempotency_key == k)
            .and_then(|r| r.last_error.clone())
            .unwrap()
    };
    assert!(err("g:1").contains("does not decode"), "{}", err("g:1"));
    assert!(
        err("h:1").contains("\"email\" is not in the configuration"),
        "{}",
        err("h:1")
    );
    drop(tx);

    // A sink that stays down dead-letters after max_attempts, with the last error kept.
    enqueue(&mut store, &[("k:1", "webhook", "k", "opened", None)]);
    *fail.lock().unwrap() = Some(SinkError::Temporary("503".into()));
    let mut now = 2000;
    for _ in 0..3 {
        drain(&mut n, now);
        now += 100;
    }
    let dead = store
        .read()
        .unwrap()
        .outbox(OutboxState::Dead, None, 10)
        .unwrap();
    let k = dead
        .iter()
        .find(|r| r.idempotency_key == "k:1")
        .expect("k:1 dead-lettered");
    assert_eq!(k.attempts, 3);
    assert!(k.last_error.as_deref().unwrap().contains("503"));

    // Requeued by `outbox retry`: delivered when the sink is back.
    let tx = store.tx().unwrap();
    assert_eq!(tx.requeue(Some(&[k.seq])).unwrap(), 1);
    tx.commit().unwrap();
    *fail.lock().unwrap() = None;
    assert_eq!(drain(&mut n, now).delivered, 1);
    assert_eq!(flat(&got), ["f:1", "k:1"]);
}

#[test]
fn alerts_accepted_before_the_sink_went_down_leave_the_outbox_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    enqueue(
        &mut store,
        &[
            ("a:1", "hook", "a", "opened", None),
            ("b:1", "hook", "b", "opened", None),
            ("c:1", "hook", "c", "opened", None),
        ],
    );
    let (mut sink, _fail, got) = Scripted::new("hook");
    sink.budget = Some(1);
    let mut n = notifier(vec![sink], policy(), &db);
    let r = drain(&mut n, 1000);
    assert_eq!((r.delivered, r.retried), (1, 1));
    // The accepted alert is deleted in the same drain, not left leased to be sent again
    // when its lease ends; the other two wait for the sink.
    assert_eq!(store.read().unwrap().outbox_counts().unwrap(), (2, 0));
    assert_eq!(flat(&got), ["a:1"]);
}

#[test]
fn transitions_of_one_finding_go_out_in_order_even_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    enqueue(
        &mut store,
        &[
            ("a:1", "hook", "a", "opened", None),
            ("b:1", "hook", "b", "opened", None),
            ("a:2", "hook", "a", "resolved", None),
            ("a:3", "hook", "a", "reopened", None),
        ],
    );
    let (sink, fail, got) = Scripted::new("hook");
    *fail.lock().unwrap() = Some(SinkError::RetryAfter {
        reason: "429".into(),
        after: Duration::from_secs(30),
    });
    let mut n = notifier(vec![sink], policy(), &db);
    assert_eq!(drain(&mut n, 1000).retried, 1);
    // Retry-After (30 s) wins over the 10 s backoff: nothing goes out before it.
    *fail.lock().unwrap() = None;
    assert_eq!(drain(&mut n, 1015).delivered, 0);
    for now in 1031..1036 {
        drain(&mut n, now);
    }
    assert_eq!(flat(&got), ["a:1", "b:1", "a:2", "a:3"]);
}

#[test]
fn a_leased_alert_is_not_sent_by_a_second_drainer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    enqueue(&mut store, &[("a:1", "hook", "a", "opened", None)]);
    // The first drainer leased the row and crashed before settling it.
    let tx = store.tx().unwrap();
    let leased = tx.lease("hook", 1000, 1100, 10).unwrap();
    tx.commit().unwrap();
    assert_eq!(leased.len(), 1);
    let (sink, _, got) = Scripted::new("hook");
    let mut n = notifier(vec![sink], policy(), &db);
    assert_eq!(drain(&mut n, 1050).delivered, 0, "leased elsewhere");
    // Meanwhile the finding resolved: its notice must not overtake the opening in flight.
    enqueue(&mut store, &[("a:2", "hook", "a", "resolved", None)]);
    assert_eq!(drain(&mut n, 1060).delivered, 0, "a:2 waits behind a:1");
    // The lease ran out: sent again, with the same key, then the resolve notice.
    assert_eq!(drain(&mut n, 1100).delivered, 2);
    assert_eq!(flat(&got), ["a:1", "a:2"]);
}

#[test]
fn a_down_sink_never_delays_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    enqueue(
        &mut store,
        &[
            ("a:1", "down", "a", "opened", None),
            ("a:1", "up", "a", "opened", None),
            ("b:1", "down", "b", "opened", None),
            ("b:1", "up", "b", "opened", None),
        ],
    );
    let (down, fail, down_got) = Scripted::new("down");
    *fail.lock().unwrap() = Some(SinkError::Temporary("connection refused".into()));
    let (up, _, up_got) = Scripted::new("up");
    let mut n = notifier(vec![down, up], policy(), &db);
    let r = drain(&mut n, 1000);
    assert_eq!(flat(&up_got), ["a:1", "b:1"]);
    assert!(flat(&down_got).is_empty());
    // One request to the dead sink, not one per queued alert: the rest wait with it.
    assert_eq!((r.delivered, r.retried), (2, 1));
}

#[test]
fn bursts_and_throttled_alerts_become_digests() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    // One operation (correlation c1) made three findings; three unrelated alerts follow.
    enqueue(
        &mut store,
        &[
            ("a:1", "mail", "a", "opened", Some("c1")),
            ("b:1", "mail", "b", "opened", Some("c1")),
            ("x:1", "mail", "x", "opened", Some("c2")),
            ("c:1", "mail", "c", "opened", Some("c1")),
            ("y:1", "mail", "y", "opened", None),
            ("z:1", "mail", "z", "opened", None),
        ],
    );
    let (sink, _, got) = Scripted::new("mail");
    let mut n = notifier(
        vec![sink],
        NotifyConfig {
            max_per_minute: 3,
            ..policy()
        },
        &db,
    );
    let r = drain(&mut n, 1000);
    assert_eq!((r.delivered, r.messages), (6, 3));
    assert_eq!(
        got.lock().unwrap().clone(),
        vec![vec!["a:1", "b:1", "c:1"], vec!["x:1"], vec!["y:1", "z:1"],]
    );
    // The minute is used up: the next alert waits for the next minute.
    enqueue(&mut store, &[("w:1", "mail", "w", "opened", None)]);
    assert_eq!(drain(&mut n, 1030).delivered, 0);
    assert_eq!(drain(&mut n, 1061).delivered, 1);
}
