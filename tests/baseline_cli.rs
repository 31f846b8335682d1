//! `accessdrift baseline …` and `ack` as scripts use them: exit codes, printed text, JSON.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn ok(args: &[&str]) -> Output {
    let o = ad(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Day 1 replayed and captured by `lead`, day 2 replayed: returns the env, db path and the
/// open Owner drift finding (as `findings --json` shows it).
fn two_days() -> (Env, String, Value) {
    let env = Env::new();
    let db = p(&env.db()).to_string();
    let mut args = vec!["replay", "--db", &db, "--cluster", "c1"];
    let day1 = baseline_day1(&env);
    args.extend(day1.iter().map(|f| p(f)));
    ok(&args);
    ok(&["baseline", "capture", "--db", &db, "--by", "lead"]);
    let day2 = baseline_day2(&env);
    ok(&["replay", "--db", &db, "--cluster", "c1", p(&day2)]);
    let f = findings(&db, "open")
        .into_iter()
        .next()
        .expect("one open finding");
    (env, db, f)
}

fn findings(db: &str, status: &str) -> Vec<Value> {
    let o = ok(&["findings", "--db", db, "--json", "--status", status]);
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
}

fn status_of(db: &str, id: &str) -> String {
    findings(db, "all")
        .into_iter()
        .find(|f| f["id"] == id)
        .map(|f| f["status"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn approve_percent_is_not_a_wildcard() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    for pattern in ["%", "%%%%", "____", &format!("{}%", &id[..4])] {
        let o = ad(&["baseline", "approve", "--db", &db, "--by", "x", pattern]);
        assert!(!o.status.success(), "{pattern}: {}", text(&o));
        assert!(!text(&o).contains("approved "), "{pattern}: {}", text(&o));
    }
    assert_eq!(status_of(&db, id), "open");
}

#[test]
fn several_ids_apply_all_or_none_and_print_only_what_committed() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    for cmd in [&["baseline", "approve"][..], &["ack"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--db", &db, "--by", "lead", id, "ffffffffffff"]);
        let o = ad(&args);
        assert!(!o.status.success(), "{cmd:?}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains(id),
            "{cmd:?} printed success for a rolled-back id: {out}"
        );
        assert!(
            text(&o).contains("ffffffffffff"),
            "names the bad id: {}",
            text(&o)
        );
        assert_eq!(status_of(&db, id), "open", "{cmd:?}");
    }
}

#[test]
fn ack_of_an_acknowledged_finding_exits_zero_and_says_so() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    let o = ok(&["ack", "--db", &db, "--by", "oncall", id]);
    assert!(
        text(&o).contains(&format!("acknowledged {id}")),
        "{}",
        text(&o)
    );
    let o = ok(&["ack", "--db", &db, "--by", "oncall", &id[..6]]);
    assert!(
        text(&o).contains(&format!("already acknowledged {id}")),
        "{}",
        text(&o)
    );
}

#[test]
fn approve_with_a_stale_revision_is_refused() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    let rev = f["revision"]
        .as_u64()
        .expect("findings --json has a revision");
    assert_eq!(rev, 1);
    ok(&["ack", "--db", &db, "--by", "oncall", id]);
    let o = ad(&["baseline", "approve", "--db", &db, "--revision", "1", id]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("revision 2, not 1"), "{}", text(&o));
    let o = ok(&[
        "baseline",
        "approve",
        "--db",
        &db,
        "--by",
        "lead",
        "--revision",
        "2",
        id,
    ]);
    assert!(text(&o).contains(&format!("approved {id}")), "{}", text(&o));
    assert_eq!(status_of(&db, id), "approved");
}

#[test]
fn diff_exits_1_on_drift_names_the_finding_and_has_json() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    let o = ad(&["baseline", "diff", "--db", &db]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(id), "{}", text(&o));
    let o = ad(&["baseline", "diff", "--db", &db, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], 1);
    let d = &v["differences"][0];
    assert_eq!(
        (
            d["change"].as_str(),
            d["finding_id"].as_str(),
            d["finding_status"].as_str()
        ),
        (Some("unapproved"), Some(id), Some("open"))
    );
    assert_eq!(d["actual"], f["actual"]);

    ok(&["baseline", "approve", "--db", &db, "--by", "lead", id]);
    let o = ad(&["baseline", "diff", "--db", &db, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = ad(&["baseline", "diff", "--db", "/nonexistent/x.db"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "errors are not drift: {}",
        text(&o)
    );
}

#[test]
fn import_of_a_hand_edited_export_shows_no_drift_and_records_the_importer() {
    let env = Env::new();
    let db = p(&env.db()).to_string();
    let mut args = vec!["replay", "--db", &db, "--cluster", "c1"];
    let day1 = baseline_day1(&env);
    args.extend(day1.iter().map(|f| p(f)));
    ok(&args);
    ok(&["baseline", "capture", "--db", &db, "--by", "lead"]);
    let o = ok(&["baseline", "export", "--db", &db]);
    let mut file: Value = serde_json::from_slice(&o.stdout).unwrap();
    for e in file["entries"].as_array_mut().unwrap() {
        e["approved_by"] = json!("mallory");
        if e["kind"] == "role_assignment" {
            e["key"] = json!(e["key"].as_str().unwrap().to_uppercase());
            let v = e["value"]["principal_id"].as_str().unwrap().to_uppercase();
            e["value"]["principal_id"] = json!(v);
        } else {
            let s = e["value"]["subjects"].as_array_mut().unwrap();
            s.reverse();
            for x in s.iter_mut().filter(|x| x["kind"] == "Group") {
                x["name"] = json!(GROUP.to_uppercase());
            }
        }
    }
    let edited = env.write("edited.json", &[file.to_string()]);
    ok(&[
        "baseline",
        "import",
        "--db",
        &db,
        "--by",
        "reviewer",
        p(&edited),
    ]);
    let o = ad(&["baseline", "diff", "--db", &db]);
    assert!(
        text(&o).contains("0 differences"),
        "a canonically equal file is no drift: {}",
        text(&o)
    );
    let o = ok(&["baseline", "show", "--db", &db]);
    assert!(text(&o).contains("import by reviewer"), "{}", text(&o));
    assert!(!text(&o).contains("mallory"), "{}", text(&o));
}

#[test]
fn import_guards_mass_removal_and_dry_run_prints_the_diff() {
    let (env, db, _f) = two_days();
    let lone = env.write(
        "lone.json",
        &[json!({"format": "accessdrift-baseline/v1", "entries": [
            {"kind": "service_account", "key": "c1/ns/sa", "value": {"automount_token": false}}
        ]})
        .to_string()],
    );
    let before = dump(&env.db());
    let o = ad(&["baseline", "import", "--db", &db, p(&lone)]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("remove 2 of the 2") && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    let o = ok(&[
        "baseline",
        "import",
        "--db",
        &db,
        "--dry-run",
        "--force",
        p(&lone),
    ]);
    let t = text(&o);
    assert!(t.contains("+ add") && t.contains("c1/ns/sa"), "{t}");
    assert!(t.contains("- remove") && t.contains("c1/ops"), "{t}");
    assert!(t.contains("add 1, replace 0, remove 2"), "{t}");
    assert_eq!(
        dump(&env.db()),
        before,
        "refused and dry-run imports change nothing"
    );
    ok(&[
        "baseline",
        "import",
        "--db",
        &db,
        "--force",
        "--by",
        "lead",
        p(&lone),
    ]);
    assert_ne!(dump(&env.db()), before);
}

#[test]
fn export_of_a_database_without_a_baseline_fails() {
    let env = Env::new();
    let db = p(&env.db()).to_string();
    let files = baseline_day1(&env);
    ok(&["replay", "--db", &db, p(&files[0])]);
    let o = ad(&["baseline", "export", "--db", &db]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no baseline"), "{}", text(&o));
    assert!(o.stdout.is_empty(), "no file content on stdout");
}

#[test]
fn rollback_restores_a_version_and_reopens_what_it_unapproves() {
    let (_env, db, f) = two_days();
    let id = f["id"].as_str().unwrap();
    let v1 = ok(&["baseline", "export", "--db", &db]).stdout;
    ok(&["baseline", "approve", "--db", &db, "--by", "lead", id]);
    assert_eq!(status_of(&db, id), "approved");
    let o = ok(&["baseline", "rollback", "--db", &db, "--by", "oncall", "1"]);
    assert!(text(&o).contains("baseline version 3"), "{}", text(&o));
    assert_eq!(status_of(&db, id), "open");
    let show = text(&ok(&["baseline", "show", "--db", &db]));
    assert!(show.contains("rollback by oncall"), "{show}");
    let versions = text(&ok(&["baseline", "show", "--db", &db, "--versions"]));
    let lines: Vec<&str> = versions.lines().collect();
    assert_eq!(lines.len(), 3, "{versions}");
    assert!(lines[0].contains("capture  by lead"), "{versions}");
    assert!(lines[1].contains("approve  by lead"), "{versions}");
    assert!(
        lines[2].contains("rollback by oncall: to version 1"),
        "{versions}"
    );
    let now: Value =
        serde_json::from_slice(&ok(&["baseline", "export", "--db", &db]).stdout).unwrap();
    let then: Value = serde_json::from_slice(&v1).unwrap();
    let values = |v: &Value| -> Vec<Value> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["kind"], e["key"], e["value"]]))
            .collect()
    };
    assert_eq!(values(&now), values(&then));
    let o = ad(&["baseline", "rollback", "--db", &db, "9"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("version 9 does not exist"),
        "{}",
        text(&o)
    );
}
