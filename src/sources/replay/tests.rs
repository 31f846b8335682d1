//! Reading, resuming and unfinished input, on in-memory files.

use super::*;
use crate::sources::Decoded;
use serde_json::Value;

fn summary(recs: &[Record]) -> Vec<String> {
    recs.iter()
        .map(|r| format!("{} {} {:?}", r.index, r.line, r.decoded))
        .collect()
}

fn read_all(f: &ReplayFile, from: Position) -> (Vec<Record>, u64, u64) {
    let p = RecordRouter::default();
    let mut recs = f.records_from("c", &p, from);
    let all: Vec<Record> = recs.by_ref().collect();
    assert!(recs.take_error().is_none());
    (
        all,
        recs.unfinished_bytes(),
        recs.skipped_before_checkpoint(),
    )
}

fn grant(i: usize) -> String {
    format!(
        "{{\"time\":\"2026-11-03T10:00:0{}Z\",\"resourceId\":\"/SUBSCRIPTIONS/S/PROVIDERS/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/RA{i}\",\"operationName\":\"MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE\",\"category\":\"Administrative\",\"resultType\":\"Success\",\"correlationId\":\"c{i}\"}}",
        i % 10
    )
}

/// Inputs of every shape the framer supports, each with several records.
fn shapes() -> Vec<(&'static str, String)> {
    let crb = |n: usize| {
        format!("{{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRoleBinding\",\"metadata\":{{\"name\":\"b{n}\"}},\"roleRef\":{{\"kind\":\"ClusterRole\",\"name\":\"view\"}},\"subjects\":[]}}")
    };
    vec![
        ("ndjson", (0..5).map(|i| grant(i) + "\n").collect()),
        (
            "envelopes",
            format!(
                "{{\"records\":[{},{},{}]}}\n{{\"records\":[]}}\n{{\"records\":[{},{}]}}\n",
                grant(0),
                grant(1),
                grant(2),
                grant(3),
                grant(4)
            ),
        ),
        ("array", format!("[{},{},\n{}]\n[{}]", grant(0), grant(1), grant(2), grant(3))),
        (
            "pretty",
            (0..3)
                .map(|i| {
                    let v: Value = serde_json::from_str(&grant(i)).unwrap();
                    serde_json::to_string_pretty(&v).unwrap() + "\n"
                })
                .collect(),
        ),
        (
            "kubernetes list and watch",
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{},{}]}}\n{{\"type\":\"ADDED\",\"object\":{}}}\n",
                crb(1),
                crb(2),
                crb(3)
            ),
        ),
        (
            "malformed in the middle",
            format!("{}\n{{broken\n{}\n[1,{}]\n", grant(0), grant(1), grant(2)),
        ),
    ]
}

#[test]
fn resuming_after_any_record_reads_exactly_the_rest() {
    for (name, text) in shapes() {
        let f = ReplayFile::from_bytes(name, text.into_bytes());
        let (all, unfinished, _) = read_all(&f, Position::default());
        assert!(all.len() >= 3, "{name}: {}", all.len());
        assert_eq!(unfinished, 0, "{name}");
        let want = summary(&all);
        for (k, r) in all.iter().enumerate() {
            let Resume::Continue(from) = f
                .resume(Some((r.after.offset, &r.after.fingerprint())))
                .unwrap()
            else {
                panic!("{name}: the checkpoint after record {k} does not fit its own file")
            };
            let (rest, _, skipped) = read_all(&f, from);
            assert_eq!(
                summary(&rest),
                want[k + 1..],
                "{name}: resumed after record {k}"
            );
            assert_eq!(skipped, r.after.skip, "{name}");
        }
    }
}

#[test]
fn a_file_cut_at_any_byte_then_completed_reads_every_record_once() {
    let text = format!(
        "{}\n{{\"records\":[{},{}]}}\n{}\n[{}]",
        grant(0),
        grant(1),
        grant(2),
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&grant(3)).unwrap()).unwrap(),
        grant(4)
    );
    let whole = ReplayFile::from_bytes("w", text.clone().into_bytes());
    let want = summary(&read_all(&whole, Position::default()).0);
    assert_eq!(want.len(), 5);
    for cut in 0..=text.len() {
        let part = ReplayFile::from_bytes("w", text.as_bytes()[..cut].to_vec());
        let (first, unfinished, _) = read_all(&part, Position::default());
        assert!(
            first
                .iter()
                .all(|r| !matches!(r.decoded, Decoded::Malformed(_))),
            "cut at {cut}: a record still being written is not malformed"
        );
        let from = first.last().map_or(Position::default(), |r| r.after);
        let rest_of_prefix = cut as u64 - from.offset;
        assert!(
            unfinished <= rest_of_prefix,
            "cut at {cut}: {unfinished} unfinished bytes after offset {}",
            from.offset
        );
        let resume = whole
            .resume(Some((from.offset, &from.fingerprint())))
            .unwrap();
        let Resume::Continue(from) = resume else {
            panic!("cut at {cut}: an appended file must continue, got {resume:?}")
        };
        let (rest, _, _) = read_all(&whole, from);
        let mut got = summary(&first);
        got.extend(summary(&rest));
        assert_eq!(got, want, "cut at {cut}");
    }
}

#[test]
fn unfinished_values_at_the_end_wait_and_wrong_ones_are_malformed() {
    let g = grant(0);
    for (input, records, malformed, unfinished) in [
        (format!("{g}\n{}", &g[..40]), 1, 0, 40),
        (format!("{g}\n{{\n  \"a\": 1,\n"), 1, 0, 12),
        (format!("{{\"records\":[{g},{}", &g[..10]), 0, 0, 0),
        (format!("[{g},"), 0, 0, 0),
        (format!("{g}\n{{broken"), 2, 1, 0),
        (format!("{g}\n{{\"a\":\"cut\n"), 2, 1, 0),
        (format!("{g}\n{{\"a\":1]"), 2, 1, 0),
        (format!("{}\n{g}\n", &g[..40]), 2, 1, 0),
    ] {
        let f = ReplayFile::from_bytes("u", input.clone().into_bytes());
        let (all, got_unfinished, _) = read_all(&f, Position::default());
        let bad = all
            .iter()
            .filter(|r| matches!(r.decoded, Decoded::Malformed(_)))
            .count();
        let want_unfinished = if records == 0 {
            input.len() as u64
        } else {
            unfinished
        };
        assert_eq!(
            (all.len(), bad, got_unfinished),
            (records, malformed, want_unfinished),
            "{input}"
        );
    }
}

#[test]
fn content_tells_empty_and_binary_files_from_json() {
    for (input, want) in [
        (&b""[..], Content::Empty),
        (b"  \n\r\n", Content::Empty),
        (
            b"\x7fELF\x02\x01\x01\x00\x00\x00\n\x00\x03\x00>",
            Content::NotJson,
        ),
        (b"hello, world\n", Content::NotJson),
        (b"[]", Content::Values),
        (b"{\"records\":[]}\n", Content::Values),
        (b"{\"records\":[{\"a\"", Content::Values),
    ] {
        let f = ReplayFile::from_bytes("c", input.to_vec());
        let p = RecordRouter::default();
        let mut recs = f.records("c", &p);
        recs.by_ref().for_each(drop);
        assert_eq!(recs.content(), want, "{:?}", String::from_utf8_lossy(input));
    }
    for (input, want) in [("", Content::Empty), ("a: [\n", Content::NotJson)] {
        let f = ReplayFile::from_bytes("c.yaml", input.as_bytes().to_vec());
        let p = RecordRouter::default();
        let mut recs = f.records("c", &p);
        recs.by_ref().for_each(drop);
        assert_eq!(recs.content(), want, "{input}");
    }
}

#[test]
fn checkpoints_that_no_longer_fit_restart() {
    let text = format!("{}\n{}\n", grant(0), grant(1));
    let f = ReplayFile::from_bytes("r", text.clone().into_bytes());
    let (all, _, _) = read_all(&f, Position::default());
    let after = all[0].after;
    let fp = after.fingerprint();
    let changed = text.replacen("RA0", "RB0", 1);
    let shorter = &text[..10];
    for (now, want) in [
        (changed.as_str(), Resume::Restart(Mismatch::Changed)),
        (
            shorter,
            Resume::Restart(Mismatch::Shorter {
                len: 10,
                offset: after.offset,
            }),
        ),
    ] {
        let g = ReplayFile::from_bytes("r", now.as_bytes().to_vec());
        assert_eq!(g.resume(Some((after.offset, &fp))).unwrap(), want);
    }
    assert_eq!(
        f.resume(Some((0, "nonsense"))).unwrap(),
        Resume::Restart(Mismatch::Unreadable)
    );
    // A checkpoint of the format before byte offsets: records counted from a known head.
    let head = format!(
        "fnv1a64:{:016x}",
        crate::domain::id::fnv1a64(text.as_bytes())
    );
    let Resume::Continue(from) = f.resume(Some((1, &head))).unwrap() else {
        panic!("a legacy checkpoint of the same file continues")
    };
    let (rest, _, skipped) = read_all(&f, from);
    assert_eq!((rest.len(), skipped), (1, 1));
    assert_eq!(rest[0].index, 1);
}

#[test]
fn yaml_appended_documents_continue_and_a_broken_tail_is_read_again() {
    let a = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: n\n";
    let b = "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n  namespace: n\n";
    let f = ReplayFile::from_bytes("s.yaml", a.as_bytes().to_vec());
    let (first, _, _) = read_all(&f, Position::default());
    assert_eq!(first.len(), 1);
    let after = first[0].after;
    let g = ReplayFile::from_bytes("s.yaml", format!("{a}{b}").into_bytes());
    let Resume::Continue(from) = g
        .resume(Some((after.offset, &after.fingerprint())))
        .unwrap()
    else {
        panic!("appended YAML continues")
    };
    let (rest, _, _) = read_all(&g, from);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].index, 1);
    assert!(matches!(&rest[0].decoded, Decoded::Observation(o) if o.prov.location.index == 1));
    // A document cut mid-way is malformed now, and its checkpoint does not pass it.
    let cut = format!("{a}---\napiVersion: v1\nkind: [Serv");
    let h = ReplayFile::from_bytes("s.yaml", cut.into_bytes());
    let (recs, _, _) = read_all(&h, Position::default());
    assert!(matches!(recs[1].decoded, Decoded::Malformed(_)));
    assert_eq!(recs[1].after, recs[0].after);
    assert_eq!((recs[1].after.offset, recs[1].after.skip), (0, 1));
}

#[test]
fn mixed_json_input_numbers_records_in_order() {
    let input = concat!(
            "{\"records\":[{\"operationName\":\"MICROSOFT.WEB/SITES/WRITE\"},{\"operationName\":\"x\"}]}\n",
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"r\"},\"rules\":[]}}\n",
            "{broken\n",
            "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}]}\n",
        );
    let f = ReplayFile::from_bytes("mem", input.as_bytes().to_vec());
    let p = RecordRouter::default();
    let recs: Vec<Record> = f.records("c", &p).collect();
    assert_eq!(recs.len(), 5);
    assert_eq!(
        recs.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(matches!(&recs[2].decoded, Decoded::Observation(o) if o.prov.location.index == 2));
    assert!(matches!(&recs[3].decoded, Decoded::Malformed(_)));
    assert_eq!(recs[3].line, 3);
}

#[test]
fn yaml_lists_decode() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: a\n    namespace: n\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\nrules: []\n";
    let f = ReplayFile::from_bytes("x.yaml", yaml.as_bytes().to_vec());
    let p = RecordRouter::default();
    let recs: Vec<Record> = f.records("c", &p).collect();
    assert_eq!(recs.len(), 2);
    assert!(recs
        .iter()
        .all(|r| matches!(r.decoded, Decoded::Observation(_))));
}

#[test]
fn records_spanning_chunks_decode_like_a_whole_file() {
    // Many records, lines long enough that chunk boundaries fall inside records.
    let rec = |i: usize| {
        format!(
            "{{\"operationName\":\"Microsoft.Web/sites/write\",\"pad\":\"{}\",\"i\":{i}}}",
            "x".repeat(1000 + i % 97)
        )
    };
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&rec(i));
        text.push('\n');
        if i == 12_345 {
            text.push_str("{\"truncated\": [\n");
        }
    }
    assert!(text.len() > 2 * CHUNK);
    let f = ReplayFile::from_bytes("big", text.into_bytes());
    let p = RecordRouter::default();
    let mut recs = f.records("c", &p);
    let all: Vec<Record> = recs.by_ref().collect();
    assert!(recs.take_error().is_none());
    assert_eq!(all.len(), 20_001);
    let bad: Vec<&Record> = all
        .iter()
        .filter(|r| matches!(r.decoded, Decoded::Malformed(_)))
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].index, bad[0].line), (12_346, 12_347));
}
