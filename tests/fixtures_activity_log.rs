//! Every Activity Log file in tests/fixtures/activity-log/ goes through the source without a
//! panic, with the counts each file should give. The directory holds public samples copied under
//! their licences and records written for accessdrift that reproduce further shapes seen in the
//! wild; tests/fixtures/SOURCES.md says where each file came from.

use accessdrift::domain::{ChangeOp, Phase};
use accessdrift::sources::replay::ReplayFile;
use accessdrift::sources::router::RecordRouter;
use accessdrift::sources::Decoded;
use std::collections::BTreeMap;
use std::path::Path;

/// (observations, skipped, malformed) and the operations the observations carry.
fn counts(path: &Path) -> (usize, usize, usize, Vec<String>) {
    let f = ReplayFile::open(path).unwrap();
    let p = RecordRouter::default();
    let (mut obs, mut skipped, mut malformed, mut ops) = (0, 0, 0, Vec::new());
    for r in f.records("local", &p) {
        match r.decoded {
            Decoded::Observation(o) => {
                obs += 1;
                let cand = match (&o.candidate, o.phase) {
                    (Some(ChangeOp::Upsert(_)), ph) => format!("upsert/{}", ph.as_str()),
                    (Some(ChangeOp::Delete { .. }), ph) => format!("delete/{}", ph.as_str()),
                    (Some(ChangeOp::Activity(_)), ph) => format!("activity/{}", ph.as_str()),
                    (Some(ChangeOp::Audit(_)), ph) => format!("audit/{}", ph.as_str()),
                    (None, Phase::Success) => "hint/success".to_string(),
                    (None, ph) => format!("none/{}", ph.as_str()),
                };
                ops.push(format!("{} {cand}", o.prov.operation));
            }
            Decoded::Skipped(r) => {
                skipped += 1;
                ops.push(format!("skip:{}", r.as_str()));
            }
            Decoded::Malformed(m) => {
                eprintln!(
                    "{}: record {} line {}: {m}",
                    path.display(),
                    r.index,
                    r.line
                );
                malformed += 1
            }
        }
    }
    (obs, skipped, malformed, ops)
}

/// Expected per file: (observations, skipped, malformed). Most of the corpus is operations
/// accessdrift rightly ignores (listKeys, health, sign-ins, PIM display names, support
/// tickets, other providers' writes); the time-format file has no operation at all.
const EXPECTED: &[(&str, usize, usize, usize)] = &[
    ("accessdrift__bodies-string-and-object.log", 0, 3, 0),
    ("accessdrift__duration-as-string.log", 0, 2, 0),
    ("accessdrift__ipv6-caller.log", 0, 1, 0),
    ("accessdrift__level-int-identity-string.log", 0, 1, 0),
    ("accessdrift__mixedcase-resourceid.log", 0, 2, 0),
    ("accessdrift__pretty-printed.log", 0, 1, 0),
    ("accessdrift__records-envelope-start-failure.json", 0, 2, 0),
    ("accessdrift__subscription-singular.log", 0, 1, 0),
    ("accessdrift__time-formats.log", 0, 11, 0),
    (
        "azure-docs__change-history-report.md.az-cli-example.json",
        2,
        0,
        0,
    ),
    (
        "azure-monitor-docs__activity-log-schema.md.eventhub-example.json",
        0,
        1,
        0,
    ),
    (
        "azure-monitor-docs__activity-log-schema.md.rest-administrative-example.json",
        0,
        1,
        0,
    ),
    ("otelcontrib__administrative-log.json", 0, 2, 0),
    ("otelcontrib__identity_as_string.json", 0, 1, 0),
    // PIM's records: the activation completed and the expiry (the request is not a change).
    ("otelcontrib__pim-log.json", 2, 1, 0),
    (
        "sumologic-azure-function__activity_log_fixtures.json",
        0,
        1,
        0,
    ),
];

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/activity-log");

fn fixture_dir() -> &'static Path {
    Path::new(FIXTURE_DIR)
}

#[test]
fn every_fixture_file_decodes_with_expected_counts() {
    let mut got = BTreeMap::new();
    for e in std::fs::read_dir(fixture_dir()).expect("tests/fixtures/activity-log is readable") {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let (o, s, m, ops) = counts(&p);
        println!("{name}: {o} observations, {s} skipped, {m} malformed: {ops:?}");
        got.insert(name, (o, s, m));
    }
    let want: BTreeMap<String, (usize, usize, usize)> = EXPECTED
        .iter()
        .map(|(n, o, s, m)| (n.to_string(), (*o, *s, *m)))
        .collect();
    assert_eq!(
        got, want,
        "a new fixture file needs its expected counts here"
    );
}

#[test]
fn the_whole_corpus_replays_into_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = accessdrift::store::Store::open(&dir.path().join("f.db")).unwrap();
    let cfg = accessdrift::config::Config::default();
    let mut files: Vec<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut p = accessdrift::pipeline::Pipeline::new(&mut store, &cfg, vec![]);
    let s = accessdrift::pipeline::replay::run(&mut p, &files, "local").unwrap();
    assert_eq!(
        s.records,
        EXPECTED
            .iter()
            .map(|e| (e.1 + e.2 + e.3) as u64)
            .sum::<u64>()
    );
    assert!(s.malformed.is_empty());
    // The docs' az CLI example (Start with a PascalCase body, then the completion without
    // one), PIM's activation, and its expiry of another activation (a delete remembered).
    assert_eq!(
        (s.stats.applied, s.stats.added, s.stats.removed),
        (3, 2, 1),
        "{:?}",
        s.stats
    );
    let all = store.read().unwrap().facts().unwrap();
    let pim: Vec<_> = all
        .iter()
        .filter(|f| f.kind == accessdrift::domain::FactKind::PimActivation && f.value.is_some())
        .collect();
    assert_eq!(pim.len(), 1, "{all:?}");
    assert_eq!(pim[0].key, "/subscriptions/00000000-0000-0000-0000-000000000001|00000000-0000-0000-0000-000000000009|00000000-0000-0000-0000-000000000013");
    assert_eq!(pim[0].prov.actor.upn.as_deref(), Some("user@example.com"));
    let facts: Vec<_> = all
        .iter()
        .filter(|f| f.kind == accessdrift::domain::FactKind::RoleAssignment)
        .collect();
    assert_eq!(facts.len(), 1);
    let f = &facts[0];
    assert_eq!(f.key, "/subscriptions/{subscriptionid}/resourcegroups/example-group|{principalid}|fa23ad8b-c56e-40d8-ac0c-ce449e1d2c64");
    assert_eq!(f.prov.actor.upn.as_deref(), Some("admin@example.com"));
    assert_eq!(f.event_time.to_string(), "2021-03-01T22:07:42.456241Z");
}
