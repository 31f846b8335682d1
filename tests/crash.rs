//! Crash consistency: kill the replay process at many points; the rerun must end in exactly
//! the state of an uninterrupted run (facts, baseline, findings, pending phases, outbox).
//! The binary has the crash hook in debug builds or with `--features test-crash` (see
//! src/pipeline/crash.rs); an optimised build without the feature has none to test.
#![cfg(any(debug_assertions, feature = "test-crash"))]

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

struct Scenario {
    dir: tempfile::TempDir,
    config: PathBuf,
    day2: Vec<PathBuf>,
    base_db: PathBuf,
}

fn run(config: &Path, db: &Path, args: &[&str], crash: Option<&str>) -> std::process::ExitStatus {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(config)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.env_remove("ACCESSDRIFT_TEST_CRASH_AT");
    if let Some(at) = crash {
        c.env("ACCESSDRIFT_TEST_CRASH_AT", at);
    }
    c.status().unwrap()
}

fn replay_args(files: &[PathBuf]) -> Vec<String> {
    let mut a = vec![
        "replay".to_string(),
        "--cluster".to_string(),
        "c1".to_string(),
    ];
    a.extend(files.iter().map(|f| f.display().to_string()));
    a
}

fn replay(s: &Scenario, db: &Path, crash: Option<&str>) -> std::process::ExitStatus {
    let args = replay_args(&s.day2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&s.config, db, &args, crash)
}

/// Day 1 and a captured baseline, saved once; day 2 has ~60 observations in batches of 4,
/// with phases split across batches and files, duplicates, a failure and Kubernetes churn.
fn scenario() -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let config = p("c.toml");
    std::fs::write(&config, "[pipeline]\nbatch_size = 4\n").unwrap();

    let mut day1 = Vec::new();
    for i in 0..6 {
        let [a, b, c] = owner_grant(
            &format!("d1-{i}"),
            &format!("ra{i}"),
            &format!("00000000-0000-4000-8000-00000000000{i}"),
            2,
        );
        day1.push(envelope(&[&a, &b, &c]));
    }
    for i in 0..4 {
        day1.push(watch(
            "ADDED",
            &crb(
                &format!("b{i}"),
                "view",
                ("Group", &format!("g{i}")),
                "1",
                "2026-11-02T00:00:00Z",
            ),
        ));
    }
    std::fs::write(p("day1.json"), day1.join("\n")).unwrap();

    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..8 {
        let [s, ac, su] = owner_grant(
            &format!("d2-{i}"),
            &format!("rb{i}"),
            &format!("10000000-0000-4000-8000-00000000000{i}"),
            3,
        );
        if i % 2 == 0 {
            // Success in the first file, Start with its body only in the second.
            a.push(envelope(&[&su, &ac]));
            b.push(s.line());
        } else {
            a.push(envelope(&[&s, &ac, &su, &su]));
        }
    }
    let del = Rec::new(
        "Microsoft.Authorization/roleAssignments/delete",
        &assignment_id("ra1"),
        "Success",
        "del-1",
        "2026-11-03T11:00:00Z",
    );
    let [fs, _, _] = owner_grant("fail-1", "rf", "20000000-0000-4000-8000-000000000000", 3);
    let mut fail = fs.clone();
    fail.v["resultType"] = json!("Failure");
    a.push(envelope(&[&del, &fs, &fail]));
    let list = "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";
    for i in 0..3 {
        a.push(
            Rec::new(
                list,
                &cluster_id(),
                "Success",
                &format!("l{i}"),
                "2026-11-03T12:00:00Z",
            )
            .line(),
        );
    }
    for i in 0..4 {
        b.push(watch(
            "MODIFIED",
            &crb(
                &format!("b{i}"),
                "view",
                ("Group", &format!("g{i}")),
                "2",
                "2026-11-03T01:00:00Z",
            ),
        ));
        b.push(watch(
            "MODIFIED",
            &crb(
                &format!("b{i}"),
                "cluster-admin",
                ("User", "mallory@contoso.com"),
                "3",
                "2026-11-03T02:00:00Z",
            ),
        ));
    }
    b.push(watch(
        "DELETED",
        &crb(
            "b0",
            "cluster-admin",
            ("User", "mallory@contoso.com"),
            "4",
            "2026-11-03T03:00:00Z",
        ),
    ));
    b.push("{\"type\": \"ADDED\", \"object\": ".to_string());
    std::fs::write(p("day2a.json"), a.join("\n")).unwrap();
    std::fs::write(p("day2b.ndjson"), b.join("\n")).unwrap();

    let base_db = p("base.db");
    assert!(run(
        &config,
        &base_db,
        &[
            "replay",
            "--cluster",
            "c1",
            p("day1.json").to_str().unwrap()
        ],
        None
    )
    .success());
    assert!(run(
        &config,
        &base_db,
        &["baseline", "capture", "--by", "test"],
        None
    )
    .success());
    assert!(
        !Path::new(&format!("{}-wal", base_db.display())).exists()
            || std::fs::metadata(format!("{}-wal", base_db.display()))
                .unwrap()
                .len()
                == 0
    );
    Scenario {
        config,
        day2: vec![p("day2a.json"), p("day2b.ndjson")],
        base_db,
        dir,
    }
}

fn fresh_copy(s: &Scenario, name: &str) -> PathBuf {
    let db = s.dir.path().join(name);
    std::fs::copy(&s.base_db, &db).unwrap();
    db
}

#[test]
fn killed_replays_rerun_to_the_uninterrupted_state() {
    let s = scenario();
    let reference_db = fresh_copy(&s, "reference.db");
    assert!(replay(&s, &reference_db, None).success());
    let reference = dump(&reference_db);
    assert!(
        reference.contains("AKS-ADMIN-CREDENTIAL-USED"),
        "the scenario must produce findings"
    );
    assert!(reference.contains("opened"), "and outbox rows");

    let points = [
        "1:facts",
        "1:before_commit",
        "1:after_commit",
        "2:findings",
        "3:facts",
        "4:before_commit",
        "5:findings",
        "7:after_commit",
        "9:facts",
        "10:findings",
        "12:before_commit",
    ];
    for (i, point) in points.iter().enumerate() {
        let db = fresh_copy(&s, &format!("crash{i}.db"));
        let status = replay(&s, &db, Some(point));
        assert!(
            !status.success(),
            "{point}: the process should have been killed"
        );
        // A second crash during the rerun, then a clean finish.
        let again = replay(&s, &db, Some("1:findings"));
        assert!(!again.success(), "{point}: second crash");
        assert!(replay(&s, &db, None).success(), "{point}: rerun");
        assert_eq!(
            dump(&db),
            reference,
            "state after crash at {point} differs from an uninterrupted run"
        );
    }
}

#[test]
fn sigkill_at_arbitrary_moments_is_harmless() {
    let s = scenario();
    let reference_db = fresh_copy(&s, "reference.db");
    assert!(replay(&s, &reference_db, None).success());
    let reference = dump(&reference_db);
    // Whenever the kill lands (before, during or after the run), the rerun converges.
    for (i, delay_ms) in [0u64, 5, 15, 40].into_iter().enumerate() {
        let db = fresh_copy(&s, &format!("kill{i}.db"));
        let args = replay_args(&s.day2);
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&s.config)
            .args(&args)
            .arg("--db")
            .arg(&db)
            .env_remove("ACCESSDRIFT_TEST_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "killed child did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(replay(&s, &db, None).success());
        assert_eq!(
            dump(&db),
            reference,
            "state after kill at {delay_ms} ms differs"
        );
    }
}
