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
