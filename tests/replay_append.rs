//! Files that grow, are still being written, or are rewritten between replays: the
//! checkpoint is a byte offset plus a hash of every byte before it.

mod common;

use accessdrift::engine::{DriftChange, Finding};
use accessdrift::pipeline::replay::{FileIssue, ReplaySummary};
use accessdrift::pipeline::SkipReason;
use common::*;
use std::path::{Path, PathBuf};

/// Approves the (empty) observed state, so every later grant is judged.
fn capture(env: &Env) {
    let mut store = env.store();
    let tx = store.tx().unwrap();
    let at = accessdrift::domain::EventTime::from_unix_seconds(1);
    tx.new_baseline_version("test", "capture", "", at).unwrap();
    tx.commit().unwrap();
}

fn findings(env: &Env) -> Vec<Finding> {
    env.store().read().unwrap().findings(false).unwrap()
}

fn queued_alerts(env: &Env) -> u64 {
    env.store().read().unwrap().outbox_counts().unwrap().0
}

/// Records of another resource provider: read and skipped, they only make the file long.
fn padding(bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut n = 0;
    for i in 0.. {
        if n > bytes {
            break;
        }
        let site = format!(
            "/subscriptions/{SUB}/resourceGroups/web/providers/Microsoft.Web/sites/site{i}"
        );
        let line = Rec::new(
            "Microsoft.Web/sites/write",
            &site,
            "Success",
            &format!("web-{i}"),
            "2026-11-03T09:00:00Z",
        )
        .line();
        n += line.len() + 1;
        out.push(line);
    }
    out
}

fn write_raw(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn lines(ls: &[String]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

fn owner_of(env: &Env, principal: &str) -> Option<Finding> {
    findings(env)
        .into_iter()
        .find(|f| f.fact_key.contains(principal))
}

fn warning<'a>(
    s: &'a ReplaySummary,
    kind: &str,
) -> Option<&'a accessdrift::pipeline::replay::FileWarning> {
    s.warnings.iter().find(|w| w.kind() == kind)
}

#[test]
fn a_record_half_written_in_a_file_past_64k_is_applied_once_complete() {
    let env = Env::new();
    capture(&env);
    let [start, accept, success] = owner_grant(
        "live-1",
        "ra-live",
        "0a0a0a0a-0000-4000-8000-000000000001",
        3,
    );
    let mut all = padding(70 * 1024);
    all.extend([start.line(), accept.line(), success.line()]);
    let full = lines(&all);
    let path = env.dir.path().join("activity.json");
    // The writer has flushed half of the Success record.
    let cut = full.len() - success.line().len() / 2;
    write_raw(&path, &full[..cut]);
    let s = env.replay(std::slice::from_ref(&path));
    assert!(
        s.malformed.is_empty(),
        "a record still being written is not malformed: {:?}",
        s.malformed
    );
    let w = warning(&s, "unfinished").expect("the unfinished tail is reported");
    assert_eq!(
        w.issue,
        FileIssue::Unfinished {
            bytes: (cut - (full.len() - success.line().len() - 1)) as u64
        }
    );
    assert!(w.to_string().contains(&path.display().to_string()), "{w}");
    assert!(
        w.to_string()
            .contains("look unfinished; replay again when the writer is done"),
        "{w}"
    );
    assert!(owner_of(&env, "0a0a0a0a").is_none());
    // The writer finishes the record.
    write_raw(&path, &full);
    let s = env.replay(std::slice::from_ref(&path));
    assert_eq!(
        (s.records, s.stats.applied, s.stats.opened),
        (1, 1, 1),
        "only the completed record is read"
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let f = owner_of(&env, "0a0a0a0a").expect("the Owner grant is a finding");
    assert_eq!(f.change, Some(DriftChange::Unapproved));
    assert_eq!(f.actor.upn.as_deref(), Some("mallory@contoso.com"));
}

#[test]
fn a_small_file_that_grows_applies_only_the_new_records() {
    let env = Env::new();
    capture(&env);
    let [a1, a2, a3] = owner_grant("grow-a", "ra-a", "0b0b0b0b-0000-4000-8000-00000000000a", 3);
    let [b1, b2, b3] = owner_grant("grow-b", "ra-b", "0b0b0b0b-0000-4000-8000-00000000000b", 4);
    let path = env.dir.path().join("small.json");
    write_raw(&path, &lines(&[a1.line(), a2.line(), a3.line()]));
    let s = env.replay(std::slice::from_ref(&path));
    assert_eq!((s.stats.applied, s.stats.notifications), (1, 1));
    assert_eq!(queued_alerts(&env), 1);
    // The file grows (well under 64 KiB).
    write_raw(
        &path,
        &lines(&[
            a1.line(),
            a2.line(),
            a3.line(),
            b1.line(),
            b2.line(),
            b3.line(),
        ]),
    );
    let s = env.replay(std::slice::from_ref(&path));
    assert_eq!(s.records, 3, "the first three records are not read again");
    assert_eq!(s.stats.skipped.get(&SkipReason::Duplicate), None);
    assert_eq!(
        (s.stats.applied, s.stats.opened, s.stats.notifications),
        (1, 1, 1)
    );
    assert_eq!(queued_alerts(&env), 2);
    assert!(owner_of(&env, "0b0b0b0b-0000-4000-8000-00000000000b").is_some());
    // Nothing new: nothing read.
    let s = env.replay(std::slice::from_ref(&path));
    assert_eq!((s.records, s.stats.applied), (0, 0));
}

#[test]
fn a_rewritten_file_with_the_same_first_64k_is_replayed_from_the_start() {
    let env = Env::new();
    capture(&env);
    let pad = padding(70 * 1024);
    let path = env.dir.path().join("rewritten.json");
    let [a1, a2, a3] = owner_grant("rw-1", "ra-rw1", "0c0c0c0c-0000-4000-8000-000000000001", 3);
    let mut first = pad.clone();
    first.extend([a1.line(), a2.line(), a3.line()]);
    write_raw(&path, &lines(&first));
    env.replay(std::slice::from_ref(&path));
    assert!(owner_of(&env, "0c0c0c0c-0000-4000-8000-000000000001").is_some());
    // Same head, same number of records, other grants after it.
    let [b1, b2, b3] = owner_grant("rw-2", "ra-rw2", "0c0c0c0c-0000-4000-8000-000000000002", 3);
    let mut second = pad;
    second.extend([b1.line(), b2.line(), b3.line()]);
    write_raw(&path, &lines(&second));
    let s = env.replay(std::slice::from_ref(&path));
    let w = warning(&s, "rewritten").expect("the rewrite is reported");
    assert!(w.to_string().contains(&path.display().to_string()), "{w}");
    assert_eq!(s.records as usize, second.len(), "read from the start");
    assert_eq!((s.stats.applied, s.stats.opened), (1, 1));
    assert!(owner_of(&env, "0c0c0c0c-0000-4000-8000-000000000002").is_some());
}

/// The final file, and three moments of it being written: inside an envelope, inside a
/// pretty-printed record, and just after a complete line. (No grant is revoked in it: until
/// drift is evaluated after every change, a batch hides a grant revoked within it.)
fn growing_file() -> (String, Vec<usize>) {
    let g = |c: &str, n: &str, p: &str, d| owner_grant(c, n, p, d);
    let [a1, a2, a3] = g("r-a", "ra-a", "0d0d0d0d-0000-4000-8000-00000000000a", 3);
    let [b1, b2, b3] = g("r-b", "ra-b", "0d0d0d0d-0000-4000-8000-00000000000b", 4);
    let [c1, c2, c3] = g("r-c", "ra-c", "0d0d0d0d-0000-4000-8000-00000000000c", 5);
    let [d1, d2, d3] = g("r-d", "ra-d", "0d0d0d0d-0000-4000-8000-00000000000d", 6);
    let pretty = serde_json::to_string_pretty(&c1.v).unwrap();
    let mut text = lines(&padding(70 * 1024));
    let mut cuts = Vec::new();
    text.push_str(&envelope(&[&a1, &a2]));
    cuts.push(text.len() - 50);
    text.push_str(&format!("\n{}\n", envelope(&[&a3, &b1, &b2, &b3])));
    text.push_str(&pretty);
    cuts.push(text.len() - pretty.len() / 2);
    text.push('\n');
    text.push_str(&lines(&[c2.line(), c3.line()]));
    cuts.push(text.len());
    text.push_str(&lines(&[d1.line(), d2.line(), d3.line()]));
    (text, cuts)
}

fn normalised_dump(env: &Env) -> String {
    env.dump()
        .replace(&env.dir.path().display().to_string(), "DIR")
}

#[test]
fn resuming_an_appended_file_ends_like_one_replay_of_the_final_file() {
    let (text, cuts) = growing_file();
    for batch_size in [1, 2, 2000] {
        let mut live = Env::new();
        live.cfg.pipeline.batch_size = batch_size;
        capture(&live);
        let path: PathBuf = live.dir.path().join("live.json");
        for &cut in &cuts {
            write_raw(&path, &text[..cut]);
            let s = live.replay(std::slice::from_ref(&path));
            assert!(s.malformed.is_empty(), "cut at {cut}: {:?}", s.malformed);
        }
        write_raw(&path, &text);
        live.replay(std::slice::from_ref(&path));

        let mut once = Env::new();
        once.cfg.pipeline.batch_size = batch_size;
        capture(&once);
        let p = once.dir.path().join("live.json");
        write_raw(&p, &text);
        once.replay(std::slice::from_ref(&p));
        assert_eq!(
            normalised_dump(&live),
            normalised_dump(&once),
            "batch size {batch_size}"
        );
        assert_eq!(findings(&once).len(), 4, "four grants");
    }
}
