//! `cargo bench --bench eventhubs`: N Activity Log events (`{"records":[…]}` bodies of five
//! realistic records, four of them irrelevant) pushed through the in-test AMQP broker and the
//! real Event Hubs client into the store by `accessdrift run`, next to `accessdrift replay` of
//! the same records from a file. Prints events/s, records/s and the live/replay ratio.
//! Goal: the live path within 2× of replay.
//!
//! Sizes can be changed: `cargo bench --bench eventhubs -- EVENTS PARTITIONS`.

#[path = "../tests/support/amqp_broker.rs"]
mod amqp_broker;
#[path = "../tests/support/daemon.rs"]
mod daemon;

use accessdrift::store::{EventHubsPosition, Store};
use amqp_broker::AmqpBroker;
use daemon::{cli, wait_for, Daemon};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NS: &str = "bench.servicebus.windows.net";
const HUB: &str = "activity";
const SUB: &str = "6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";

fn record(i: usize, k: usize) -> Value {
    let caller = json!({"claims": {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": format!("user{}@contoso.com", i % 50),
        "http://schemas.microsoft.com/identity/claims/objectidentifier": format!("6d6d6d6d-0000-4000-8000-{:012}", i % 50),
        "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "ipaddr": "198.51.100.7"}});
    if k == 0 {
        let id = format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{i:08x}-0000-4000-8000-000000000000");
        let body = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"),
                          "principalId": format!("00000000-0000-4000-8000-{i:012}"), "principalType": "User", "scope": format!("/subscriptions/{SUB}")}});
        json!({"time": "2026-11-03T10:00:02.0000000Z", "resourceId": id.to_uppercase(),
               "operationName": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE", "category": "Administrative",
               "resultType": "Success", "correlationId": format!("corr-{i}"), "callerIpAddress": "198.51.100.7",
               "identity": caller, "properties": {"statusCode": "Created", "requestbody": body.to_string()}})
    } else {
        json!({"time": "2026-11-03T10:00:02.0000000Z",
               "resourceId": format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG-{}/PROVIDERS/MICROSOFT.STORAGE/STORAGEACCOUNTS/ST{i}{k}", i % 7),
               "operationName": "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION", "category": "Administrative",
               "resultType": "Success", "correlationId": format!("corr-{i}-{k}"), "callerIpAddress": "198.51.100.7",
               "identity": caller, "level": "Information",
               "properties": {"statusCode": "OK", "serviceRequestId": format!("{i:032x}"), "eventCategory": "Administrative",
                              "entity": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st{i}{k}"),
                              "message": "Microsoft.Storage/storageAccounts/listKeys/action", "hierarchy": "tenant/mg/sub"}})
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(20_000);
    let partitions = args.get(1).copied().unwrap_or(4).max(1);
    let per_event = 5;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = rt.block_on(AmqpBroker::start(HUB, partitions, &["accessdrift"]));
    let dir = tempfile::tempdir().unwrap();
    let mut ndjson = String::new();
    let mut bytes = 0usize;
    for i in 0..events {
        let recs: Vec<Value> = (0..per_event).map(|k| record(i, k)).collect();
        for r in &recs {
            ndjson.push_str(&r.to_string());
            ndjson.push('\n');
        }
        let body = json!({ "records": recs }).to_string();
        bytes += body.len();
        broker.append(i % partitions, body.as_bytes());
    }
    println!(
        "{events} events ({} records, {:.1} KiB per event) on {partitions} partitions",
        events * per_event,
        bytes as f64 / events as f64 / 1024.0
    );

    // Live: the daemon from an empty database with an (empty) baseline.
    let db = dir.path().join("live.db");
    drop(Store::open(&db).unwrap());
    let (code, _, err) = cli(&[
        "baseline",
        "capture",
        "--db",
        &db.display().to_string(),
        "--by",
        "bench",
    ]);
    assert_eq!(code, 0, "{err}");
    let secret = dir.path().join("cs");
    std::fs::write(
        &secret,
        format!("Endpoint=sb://{NS}/;SharedAccessKeyName=l;SharedAccessKey=a2V5;EntityPath={HUB}"),
    )
    .unwrap();
    let cfg = dir.path().join("accessdrift.toml");
    std::fs::write(&cfg, format!(
        "[eventhubs]\nenabled = true\nnamespace = \"{NS}\"\neventhub = \"{HUB}\"\nconsumer_group = \"accessdrift\"\n\
         auth = \"connection_string\"\nconnection_string = {{ file = {secret:?} }}\ncustom_endpoint = \"{}\"\n\
         max_batch = 500\nrebalance_interval = \"1s\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n",
        broker.endpoint()
    )).unwrap();
    // Last sequence number of each partition (events go round-robin).
    let mut last: Vec<(String, i64)> = (0..partitions.min(events))
        .map(|p| (p.to_string(), ((events - 1 - p) / partitions) as i64))
        .collect();
    last.sort();
    let started = Instant::now();
    let mut d = Daemon::start(&cfg, &db);
    wait_for("the backlog committed", Duration::from_secs(3600), || {
        let mut s = Store::open(&db).ok()?;
        let tx = s.read().ok()?;
        let rows = tx
            .checkpoints_with_prefix(&format!("eventhubs:{NS}/{HUB}/accessdrift/"))
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
    let live = started.elapsed();
    d.terminate(Duration::from_secs(30));

    // Replay of the same records from a file.
    let file = dir.path().join("records.ndjson");
    std::fs::write(&file, &ndjson).unwrap();
    let rdb = dir.path().join("replay.db");
    drop(Store::open(&rdb).unwrap());
    let (code, _, err) = cli(&[
        "baseline",
        "capture",
        "--db",
        &rdb.display().to_string(),
        "--by",
        "bench",
    ]);
    assert_eq!(code, 0, "{err}");
    let started = Instant::now();
    let (code, _, err) = cli(&[
        "replay",
        "--db",
        &rdb.display().to_string(),
        &file.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let replay = started.elapsed();

    let rate = |d: Duration, n: usize| n as f64 / d.as_secs_f64();
    println!(
        "live (connect + catch up): {live:.2?}  {:.0} events/s  {:.0} records/s",
        rate(live, events),
        rate(live, events * per_event)
    );
    println!(
        "replay of the same records: {replay:.2?}  {:.0} records/s",
        rate(replay, events * per_event)
    );
    println!(
        "live / replay time: {:.2}× (goal ≤ 2×); 1,000,000 records would catch up in ≈ {:.0} s",
        live.as_secs_f64() / replay.as_secs_f64(),
        1_000_000.0 / rate(live, events * per_event)
    );
}
