//! The CLI contract scripts rely on, run as a real process.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn unreadable_file_fails_clearly_and_applies_nothing() {
    let env = Env::new();
    let [a, b, c] = owner_grant("x", "ra", "p", 3);
    let good = env.write("good.json", &[envelope(&[&a, &b, &c])]);
    let db = env.db();
    let o = ad(&[
        "replay",
        "--db",
        db.to_str().unwrap(),
        good.to_str().unwrap(),
        "/nonexistent/day2.json",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("/nonexistent/day2.json") && t.contains("No such file"),
        "{t}"
    );
    assert!(
        env.store().read().unwrap().facts().unwrap().is_empty(),
        "nothing applied when any input is unreadable"
    );
}

#[test]
fn replay_findings_json_and_baseline_round_trip() {
    let env = Env::new();
    let db = env.db();
    let db = db.to_str().unwrap();
    let [a, b, c] = owner_grant("x1", "ra1", "p1", 2);
    let day1 = env.write("d1.json", &[envelope(&[&a, &b, &c])]);
    let o = ad(&["replay", "--db", db, day1.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no baseline yet"), "{}", text(&o));
    assert!(ad(&["baseline", "capture", "--db", db, "--by", "lead"])
        .status
        .success());

    let [a, b, c] = owner_grant("x2", "ra2", "p2", 3);
    let day2 = env.write("d2.json", &[envelope(&[&a, &b, &c]), "{oops".into()]);
    let o = ad(&["replay", "--db", db, "--json", day2.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "malformed records do not fail the run: {}",
        text(&o)
    );
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["findings"]["opened"], 1);
    assert_eq!(summary["malformed"][0]["line"], 2);

    let o = ad(&["findings", "--db", db, "--json"]);
    let arr: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &arr[0];
    for field in [
        "id",
        "kind",
        "rule",
        "severity",
        "status",
        "fact_kind",
        "fact_key",
        "change",
        "expected",
        "actual",
        "actor",
        "correlation_id",
        "first_seen",
        "last_seen",
    ] {
        assert!(f.get(field).is_some(), "findings --json lacks {field}: {f}");
    }
    assert_eq!(
        (
            f["kind"].as_str(),
            f["change"].as_str(),
            f["severity"].as_str()
        ),
        (Some("drift"), Some("unapproved"), Some("critical"))
    );
    assert_eq!(f["actor"]["upn"], "mallory@contoso.com");
    assert_eq!(f["actor"]["ip"], "198.51.100.77");
    let table = text(&ad(&["findings", "--db", db]));
    assert!(
        table.contains("Unapproved role assignment Owner"),
        "{table}"
    );

    // Export is stable; approving the finding changes the export; import restores it.
    let export1 = env.dir.path().join("b1.json");
    assert!(
        ad(&["baseline", "export", "--db", db, export1.to_str().unwrap()])
            .status
            .success()
    );
    let again = ad(&["baseline", "export", "--db", db]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        std::fs::read_to_string(&export1).unwrap(),
        "export is deterministic"
    );
    let id = f["id"].as_str().unwrap();
    let o = ad(&["baseline", "approve", "--db", db, "--by", "lead", &id[..6]]);
    assert!(o.status.success(), "{}", text(&o));
    let arr: Value =
        serde_json::from_slice(&ad(&["findings", "--db", db, "--json", "--status", "all"]).stdout)
            .unwrap();
    assert_eq!(arr[0]["status"], "approved");
    let o = ad(&[
        "baseline",
        "import",
        "--db",
        db,
        "--by",
        "lead",
        export1.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let arr: Value =
        serde_json::from_slice(&ad(&["findings", "--db", db, "--json"]).stdout).unwrap();
    assert_eq!(
        arr[0]["status"], "open",
        "importing the older baseline reopens the drift"
    );
    let diff = text(&ad(&["baseline", "diff", "--db", db]));
    assert!(
        diff.contains("+ unapproved role_assignment Owner"),
        "{diff}"
    );

    // A bad import names the entry and the field, and changes nothing.
    let bad = env.write("bad.json", &[r#"{"format": "accessdrift-baseline/v1", "entries": [{"kind": "role", "key": "k", "value": {}}, {"kind": "nope", "key": "k", "value": {}}]}"#.to_string()]);
    let o = ad(&["baseline", "import", "--db", db, bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("entries[1].kind"), "{}", text(&o));
}

#[test]
fn approving_an_activity_finding_points_to_ack() {
    let env = Env::new();
    let db = env.db();
    let db = db.to_str().unwrap();
    let list = "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";
    let f = env.write(
        "l.json",
        &[Rec::new(list, &cluster_id(), "Success", "l1", "2026-11-03T00:00:00Z").line()],
    );
    assert!(ad(&["replay", "--db", db, f.to_str().unwrap()])
        .status
        .success());
    let arr: Value =
        serde_json::from_slice(&ad(&["findings", "--db", db, "--json"]).stdout).unwrap();
    let id = arr[0]["id"].as_str().unwrap().to_string();
    let o = ad(&["baseline", "approve", "--db", db, &id]);
    assert!(!o.status.success());
    assert!(text(&o).contains("accessdrift ack"), "{}", text(&o));
    assert!(ad(&["ack", "--db", db, "--by", "oncall", &id])
        .status
        .success());
    let arr: Value =
        serde_json::from_slice(&ad(&["findings", "--db", db, "--json"]).stdout).unwrap();
    assert_eq!(arr[0]["status"], "acknowledged");
    let o = ad(&["notify", "--db", db, "--once"]);
    assert!(
        text(&o).contains("Cluster admin credential listed on aks"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("delivered 1"), "{}", text(&o));
    assert!(
        text(&ad(&["notify", "--db", db, "--once"])).contains("delivered 0"),
        "delivered alerts leave the outbox"
    );
}

#[test]
fn bad_config_names_key_and_line() {
    let env = Env::new();
    let cfg = env.write(
        "bad.toml",
        &[
            "[pipeline]".into(),
            "batch_size = 10".into(),
            "pendingttl = \"1h\"".into(),
        ],
    );
    let o = ad(&["--config", cfg.to_str().unwrap(), "check-config"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("pendingttl") && t.contains("line 3") && t.contains("bad.toml"),
        "{t}"
    );
}

#[test]
fn every_example_config_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let loaded = accessdrift::config::Config::load(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let o = ad(&["--config", p.to_str().unwrap(), "check-config"]);
            assert!(o.status.success(), "{}", text(&o));
            // What check-config prints is itself a valid config, equal to the file's.
            let printed = String::from_utf8(o.stdout).unwrap();
            let reread =
                accessdrift::config::Config::parse(&printed, std::path::Path::new("output"))
                    .unwrap_or_else(|e| panic!("{}: check-config output: {e}", p.display()));
            assert_eq!(reread, loaded, "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 1, "no example config found in {dir}");
}

#[test]
fn help_teaches() {
    let t = text(&ad(&["--help"]));
    for word in [
        "replay",
        "baseline",
        "findings",
        "demo",
        "bench",
        "Typical first run",
    ] {
        assert!(t.contains(word), "--help lacks {word}: {t}");
    }
    let t = text(&ad(&["replay", "--help"]));
    assert!(t.contains("--cluster") && t.contains("checkpoint"), "{t}");
}

#[test]
fn reading_a_missing_database_is_an_error_not_an_empty_answer() {
    let env = Env::new();
    let db = env.dir.path().join("typo.db");
    let o = ad(&["findings", "--db", db.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no database at"), "{}", text(&o));
    assert!(!db.exists(), "a read must not create the file");
}
