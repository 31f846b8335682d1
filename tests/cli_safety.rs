//! The CLI as people and scripts use it, run as a real process: closed pipes, read-only
//! users, two processes on one fresh file, error messages, `--db` help, `check-config`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A database with findings and a baseline: the demo's, in `dir/demo`.
fn demo_db(dir: &Path) -> PathBuf {
    let demo = dir.join("demo");
    let o = ad(&["demo", "--dir", demo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    demo.join("accessdrift.db")
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly_with_141() {
    let env = Env::new();
    let db = demo_db(env.dir.path());
    let db = db.to_str().unwrap();
    let config = env.write("c.toml", &["[pipeline]".into(), "batch_size = 7".into()]);
    let [a, b, c] = owner_grant("x", "ra", "p", 3);
    let input = env.write("in.json", &[envelope(&[&a, &b, &c])]);
    let other_db = env.dir.path().join("other.db");
    let demo_dir = env.dir.path().join("demo2");
    let commands: Vec<Vec<&str>> = vec![
        vec!["findings", "--db", db],
        vec!["findings", "--db", db, "--json", "--status", "all"],
        vec!["baseline", "show", "--db", db],
        vec!["baseline", "diff", "--db", db],
        vec!["baseline", "export", "--db", db],
        vec!["--config", config.to_str().unwrap(), "check-config"],
        vec![
            "replay",
            "--db",
            other_db.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        vec!["demo", "--dir", demo_dir.to_str().unwrap()],
    ];
    for args in commands {
        // The reader is gone before the command writes a byte: every write gets EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = cmd(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?} must exit quietly: {stderr}"
        );
    }
}

#[test]
fn notify_into_a_closed_stdout_keeps_alerts_queued_and_uncounted() {
    let env = Env::new();
    let db = demo_db(env.dir.path());
    let db = db.to_str().unwrap();
    // The demo drained its alerts; a new Owner grant queues one more.
    let [a, b, c] = owner_grant("late", "ra-late", "p-late", 4);
    let input = env.write("late.json", &[envelope(&[&a, &b, &c])]);
    assert!(ad(&["replay", "--db", db, input.to_str().unwrap()])
        .status
        .success());
    let footer = |db: &str| {
        let o = ad(&["findings", "--db", db]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    // The grant opens a drift finding and policy findings: one alert each.
    let waiting = footer(db);
    assert!(
        waiting.contains("alerts waiting, 0 dead-lettered") && !waiting.contains("outbox: 0 "),
        "{waiting}"
    );
    // More runs than `notify.max_attempts` (8): a closed stdout must not use attempts up.
    for _ in 0..10 {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = cmd(&["notify", "--db", db, "--once"])
            .stdout(Stdio::from(writer))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{}", text(&o));
    }
    assert_eq!(
        footer(db),
        waiting,
        "nothing was delivered, retried or dead-lettered"
    );
    let n: String = waiting
        .split("outbox: ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let o = ad(&["notify", "--db", db, "--once"]);
    assert!(text(&o).contains(&format!("delivered {n}")), "{}", text(&o));
}

/// True when this process can write into a directory it made read-only (root can).
fn ignores_permissions(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let wrote = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    wrote
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_commands_work_for_a_user_who_cannot_write_the_database_or_its_directory() {
    let env = Env::new();
    let db = demo_db(env.dir.path());
    let dir = db.parent().unwrap().to_path_buf();
    let before = std::fs::read(&db).unwrap();
    set_mode(env.dir.path(), 0o755);
    set_mode(&db, 0o444);
    set_mode(&dir, 0o555);
    let root = ignores_permissions(&dir);
    // As root, permissions are not checked; run the commands as `nobody` when setpriv can,
    // otherwise the permission part of this test cannot be shown here.
    let setpriv = Path::new("/usr/bin/setpriv");
    if root && !setpriv.exists() {
        eprintln!("skipped: running as root without setpriv, permissions are not enforced");
        set_mode(&dir, 0o755);
        return;
    }
    let dbs = db.to_str().unwrap();
    for args in [
        vec!["findings", "--db", dbs],
        vec!["findings", "--db", dbs, "--json"],
        vec!["baseline", "show", "--db", dbs],
        vec!["baseline", "diff", "--db", dbs],
        vec!["baseline", "export", "--db", dbs],
    ] {
        let o = if root {
            Command::new(setpriv)
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
                .args(&args)
                .env_remove("ACCESSDRIFT_DB")
                .output()
                .unwrap()
        } else {
            ad(&args)
        };
        // `baseline diff` exits 1 when there is drift (issue 5, item 12): success here is
        // "no error message".
        let t = text(&o);
        assert!(
            !t.contains("error"),
            "{args:?} as a user without write access: {t}"
        );
        assert!(!o.stdout.is_empty(), "{args:?} printed nothing");
    }
    set_mode(&dir, 0o755);
    let after: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("accessdrift.db"))
        .collect();
    assert_eq!(after, ["accessdrift.db"], "a read creates no files");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "a read changes nothing"
    );
}

#[test]
fn a_read_command_refuses_a_database_it_would_have_to_migrate() {
    let env = Env::new();
    let empty = env.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let o = ad(&["findings", "--db", empty.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("schema version 0, older than this binary's") && t.contains("empty.db"),
        "{t}"
    );
    assert_eq!(std::fs::read(&empty).unwrap(), b"", "left untouched");
}

#[test]
fn processes_opening_one_fresh_database_at_once_all_succeed() {
    let env = Env::new();
    let [a, b, c] = owner_grant("x", "ra", "p", 3);
    let input = env.write("in.json", &[envelope(&[&a, &b, &c])]);
    for round in 0..12 {
        let db = env.dir.path().join(format!("fresh-{round}.db"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                cmd(&[
                    "replay",
                    "--db",
                    db.to_str().unwrap(),
                    input.to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for child in children {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let facts = env_store(&db).read().unwrap().facts().unwrap();
        assert_eq!(facts.len(), 1, "round {round}: the grant applied once");
    }
}

fn env_store(db: &Path) -> accessdrift::store::Store {
    accessdrift::store::Store::open(db).unwrap()
}

#[test]
fn errors_say_the_os_message_once() {
    let env = Env::new();
    let [a, b, c] = owner_grant("x", "ra", "p", 3);
    let input = env.write("in.json", &[envelope(&[&a, &b, &c])]);
    let input = input.to_str().unwrap();
    let db = env.db();
    let db = db.to_str().unwrap();
    let bad_config = env.write("bad.toml", &["[pipeline]".into(), "batchsize = 3".into()]);
    for (args, once) in [
        (
            vec!["replay", "--db", "/nonexistent-dir/x.db", input],
            "No such file or directory",
        ),
        (
            vec!["replay", "--db", db, "/nonexistent/day2.json"],
            "No such file or directory",
        ),
        (
            vec!["--config", "/nonexistent/ad.toml", "check-config"],
            "No such file or directory",
        ),
        (
            vec!["--config", bad_config.to_str().unwrap(), "check-config"],
            "unknown field `batchsize`",
        ),
    ] {
        let o = ad(&args);
        assert!(!o.status.success(), "{args:?}");
        let t = text(&o);
        assert_eq!(t.matches(once).count(), 1, "{args:?}: {t}");
        if once.starts_with("No such file") {
            assert_eq!(t.lines().count(), 1, "{args:?}: one line: {t}");
        }
    }
    let o = ad(&["replay", "--db", "/nonexistent-dir/x.db", input]);
    assert!(text(&o).contains("/nonexistent-dir"), "{}", text(&o));
}

#[test]
fn db_help_says_created_if_missing_only_where_it_is() {
    for args in [&["replay", "--help"][..], &["baseline", "import", "--help"]] {
        let t = text(&ad(args));
        assert!(t.contains("created if missing"), "{args:?}: {t}");
    }
    for args in [
        &["findings", "--help"][..],
        &["ack", "--help"],
        &["notify", "--help"],
        &["baseline", "show", "--help"],
        &["baseline", "diff", "--help"],
        &["baseline", "export", "--help"],
        &["baseline", "capture", "--help"],
        &["baseline", "approve", "--help"],
    ] {
        let t = text(&ad(args));
        assert!(!t.contains("created if missing"), "{args:?}: {t}");
        assert!(t.contains("must exist"), "{args:?}: {t}");
    }
}

#[test]
fn check_config_prints_toml_that_reads_back_to_the_same_config() {
    let env = Env::new();
    let cfg = env.write(
        "c.toml",
        &[
            "[pipeline]".into(),
            "batch_size = 7".into(),
            "pending_ttl = \"90m\"".into(),
            "[notify]".into(),
            "initial_backoff = \"1500ms\"".into(),
            "[[clusters]]".into(),
            "name = \"aks-prod\"".into(),
            format!("resource_id = \"{}\"", cluster_id()),
            "[role_names]".into(),
            "\"11111111-2222-3333-4444-555555555555\" = \"AKS Credential Reader\"".into(),
        ],
    );
    let o = ad(&["--config", cfg.to_str().unwrap(), "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    assert!(
        printed.contains("pending_ttl = \"1h 30m\"") && printed.contains("1s 500ms"),
        "durations in humantime form: {printed}"
    );
    let loaded = accessdrift::config::Config::load(&cfg).unwrap();
    let reread = accessdrift::config::Config::parse(&printed, Path::new("check-config output"))
        .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(reread, loaded);
}
