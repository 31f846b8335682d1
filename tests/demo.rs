//! The README's first command, end to end, against a golden transcript people read.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test demo`.

use std::process::Command;

#[test]
fn demo_output_matches_golden() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_accessdrift"))
            .args(["demo", "--dir", "demo"])
            .current_dir(dir.path())
            .env_remove("ACCESSDRIFT_TEST_CRASH_AT")
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/demo.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &out).unwrap();
    }
    let want =
        std::fs::read_to_string(golden).expect("tests/golden/demo.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        out, want,
        "demo output changed; if intended, UPDATE_GOLDEN=1 cargo test --test demo"
    );
    // A second run starts from scratch and prints the same.
    let again = String::from_utf8(run().stdout).unwrap();
    assert_eq!(again, out, "demo is repeatable");
    for expect in [
        "mallory@contoso.com",
        "Owner",
        "disable_local_accounts: true → false",
        "Cluster admin credential listed",
    ] {
        assert!(out.contains(expect), "demo output lacks {expect:?}");
    }
}

#[test]
fn demo_never_deletes_or_overwrites_files_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |d: &str| {
        Command::new(env!("CARGO_BIN_EXE_accessdrift"))
            .args(["demo", "--dir", d])
            .current_dir(dir.path())
            .env_remove("ACCESSDRIFT_TEST_CRASH_AT")
            .output()
            .unwrap()
    };
    // Someone's real database, and someone's file with a sample file's name.
    let db = dir.path().join("accessdrift.db");
    std::fs::write(&db, b"not the demo's").unwrap();
    let o = demo(".");
    assert!(!o.status.success(), "demo --dir . over a foreign database");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("accessdrift.db") && err.contains("not written by `accessdrift demo`"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), b"not the demo's");
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    let sample = dir.path().join("mine/day1-activity.json");
    std::fs::write(&sample, b"[]").unwrap();
    assert!(!demo("mine").status.success());
    assert_eq!(std::fs::read(&sample).unwrap(), b"[]");

    // A directory the demo made is reused: its database is recreated, run after run.
    for _ in 0..2 {
        let o = demo("fresh");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
