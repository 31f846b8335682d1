//! Bad input never stops the pipeline: mutated and truncated inputs are read to the end
//! without a panic or an error, and whatever is intact still applies.

use accessdrift::config::Config;
use accessdrift::pipeline::{replay, Pipeline};
use accessdrift::sources::replay::ReplayFile;
use accessdrift::sources::router::RecordRouter;
use accessdrift::store::Store;

fn demo(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/examples/demo/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Deterministic mutations: truncations, byte flips, structural bytes dropped or injected.
fn mutations(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for _ in 0..40 {
        out.push(input[..next(input.len())].to_vec());
        let mut m = input.to_vec();
        for _ in 0..8 {
            let i = next(m.len());
            m[i] = b"{}[]\",:\\\n\x00\xff"[next(11)];
        }
        out.push(m);
        let mut m = input.to_vec();
        let i = next(m.len());
        m.drain(i..(i + next(400)).min(m.len()));
        out.push(m);
    }
    out
}

#[test]
fn mutated_inputs_are_read_to_the_end() {
    let p = RecordRouter::default();
    for name in [
        "day1-activity.json",
        "day2-activity.json",
        "day1-k8s.json",
        "day2-k8s.ndjson",
    ] {
        for (i, m) in mutations(&demo(name)).into_iter().enumerate() {
            let f = ReplayFile::from_bytes(name, m);
            let mut recs = f.records("c", &p);
            let n = recs.by_ref().count();
            assert!(recs.take_error().is_none(), "{name} mutation {i}");
            assert!(n < 10_000, "{name} mutation {i}: {n} records");
        }
    }
}

#[test]
fn a_damaged_file_still_applies_its_intact_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = demo("day1-activity.json");
    // Cut one envelope line in half: its records are lost, the others apply.
    let first_nl = damaged.iter().position(|b| *b == b'\n').unwrap();
    damaged.drain(first_nl / 2..first_nl);
    let path = dir.path().join("damaged.json");
    std::fs::write(&path, &damaged).unwrap();
    let mut store = Store::open(&dir.path().join("r.db")).unwrap();
    let cfg = Config::default();
    let s = replay::run(&mut Pipeline::new(&mut store, &cfg, vec![]), &[path], "c").unwrap();
    assert!(!s.malformed.is_empty());
    assert!(s.stats.applied >= 1, "records after the damage still apply");
}
