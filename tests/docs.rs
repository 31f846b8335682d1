//! The docs stay true: `docs/rules.md` is what `rules --json` says (regenerate with
//! `ACCESSDRIFT_UPDATE_DOCS=1 cargo test --test docs`), every configuration key has an entry
//! in `docs/configuration.md`, and the README stays a page a newcomer reads.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docs/rules.md` from the catalogue as `rules --json` prints it with no config.
fn render_rules(rules: &[Value]) -> String {
    let mut out = String::from(
        "# Rules\n\n<!-- Generated from `accessdrift rules --json` by tests/docs.rs: do not edit by hand.\n     Regenerate with `ACCESSDRIFT_UPDATE_DOCS=1 cargo test --test docs`. -->\n\n\
         Every rule judges the observed state whether or not it was approved. `[rules.ID]` in the\n\
         config turns one off (`enabled = false`) or changes its severity; `[[exceptions]]` accept a\n\
         risk for matching subjects until an expiry. `accessdrift rules explain ID` prints one rule\n\
         with the configuration applied.\n\n| id | severity | title |\n| --- | --- | --- |\n",
    );
    for r in rules {
        out.push_str(&format!(
            "| [`{id}`](#{anchor}) | {sev} | {title} |\n",
            id = r["id"].as_str().unwrap(),
            anchor = r["id"].as_str().unwrap().to_ascii_lowercase(),
            sev = r["default_severity"].as_str().unwrap(),
            title = r["title"].as_str().unwrap(),
        ));
    }
    let mut group = "";
    for r in rules {
        let g = r["group"].as_str().unwrap();
        if g != group {
            group = g;
            out.push_str(&format!("\n## {}\n", g.replace('_', " ")));
        }
        out.push_str(&format!(
            "\n### {}\n\n{} (default severity **{}**; subjects: {})\n\n{}\n\nRemediation: `{}`\n",
            r["id"].as_str().unwrap(),
            r["title"].as_str().unwrap(),
            r["default_severity"].as_str().unwrap(),
            r["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("`{}`", s.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(", "),
            r["rationale"].as_str().unwrap(),
            r["remediation"].as_str().unwrap(),
        ));
        let refs = r["references"].as_array().unwrap();
        if !refs.is_empty() {
            out.push_str("\nReferences:\n");
            for u in refs {
                out.push_str(&format!("- <{}>\n", u.as_str().unwrap()));
            }
        }
    }
    out
}

#[test]
fn rules_md_is_generated_from_the_catalogue_and_not_stale() {
    let out = std::process::Command::new(BIN)
        .args(["rules", "--json"])
        .env_remove("ACCESSDRIFT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let rules: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rules.len() >= 23, "{}", rules.len());
    let want = render_rules(&rules);
    let path = root().join("docs/rules.md");
    if std::env::var_os("ACCESSDRIFT_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "docs/rules.md is stale: regenerate it with `ACCESSDRIFT_UPDATE_DOCS=1 cargo test --test docs`"
    );
}

/// `pub` fields of the serde structs in the config sources.
fn config_fields() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in ["mod.rs", "daemon.rs", "sinks.rs", "rules.rs"] {
        let text = std::fs::read_to_string(root().join("src/config").join(f)).unwrap();
        let mut in_serde_struct = false;
        let mut derive_deser = false;
        // `#[serde(rename = "type")]` on the line before a field: the key is the new name.
        let mut rename: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(r) = t
                .strip_prefix("#[serde(rename = \"")
                .and_then(|r| r.split('"').next())
            {
                rename = Some(r.to_string());
                continue;
            }
            if t.starts_with("#[derive(") {
                derive_deser = t.contains("Deserialize");
            }
            if t.starts_with("pub struct ") && t.ends_with('{') {
                in_serde_struct = derive_deser;
                continue;
            }
            if t == "}" {
                in_serde_struct = false;
            }
            if !t.starts_with("#[") && !t.starts_with("///") {
                rename = rename.filter(|_| t.starts_with("pub "));
            }
            if in_serde_struct && !t.starts_with("//") {
                if let Some(rest) = t.strip_prefix("pub ") {
                    if let Some((name, _)) = rest.split_once(':') {
                        out.insert(rename.take().unwrap_or_else(|| name.trim().to_string()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_configuration_key_has_an_entry_in_configuration_md() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    // Keys are written as their dotted paths in backticks: `pipeline.batch_size`,
    // `sinks[].min_severity`, `rules.<ID>.severity`.
    let documented: BTreeSet<String> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.contains(' ') && k.contains('.'))
        .filter_map(|k| k.rsplit('.').next().map(str::to_string))
        .collect();
    let fields = config_fields();
    assert!(
        fields.len() >= 40,
        "only {} fields found: {fields:?}",
        fields.len()
    );
    // Top-level tables are documented by their tables' keys.
    let tables = [
        "store",
        "pipeline",
        "clusters",
        "severity",
        "notify",
        "role_names",
        "kubernetes",
        "eventhubs",
        "azure",
        "server",
        "rules",
        "exceptions",
        "sinks",
    ];
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !documented.contains(*f) && !tables.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys without an entry in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_readme_is_a_page_a_newcomer_reads_and_links_the_docs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 210,
        "{} lines",
        readme.lines().count()
    );
    for cmd in ["cargo run --locked -- demo", "cargo test --locked"] {
        assert!(readme.contains(cmd), "the README lost `{cmd}`");
    }
    for doc in [
        "architecture.md",
        "configuration.md",
        "rules.md",
        "alerts.md",
        "operations.md",
        "cli.md",
    ] {
        assert!(
            readme.contains(&format!("docs/{doc}")),
            "no link to docs/{doc}"
        );
        assert!(
            root().join("docs").join(doc).exists(),
            "docs/{doc} is missing"
        );
    }
}

#[test]
fn every_prometheus_alert_has_a_runbook_entry() {
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/base/prometheusrule.yaml")).unwrap(),
    )
    .unwrap();
    for g in rules["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let name = r["alert"].as_str().unwrap();
            assert!(
                ops.lines().any(|l| l.starts_with('#') && l.contains(name)),
                "docs/operations.md has no runbook heading for {name}"
            );
        }
    }
}
