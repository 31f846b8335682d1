//! `accessdrift rules` and the rules scenario: Activity Log and two clusters' Kubernetes
//! objects replayed together make every rule fire; the finding list is checked in.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test rules_cli`.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_accessdrift"))
        .args(args)
        .current_dir(dir)
        .env_remove("ACCESSDRIFT_CONFIG")
        .env_remove("ACCESSDRIFT_DB")
        .env_remove("ACCESSDRIFT_TEST_CRASH_AT")
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn catalogue_ids() -> Vec<&'static str> {
    accessdrift::engine::rules::CATALOGUE
        .iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn rules_lists_the_catalogue_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let table = ok(run(dir.path(), &["rules"]));
    for id in catalogue_ids() {
        assert!(table.contains(id), "table lacks {id}");
    }
    assert!(table.contains("X-FIC-TO-CLUSTER-ADMIN            critical  yes      cross-plane"));
    let json: Vec<Value> =
        serde_json::from_str(&ok(run(dir.path(), &["rules", "--json"]))).unwrap();
    let ids: Vec<&str> = json.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, catalogue_ids());
    for r in &json {
        for field in ["title", "severity", "rationale", "remediation"] {
            assert!(
                r[field].as_str().is_some_and(|s| !s.is_empty()),
                "{} lacks {field}",
                r["id"]
            );
        }
        assert!(
            !r["references"].as_array().unwrap().is_empty(),
            "{}",
            r["id"]
        );
    }
}

#[test]
fn rules_explain_prints_one_rule_and_the_configuration_applied_to_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[rules.K8S-USER-SUBJECT]\nseverity = \"high\"\n\n[[exceptions]]\nrule = \"K8S-USER-SUBJECT\"\nmatch = \"aks-prod/alice-*\"\nreason = \"break-glass, CHG-1234\"\nexpires = \"2001-01-01\"\n",
    )
    .unwrap();
    let out = ok(run(
        dir.path(),
        &["--config", "c.toml", "rules", "explain", "k8s-user-subject"],
    ));
    assert!(
        out.starts_with("K8S-USER-SUBJECT — A user is bound by name"),
        "{out}"
    );
    assert!(
        out.contains("severity:    high (default low, set in [rules.K8S-USER-SUBJECT])"),
        "{out}"
    );
    assert!(
        out.contains("Remediation\n  kubectl edit the binding"),
        "{out}"
    );
    assert!(
        out.contains("aks-prod/alice-* — break-glass, CHG-1234 (expires 2001-01-01, expired)"),
        "{out}"
    );
    let table = ok(run(dir.path(), &["--config", "c.toml", "rules"]));
    assert!(
        table.contains("K8S-USER-SUBJECT                  high*"),
        "{table}"
    );
    let bad = run(dir.path(), &["rules", "explain", "AKS-NOPE"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no rule \"AKS-NOPE\"") && err.contains("AKS-LOCAL-ACCOUNTS"),
        "{err}"
    );
}

#[test]
fn a_bad_rules_configuration_names_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key, hint) in [
        ("[rules.AKS-LOCAL-ACCOUNT]\nenabled = false\n", "rules.AKS-LOCAL-ACCOUNT", "accessdrift rules"),
        ("[rules.AKS-LOCAL-ACCOUNTS]\nseverity = \"urgent\"\n", "severity", "critical"),
        ("[[exceptions]]\nrule = \"K8S-USER-SUBJECT\"\nmatch = \"*\"\nreason = \"x\"\nexpires = \"31/03/2027\"\n", "exceptions[0].expires", "YYYY-MM-DD"),
        ("[[exceptions]]\nrule = \"K8S-USER-SUBJECT\"\nmatch = \"*\"\nreason = \"\"\n", "exceptions[0].reason", "why"),
        ("[rules.K8S-USER-SUBJECT]\nallowed_roles = [\"x\"]\n", "rules.K8S-USER-SUBJECT.allowed_roles", "ID-KUBELET-EXCESS-ROLES"),
    ] {
        std::fs::write(dir.path().join("c.toml"), text).unwrap();
        let o = run(dir.path(), &["--config", "c.toml", "rules"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(err.contains(key) && err.contains(hint), "{text} → {err}");
    }
}

#[test]
fn the_scenario_fires_every_rule_and_matches_the_expected_findings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{FIXTURES}/config.toml");
    let replay = |db: &str, cluster: &str, file: &str| {
        let path = format!("{FIXTURES}/{file}");
        ok(run(
            dir.path(),
            &[
                "--config",
                &cfg,
                "replay",
                "--db",
                db,
                "--cluster",
                cluster,
                &path,
            ],
        ));
    };
    let findings = |db: &str| -> Vec<Value> {
        serde_json::from_str(&ok(run(
            dir.path(),
            &["findings", "--db", db, "--status", "all", "--json"],
        )))
        .unwrap()
    };
    replay("t.db", "aks-prod", "activity.json");
    replay("t.db", "aks-prod", "k8s-prod.json");
    replay("t.db", "aks-stg", "k8s-staging.json");
    let json = findings("t.db");
    let out = lines(&json);
    let expected = format!("{FIXTURES}/expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected, &out).unwrap();
    }
    let want = std::fs::read_to_string(&expected)
        .expect("tests/fixtures/rules/expected.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        out, want,
        "findings changed; if intended, UPDATE_GOLDEN=1 cargo test --test rules_cli"
    );
    for id in catalogue_ids() {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{id} "))),
            "the scenario never fires {id}"
        );
    }
    // Replaying everything again changes nothing.
    replay("t.db", "aks-prod", "activity.json");
    assert_eq!(findings("t.db").len(), json.len());
    // The Kubernetes plane first, then the Azure plane: the same findings.
    replay("r.db", "aks-stg", "k8s-staging.json");
    replay("r.db", "aks-prod", "k8s-prod.json");
    replay("r.db", "aks-prod", "activity.json");
    assert_eq!(
        lines(&findings("r.db")),
        out,
        "plane order changed the findings"
    );
}

fn lines(json: &[Value]) -> String {
    let mut lines: Vec<String> = json
        .iter()
        .filter(|f| f["kind"] != "drift")
        .map(|f| {
            format!(
                "{:<33} {:<9} {:<6} {} | {}",
                f["rule"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["status"].as_str().unwrap(),
                f["fact_key"].as_str().unwrap(),
                f["title"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}
