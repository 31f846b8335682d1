//! Files that are not what they should be (empty, binary, broken, still being written), and
//! `replay --strict`, run as a real process.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn replay(db: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["replay", "--db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    ad(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A gzip header and some compressed-looking bytes, with a few line breaks.
const BINARY: &[u8] =
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xed\x9d\n\x5b\x73\xdb\xc6\x15\xc7\xbf\n\x0a\x00\xff";

#[test]
fn empty_and_binary_files_warn_with_their_path_and_fail_under_strict() {
    for (name, content, says) in [
        ("empty.json", &b""[..], "is empty"),
        ("blank.json", b"\n  \n", "is empty"),
        ("capture.json", BINARY, "holds no JSON or YAML records"),
        (
            "notes.yaml",
            b"just: [a sentence\n",
            "holds no JSON or YAML records",
        ),
    ] {
        let env = Env::new();
        let db = env.db();
        let path = env.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let o = replay(&db, &path, &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let out = stdout(&o);
        let line = out
            .lines()
            .find(|l| l.starts_with("warning:"))
            .unwrap_or_else(|| panic!("{name}: no warning in\n{out}"));
        assert!(
            line.contains(path.to_str().unwrap()) && line.contains(says),
            "{line}"
        );
        assert!(
            out.contains("malformed          0"),
            "{name}: a file-level warning, not malformed records\n{out}"
        );

        let o = replay(&db, &path, &["--strict"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("replay --strict: 1 problem(s)"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn a_binary_file_is_not_marked_as_read() {
    let env = Env::new();
    let db = env.db();
    let path = env.dir.path().join("day1.json");
    std::fs::write(&path, BINARY).unwrap();
    assert!(replay(&db, &path, &[]).status.success());
    let source = format!("replay:{}", path.canonicalize().unwrap().display());
    assert_eq!(
        env.store().read().unwrap().checkpoint(&source).unwrap(),
        None,
        "no checkpoint for a file that held no records"
    );
    // The right content lands under the same name: replayed in full, with no warning.
    let [a, b, c] = owner_grant("bin-1", "ra-bin", "0e0e0e0e-0000-4000-8000-000000000001", 3);
    std::fs::write(&path, envelope(&[&a, &b, &c])).unwrap();
    let o = replay(&db, &path, &["--json", "--strict"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["applied"], 1);
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn malformed_records_fail_under_strict_and_the_good_ones_still_apply() {
    let env = Env::new();
    let db = env.db();
    let [a, b, c] = owner_grant("m-1", "ra-m", "0f0f0f0f-0000-4000-8000-000000000001", 3);
    let path = env.write(
        "mixed.json",
        &[a.line(), "{\"broken\": [1,}".into(), b.line(), c.line()],
    );
    let o = replay(&db, &path, &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("malformed          1"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        env.store().read().unwrap().facts().unwrap().len(),
        1,
        "the grant is applied"
    );
    // Without --strict the same input is a success (nothing new to read now).
    let o = replay(&db, &path, &[]);
    assert!(o.status.success());
}

#[test]
fn an_unfinished_last_record_is_reported_and_read_when_complete() {
    let env = Env::new();
    let db = env.db();
    let [a, b, c] = owner_grant("u-1", "ra-u", "0f0f0f0f-0000-4000-8000-000000000002", 3);
    let full = format!("{}\n{}\n{}\n", a.line(), b.line(), c.line());
    let path = env.dir.path().join("live.json");
    let cut = full.len() - 30;
    std::fs::write(&path, &full[..cut]).unwrap();
    let o = replay(&db, &path, &[]);
    assert!(o.status.success());
    let want = format!(
        "warning: {} bytes at the end of {} look unfinished; replay again when the writer is done",
        cut - a.line().len() - b.line().len() - 2,
        path.display()
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("malformed          0"),
        "{}",
        stdout(&o)
    );
    let o = replay(&db, &path, &["--json", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "unfinished input fails --strict");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["warnings"][0]["kind"], "unfinished");
    std::fs::write(&path, &full).unwrap();
    let o = replay(&db, &path, &["--json", "--strict"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["applied"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn strict_is_documented_in_help() {
    let help = stdout(&ad(&["replay", "--help"]));
    assert!(
        help.contains("--strict") && help.contains("unfinished") && help.contains("malformed"),
        "{help}"
    );
}

// ------------------------------------------------------------------- kind: List and --relist

fn list(items: &[Value]) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string() + "\n"
}

fn crb_item(name: &str) -> Value {
    serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "6b3f1c2a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"}]})
}

fn sa_item(ns: &str, name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns}})
}

/// Live keys of `kind` in the database, sorted.
fn live_keys(db: &Path, kind: accessdrift::domain::FactKind) -> Vec<String> {
    let mut store = accessdrift::store::Store::open_read_only(db).unwrap();
    let mut keys: Vec<String> = store
        .read()
        .unwrap()
        .live_keys_in_scope(kind, "", None)
        .unwrap()
        .into_iter()
        .collect();
    keys.sort();
    keys
}

/// A `kind: List` only upserts, unless `--relist`: then it is a relist of the kinds it holds
/// within `--cluster`, as the watch applies one (a deletion made while nothing watched is
/// seen). Kinds the List does not hold, and other clusters, are never touched.
#[test]
fn a_list_upserts_and_with_relist_deletes_what_it_no_longer_holds() {
    use accessdrift::domain::FactKind::{ClusterRoleBinding, ServiceAccount};
    for relist in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ad.db");
        let day1 = dir.path().join("day1.json");
        std::fs::write(
            &day1,
            list(&[
                crb_item("a"),
                crb_item("b"),
                crb_item("c"),
                sa_item("ns", "builder"),
            ]),
        )
        .unwrap();
        let other = dir.path().join("other-cluster.json");
        std::fs::write(&other, list(&[crb_item("c")])).unwrap();
        let day2 = dir.path().join("day2.json");
        std::fs::write(&day2, list(&[crb_item("a"), crb_item("b")])).unwrap();
        for (file, cluster) in [(&day1, "aks"), (&other, "aks-dev")] {
            let o = replay(&db, file, &["--cluster", cluster]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        let mut extra = vec!["--cluster", "aks", "--json"];
        if relist {
            extra.push("--relist");
        }
        let o = replay(&db, &day2, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let want: &[&str] = if relist {
            &["aks-dev/c", "aks/a", "aks/b"]
        } else {
            &["aks-dev/c", "aks/a", "aks/b", "aks/c"]
        };
        assert_eq!(live_keys(&db, ClusterRoleBinding), want, "relist={relist}");
        // The ServiceAccount kind is not in day 2's List: untouched either way.
        assert_eq!(
            live_keys(&db, ServiceAccount),
            ["aks/ns/builder"],
            "relist={relist}"
        );
        // Replaying the same file again reads nothing and deletes nothing more.
        let o = replay(&db, &day2, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            live_keys(&db, ClusterRoleBinding),
            want,
            "relist={relist}, again"
        );
    }
}

/// A List read with a malformed item is not the whole List: `--relist` deletes nothing for
/// it, says so, and fails `--strict`.
#[test]
fn relist_of_a_list_with_a_malformed_item_deletes_nothing_and_says_so() {
    use accessdrift::domain::FactKind::ClusterRoleBinding;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ad.db");
    let day1 = dir.path().join("day1.json");
    std::fs::write(&day1, list(&[crb_item("a"), crb_item("b")])).unwrap();
    let o = replay(&db, &day1, &["--cluster", "aks"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut broken = crb_item("b");
    broken["roleRef"] = Value::Null;
    let day2 = dir.path().join("day2.json");
    std::fs::write(&day2, list(&[crb_item("a"), broken])).unwrap();
    let o = replay(&db, &day2, &["--cluster", "aks", "--relist", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("--relist not applied (1 malformed record(s))"),
        "{}",
        text(&o)
    );
    assert_eq!(live_keys(&db, ClusterRoleBinding), ["aks/a", "aks/b"]);
}
