//! The outbox under a sink that fails: alerts are delayed with backoff, never lost, and
//! dead-lettered after the configured attempts.

use accessdrift::config::NotifyConfig;
use accessdrift::domain::EventTime;
use accessdrift::notify::{Alert, Notifier, Sink, SinkError};
use accessdrift::store::{OutboxState, Store};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

struct Flaky {
    fail: Rc<RefCell<Option<SinkError>>>,
    got: Rc<RefCell<Vec<String>>>,
}

impl Sink for Flaky {
    fn name(&self) -> &str {
        "webhook"
    }
    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        match self.fail.borrow().as_ref() {
            Some(SinkError::Temporary(m)) => Err(SinkError::Temporary(m.clone())),
            Some(SinkError::Permanent(m)) => Err(SinkError::Permanent(m.clone())),
            Some(SinkError::Gone(m)) => Err(SinkError::Gone(m.clone())),
            None => {
                self.got.borrow_mut().push(alert.idempotency_key.clone());
                Ok(())
            }
        }
    }
}

fn alert(key: &str) -> String {
    serde_json::json!({
        "idempotency_key": key, "transition": "opened", "finding_id": "f", "kind": "drift", "rule": "r",
        "severity": "high", "status": "open", "title": "t", "fact_kind": "role_assignment", "fact_key": "k",
        "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
    })
    .to_string()
}

#[test]
fn a_down_sink_delays_alerts_and_a_poison_alert_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("n.db")).unwrap();
    {
        let tx = store.tx().unwrap();
        let at = EventTime::from_unix_seconds(0);
        tx.enqueue("f:1", "webhook", "f", "opened", "high", &alert("f:1"), at)
            .unwrap();
        tx.enqueue("f:1", "webhook", "f", "opened", "high", &alert("f:1"), at)
            .unwrap();
        tx.enqueue("g:1", "webhook", "g", "opened", "high", "{not json", at)
            .unwrap();
        tx.enqueue("h:1", "email", "h", "opened", "high", &alert("h:1"), at)
            .unwrap();
        tx.commit().unwrap();
    }
    let fail = Rc::new(RefCell::new(Some(SinkError::Temporary(
        "connection refused".into(),
    ))));
    let got = Rc::new(RefCell::new(Vec::new()));
    let policy = NotifyConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(60),
        ..NotifyConfig::default()
    };
    let mut n = Notifier::new(
        vec![Box::new(Flaky {
            fail: fail.clone(),
            got: got.clone(),
        })],
        policy,
    );

    // Down: retried with backoff; the undecodable row is dead at once; email has no sink here.
    let r = n.drain(&mut store, 1000).unwrap();
    assert_eq!((r.delivered, r.retried, r.dead_lettered), (0, 1, 1));
    assert_eq!(r.no_sink.get("email"), Some(&1));
    // Not due yet: nothing is tried.
    let r = n.drain(&mut store, 1005).unwrap();
    assert_eq!((r.delivered, r.retried), (0, 0));
    // Back up: delivered once, and gone from the outbox.
    *fail.borrow_mut() = None;
    let r = n.drain(&mut store, 1010).unwrap();
    assert_eq!(r.delivered, 1);
    assert_eq!(got.borrow().as_slice(), ["f:1"]);
    assert_eq!(
        store.read().unwrap().outbox_counts().unwrap(),
        (1, 1),
        "email row waits, poison row is dead"
    );
    let dead = store
        .read()
        .unwrap()
        .outbox(OutboxState::Dead, None, 10)
        .unwrap();
    assert_eq!(dead[0].state, OutboxState::Dead);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("does not decode"));

    // A sink that stays down dead-letters after max_attempts, with the last error kept.
    {
        let tx = store.tx().unwrap();
        tx.enqueue(
            "k:1",
            "webhook",
            "k",
            "opened",
            "high",
            &alert("k:1"),
            EventTime::from_unix_seconds(0),
        )
        .unwrap();
        tx.commit().unwrap();
    }
    *fail.borrow_mut() = Some(SinkError::Temporary("503".into()));
    let mut now = 2000;
    for _ in 0..3 {
        n.drain(&mut store, now).unwrap();
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
}
