//! `accessdrift baseline …`.

use super::{actor, CreateDbArg, DbArg};
use crate::config::Config;
use crate::domain::{EventTime, FactKind};
use crate::engine::{diff, FindingKind};
use crate::pipeline::{evaluate_fact, reevaluate_all, Stats};
use crate::store::{BaselineEntry, Store};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Format tag of exported baseline files.
pub const EXPORT_FORMAT: &str = "accessdrift-baseline/v1";

/// Baseline subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BaselineCmd {
    /// Approve everything observed now (present facts in, facts seen deleted out).
    Capture {
        #[command(flatten)]
        db: DbArg,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Why (kept in the baseline history).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List the approved facts.
    Show {
        #[command(flatten)]
        db: DbArg,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show how the observed state differs from the baseline, field by field.
    Diff {
        #[command(flatten)]
        db: DbArg,
    },
    /// Approve drift findings: their observed state becomes the baseline.
    Approve {
        #[command(flatten)]
        db: DbArg,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Finding ids (or unique prefixes of at least 4 characters).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Write the baseline as a stable, sorted JSON file to review and keep in git.
    Export {
        #[command(flatten)]
        db: DbArg,
        /// Output file (default: stdout).
        file: Option<PathBuf>,
    },
    /// Replace the baseline with a file made by `export`, in one transaction, and re-evaluate.
    Import {
        #[command(flatten)]
        db: CreateDbArg,
        /// Who imports (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The file.
        file: PathBuf,
    },
}

/// The exported file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    format: String,
    entries: Vec<ExportEntry>,
}

/// One approved fact in the exported file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEntry {
    kind: String,
    key: String,
    value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_finding: Option<String>,
}

fn print_stats(what: &str, version: i64, changed: usize, s: &Stats) {
    println!(
        "{what}: baseline version {version}, {changed} entries changed; findings: {} resolved as approved, {} opened, {} reopened; {} notifications queued",
        s.resolved, s.opened, s.reopened, s.notifications
    );
}

pub(super) fn run(cfg: &Config, cmd: BaselineCmd) -> anyhow::Result<ExitCode> {
    let sinks = vec!["stdout".to_string()];
    match cmd {
        BaselineCmd::Capture { db, by, note } => {
            let mut store = db.open_existing(cfg)?;
            let by = actor(&by);
            let (v, n, s) = capture(&mut store, cfg, &by, &note, &sinks)?;
            print_stats("captured", v, n, &s);
        }
        BaselineCmd::Show { db, json } => {
            let mut store = db.open_read_only(cfg)?;
            let tx = store.read()?;
            let entries = tx.baseline()?;
            let version = tx.baseline_version()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&export_file(&entries))?);
            } else {
                match version {
                    None => println!("no baseline yet: run `accessdrift baseline capture` or `baseline import FILE`"),
                    Some(v) => println!(
                        "baseline version {} ({} by {} at {}{}), {} entries",
                        v.version,
                        v.action,
                        v.actor,
                        v.created_at,
                        if v.note.is_empty() { String::new() } else { format!(": {}", v.note) },
                        entries.len()
                    ),
                }
                for e in &entries {
                    println!(
                        "{:<22} {}  [{} by {}]",
                        e.kind.as_str(),
                        describe(cfg, e.kind, &e.key, &e.value),
                        e.approved_at,
                        e.approved_by
                    );
                }
            }
        }
        BaselineCmd::Diff { db } => {
            let mut store = db.open_read_only(cfg)?;
            let tx = store.read()?;
            let mut n = 0;
            let facts = tx.facts()?;
            for f in &facts {
                let base = tx.baseline_value(f.kind, &f.key)?;
                let line = match (&f.value, &base) {
                    (Some(_), None) => format!(
                        "+ unapproved {} {}",
                        f.kind,
                        describe(
                            cfg,
                            f.kind,
                            &f.key,
                            f.value.as_ref().unwrap_or(&Value::Null)
                        )
                    ),
                    (None, Some(b)) => format!(
                        "- missing    {} {}",
                        f.kind,
                        describe(cfg, f.kind, &f.key, b)
                    ),
                    (Some(o), Some(b)) if o != b => {
                        let d: Vec<String> = diff::diff(b, o)
                            .iter()
                            .map(|d| format!("\n      {d}"))
                            .collect();
                        format!("~ changed    {} {}{}", f.kind, f.key, d.concat())
                    }
                    _ => continue,
                };
                n += 1;
                println!("{line}");
            }
            println!("{n} differences between observed state and the baseline");
        }
        BaselineCmd::Approve { db, by, ids } => {
            let mut store = db.open_existing(cfg)?;
            let by = actor(&by);
            let now = EventTime::now();
            let tx = store.tx()?;
            let version = tx.new_baseline_version(&by, "approve", &ids.join(" "), now)?;
            let mut stats = Stats::default();
            for id in &ids {
                let f = tx.find_finding(id)?;
                if f.kind != FindingKind::Drift {
                    bail!("finding {} is a {} finding: approve changes the baseline, which only drift findings are about; acknowledge it with `accessdrift ack {}`", f.id, f.kind.as_str(), f.id);
                }
                match tx.fact(f.fact_kind, &f.fact_key)?.and_then(|r| r.value) {
                    Some(value) => {
                        tx.approve(
                            version,
                            &BaselineEntry {
                                kind: f.fact_kind,
                                key: f.fact_key.clone(),
                                value,
                                version,
                                approved_by: by.clone(),
                                approved_at: now,
                                from_finding: Some(f.id.clone()),
                            },
                        )?;
                    }
                    None => {
                        tx.unapprove(version, f.fact_kind, &f.fact_key)?;
                    }
                }
                evaluate_fact(
                    &tx,
                    cfg,
                    f.fact_kind,
                    &f.fact_key,
                    Some((&by, now)),
                    &sinks,
                    &mut stats,
                )?;
                println!("approved {} ({})", f.id, f.title);
            }
            tx.commit()?;
            print_stats("approve", version, ids.len(), &stats);
        }
        BaselineCmd::Export { db, file } => {
            let mut store = db.open_read_only(cfg)?;
            let entries = store.read()?.baseline()?;
            let text = serde_json::to_string_pretty(&export_file(&entries))? + "\n";
            match file {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!(
                        "exported {} baseline entries to {}",
                        entries.len(),
                        p.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        BaselineCmd::Import { db, by, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading baseline file {}", file.display()))?;
            let entries =
                parse_export(&text).with_context(|| format!("baseline file {}", file.display()))?;
            let mut store = db.open(cfg)?;
            let by = actor(&by);
            let (v, n, s) = import(
                &mut store,
                cfg,
                &by,
                &file.display().to_string(),
                entries,
                &sinks,
            )?;
            print_stats("imported", v, n, &s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves the observed state. Returns (version, entries changed, re-evaluation stats).
pub fn capture(
    store: &mut Store,
    cfg: &Config,
    by: &str,
    note: &str,
    sinks: &[String],
) -> anyhow::Result<(i64, usize, Stats)> {
    let now = EventTime::now();
    let tx = store.tx()?;
    let version = tx.new_baseline_version(by, "capture", note, now)?;
    let mut changed = 0;
    for f in tx.facts()? {
        let did = match f.value {
            Some(value) => tx.approve(
                version,
                &BaselineEntry {
                    kind: f.kind,
                    key: f.key,
                    value,
                    version,
                    approved_by: by.to_string(),
                    approved_at: now,
                    from_finding: None,
                },
            )?,
            None => tx.unapprove(version, f.kind, &f.key)?,
        };
        changed += usize::from(did);
    }
    let stats = reevaluate_all(&tx, cfg, by, now, sinks)?;
    tx.commit()?;
    Ok((version, changed, stats))
}

fn import(
    store: &mut Store,
    cfg: &Config,
    by: &str,
    source: &str,
    entries: Vec<BaselineEntry>,
    sinks: &[String],
) -> anyhow::Result<(i64, usize, Stats)> {
    let now = EventTime::now();
    let tx = store.tx()?;
    let version = tx.new_baseline_version(by, "import", source, now)?;
    let mut changed = 0;
    let keep: std::collections::HashSet<(FactKind, String)> =
        entries.iter().map(|e| (e.kind, e.key.clone())).collect();
    for old in tx.baseline()? {
        if !keep.contains(&(old.kind, old.key.clone())) {
            changed += usize::from(tx.unapprove(version, old.kind, &old.key)?);
        }
    }
    for mut e in entries {
        e.version = version;
        changed += usize::from(tx.approve(version, &e)?);
    }
    let stats = reevaluate_all(&tx, cfg, by, now, sinks)?;
    tx.commit()?;
    Ok((version, changed, stats))
}

fn export_file(entries: &[BaselineEntry]) -> ExportFile {
    ExportFile {
        format: EXPORT_FORMAT.to_string(),
        entries: entries
            .iter()
            .map(|e| ExportEntry {
                kind: e.kind.as_str().to_string(),
                key: e.key.clone(),
                value: e.value.clone(),
                approved_by: Some(e.approved_by.clone()),
                approved_at: Some(e.approved_at),
                from_finding: e.from_finding.clone(),
            })
            .collect(),
    }
}

/// Parses and validates an exported file; errors name the entry and field.
fn parse_export(text: &str) -> anyhow::Result<Vec<BaselineEntry>> {
    let file: ExportFile = serde_json::from_str(text)
        .context("not a baseline export (expected {\"format\": …, \"entries\": […]})")?;
    if file.format != EXPORT_FORMAT {
        bail!(
            "field `format` is {:?}; this accessdrift reads {EXPORT_FORMAT:?}",
            file.format
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(file.entries.len());
    for (i, e) in file.entries.into_iter().enumerate() {
        let kind: FactKind = e
            .kind
            .parse()
            .with_context(|| format!("entries[{i}].kind"))?;
        if e.key.trim().is_empty() {
            bail!("entries[{i}].key is empty");
        }
        if !e.value.is_object() {
            bail!("entries[{i}].value must be an object (the fact's canonical value)");
        }
        if !seen.insert((kind, e.key.clone())) {
            bail!("entries[{i}]: {kind} {:?} appears twice", e.key);
        }
        out.push(BaselineEntry {
            kind,
            key: e.key,
            value: e.value,
            version: 0,
            approved_by: e.approved_by.unwrap_or_else(|| "import".to_string()),
            approved_at: e.approved_at.unwrap_or_else(EventTime::now),
            from_finding: e.from_finding,
        });
    }
    Ok(out)
}

/// A short human description of a fact (role names instead of GUIDs).
fn describe(cfg: &Config, kind: FactKind, key: &str, v: &Value) -> String {
    match kind {
        FactKind::RoleAssignment => {
            let s = |p: &str| v.get(p).and_then(Value::as_str).unwrap_or("?");
            format!(
                "{} → principal {} at {}",
                cfg.role_name(s("role_definition_id")),
                s("principal_id"),
                s("scope")
            )
        }
        _ => key.to_string(),
    }
}
