//! Webhook sink figures against a loopback receiver (the tests' receiver, answering 200):
//! 1. throughput: N queued alerts drained through a signed CloudEvents sink, alerts/s;
//! 2. latency at 100 alerts/s: each alert committed to the outbox by another thread, the
//!    notifier woken by the commit (as the daemon's store writer does); time from commit to
//!    the receiver having the request, p50/p99.
//!
//! `cargo bench --bench sinks [-- N]` (N alerts for the throughput run, default 5000).

#[path = "../tests/common/receiver.rs"]
mod receiver;

use accessdrift::config::Config;
use accessdrift::domain::EventTime;
use accessdrift::notify::Notifier;
use accessdrift::store::Store;
use receiver::Receiver;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_YWNjZXNzZHJpZnQtdGVzdC1zaWduaW5nLWtleS0zMmI=";

fn alert(key: &str) -> String {
    serde_json::json!({
        "idempotency_key": key, "transition": "opened", "finding_id": key, "kind": "drift",
        "rule": "drift.role_assignment", "severity": "high", "status": "open",
        "title": "Unapproved role assignment Owner for principal 6d6d6d6d at /subscriptions/6f1c2c3d",
        "fact_kind": "role_assignment", "fact_key": "/subscriptions/6f1c2c3d|6d6d6d6d|8e3af657",
        "actor": {"upn": "mallory@contoso.com", "ip": "198.51.100.77"},
        "correlation_id": format!("corr-{key}"),
        "first_seen": "2026-11-03T00:00:00Z", "last_seen": "2026-11-03T00:00:00Z"
    })
    .to_string()
}

fn enqueue(store: &mut Store, keys: &[String]) {
    let tx = store.tx().unwrap();
    for k in keys {
        let at = EventTime::from_unix_seconds(0);
        tx.enqueue(
            &accessdrift::store::NewAlert {
                idempotency_key: k,
                finding_id: k,
                transition: "opened",
                severity: "high",
                payload: &alert(k),
                at,
                hold_until: None,
            },
            "siem",
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn config(url: &str) -> Config {
    std::env::set_var("ACCESSDRIFT_BENCH_WHSEC", SECRET);
    Config::parse(
        &format!("[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = {{ env = \"ACCESSDRIFT_BENCH_WHSEC\" }}\n"),
        Path::new("bench.toml"),
    )
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();

    // 1. Throughput.
    let hook = Receiver::start();
    let cfg = config(&hook.url());
    let db = dir.path().join("throughput.db");
    let mut store = Store::open(&db).unwrap();
    let keys: Vec<String> = (0..n).map(|i| format!("bench:t{i}:1")).collect();
    enqueue(&mut store, &keys);
    let mut notifier = Notifier::new(&cfg, &db).unwrap();
    let t = Instant::now();
    let mut delivered = 0;
    while delivered < n as u64 {
        delivered += notifier.drain_once().unwrap().delivered;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hook.requests().len(), n);
    println!(
        "webhook sink throughput: {n} signed CloudEvents in {secs:.2} s = {:.0} alerts/s (one HTTP/1.1 keep-alive connection, loopback)",
        n as f64 / secs
    );

    // 2. Commit → accepted latency at 100 alerts/s.
    let hook = Receiver::start();
    let cfg = config(&hook.url());
    let db = dir.path().join("latency.db");
    drop(Store::open(&db).unwrap());
    let total = 1000;
    let rate = Duration::from_millis(10);
    let wake = Arc::new(tokio::sync::Notify::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let notifier = Notifier::new(&cfg, &db).unwrap();
    // The notifier on its own thread and runtime, as in the daemon; the producer stands in
    // for the store writer: commit, then wake.
    let task = {
        let (wake, cancel) = (wake.clone(), cancel.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(notifier.run(wake, cancel))
        })
    };
    let producer = {
        let (db, wake) = (db.clone(), wake.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            let mut committed = HashMap::new();
            let start = Instant::now();
            for i in 0..total {
                let due = start + rate * i as u32;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let key = format!("bench:l{i}:1");
                enqueue(&mut store, std::slice::from_ref(&key));
                committed.insert(key, Instant::now());
                wake.notify_one();
            }
            committed
        })
    };
    let committed = producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.requests().len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    cancel.cancel();
    task.join().unwrap().unwrap();
    let mut lat: Vec<Duration> = hook
        .requests()
        .iter()
        .map(|r| {
            let key = r.json()["id"].as_str().unwrap().to_string();
            r.at.duration_since(committed[&key])
        })
        .collect();
    assert_eq!(lat.len(), total, "every alert delivered");
    lat.sort();
    println!(
        "commit -> webhook accepted at 100 alerts/s over {total} alerts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
}
