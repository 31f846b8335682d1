//! `accessdrift baseline …`: parses arguments, calls the baseline service, prints outcomes.

use super::{actor, CreateDbArg, DbArg};
use crate::baseline::{Applied, BaselineService, Difference, ImportOptions, ImportPlan};
use crate::config::Config;
use crate::domain::FactKind;
use crate::pipeline::Stats;
use crate::store::{BaselineEntry, Store};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

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
        /// List the versions (who changed the baseline, when, how) instead of the entries.
        #[arg(long, conflicts_with = "json")]
        versions: bool,
    },
    /// Show how the observed state differs from the baseline, field by field, with the id of
    /// the finding for each difference. Exit 0: no drift; 1: drift; 2: error (like diff(1)).
    Diff {
        #[command(flatten)]
        db: DbArg,
        /// A JSON object for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve drift findings: exactly the value each finding shows becomes the baseline.
    /// All ids or none: one bad id changes nothing.
    Approve {
        #[command(flatten)]
        db: DbArg,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Refuse unless the finding is still at this revision (`revision` in
        /// `findings --json`), so what is approved is what was reviewed. One ID only.
        #[arg(long, value_name = "N")]
        revision: Option<u64>,
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
    /// Values are canonicalised and validated; entries are recorded as approved by the importer.
    Import {
        #[command(flatten)]
        db: CreateDbArg,
        /// Who imports (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Print what would be added, replaced and removed, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow an import that removes more than half of the current baseline.
        #[arg(long)]
        force: bool,
        /// The file.
        file: PathBuf,
    },
    /// Restore the baseline as it was at VERSION (see `baseline show --versions`), as a new
    /// version, and re-evaluate.
    Rollback {
        #[command(flatten)]
        db: DbArg,
        /// Who rolls back (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// The version to restore.
        version: i64,
    },
}

fn print_stats(what: &str, version: i64, changed: usize, s: &Stats) {
    println!(
        "{what}: baseline version {version}, {changed} entries changed; findings: {} resolved as approved, {} opened, {} reopened; {} notifications queued",
        s.resolved, s.opened, s.reopened, s.notifications
    );
}

fn print_applied(what: &str, a: &Applied) {
    print_stats(what, a.version, a.changed, &a.stats);
}

pub(super) fn run(cfg: &Config, cmd: BaselineCmd) -> anyhow::Result<ExitCode> {
    let sinks = crate::notify::route::queue_sinks(cfg);
    match cmd {
        BaselineCmd::Capture { db, by, note } => {
            let mut store = db.open_existing(cfg)?;
            let a = BaselineService::new(&mut store, cfg, &sinks).capture(&actor(&by), &note)?;
            print_applied("captured", &a);
        }
        BaselineCmd::Show {
            db,
            json: _,
            versions: true,
        } => {
            let mut store = db.open_read_only(cfg)?;
            let versions = BaselineService::new(&mut store, cfg, &sinks).versions()?;
            if versions.is_empty() {
                println!(
                    "no baseline yet: run `accessdrift baseline capture` or `baseline import FILE`"
                );
            }
            for v in versions {
                println!(
                    "{:>4}  {}  {:<8} by {}{}",
                    v.version,
                    v.created_at,
                    v.action,
                    v.actor,
                    if v.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", v.note)
                    }
                );
            }
        }
        BaselineCmd::Show { db, json, .. } => {
            let mut store = db.open_read_only(cfg)?;
            let snap = BaselineService::new(&mut store, cfg, &sinks).snapshot()?;
            if json {
                let file = crate::baseline::ExportFile::from_entries(&snap.entries);
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                match snap.version {
                    None => println!("no baseline yet: run `accessdrift baseline capture` or `baseline import FILE`"),
                    Some(v) => println!(
                        "baseline version {} ({} by {} at {}{}), {} entries",
                        v.version,
                        v.action,
                        v.actor,
                        v.created_at,
                        if v.note.is_empty() { String::new() } else { format!(": {}", v.note) },
                        snap.entries.len()
                    ),
                }
                for e in &snap.entries {
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
        BaselineCmd::Diff { db, json } => {
            // diff(1) convention: 1 means "differences", so trouble must not look like drift.
            return Ok(match diff(cfg, &db, json, &sinks) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("accessdrift: error: {e:#}");
                    ExitCode::from(2)
                }
            });
        }
        BaselineCmd::Approve {
            db,
            by,
            revision,
            ids,
        } => {
            let mut store = db.open_existing(cfg)?;
            let out = BaselineService::new(&mut store, cfg, &sinks).approve(
                &actor(&by),
                &ids,
                revision,
            )?;
            for f in &out.already {
                println!("already approved {} ({}): nothing to do", f.id, f.title);
            }
            for f in &out.approved {
                println!("approved {} ({})", f.id, f.title);
            }
            if let Some(a) = &out.applied {
                print_applied("approve", a);
            }
        }
        BaselineCmd::Export { db, file } => {
            let mut store = db.open_read_only(cfg)?;
            let export = BaselineService::new(&mut store, cfg, &sinks).export()?;
            let text = serde_json::to_string_pretty(&export)? + "\n";
            match file {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!(
                        "exported {} baseline entries to {}",
                        export.entries.len(),
                        p.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        BaselineCmd::Import {
            db,
            by,
            dry_run,
            force,
            file,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading baseline file {}", file.display()))?;
            let mut store = if dry_run {
                db.open_existing(cfg)?
            } else {
                db.open(cfg)?
            };
            let name = file.display().to_string();
            let out = BaselineService::new(&mut store, cfg, &sinks).import(
                &actor(&by),
                &name,
                &text,
                ImportOptions { dry_run, force },
            )?;
            match &out.applied {
                None => {
                    print_plan(cfg, &out.plan);
                    println!("dry run: nothing changed");
                }
                Some(a) => print_applied("imported", a),
            }
        }
        BaselineCmd::Rollback { db, by, version } => {
            let mut store = db.open_existing(cfg)?;
            let a = BaselineService::new(&mut store, cfg, &sinks).rollback(&actor(&by), version)?;
            print_applied(&format!("rolled back to version {version}"), &a);
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
    let a = BaselineService::new(store, cfg, sinks).capture(by, note)?;
    Ok((a.version, a.changed, a.stats))
}

fn diff(cfg: &Config, db: &DbArg, json: bool, sinks: &[String]) -> anyhow::Result<ExitCode> {
    let mut store = db.open_read_only(cfg)?;
    let diffs = BaselineService::new(&mut store, cfg, sinks).diff()?;
    if json {
        let out = json!({ "count": diffs.len(), "differences": diffs });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for d in &diffs {
            println!("{}", diff_line(cfg, d));
        }
        println!(
            "{} differences between observed state and the baseline",
            diffs.len()
        );
    }
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn diff_line(cfg: &Config, d: &Difference) -> String {
    let status = d.finding_status.map_or("no finding yet", |s| s.as_str());
    let head = |sign: &str, v: Option<&Value>| {
        format!(
            "{sign} {:<10} {} {}  [finding {}, {status}]",
            d.change.as_str(),
            d.kind,
            describe(cfg, d.kind, &d.key, v.unwrap_or(&Value::Null)),
            d.finding_id
        )
    };
    match d.change {
        crate::engine::DriftChange::Unapproved => head("+", d.actual.as_ref()),
        crate::engine::DriftChange::Missing => head("-", d.expected.as_ref()),
        crate::engine::DriftChange::Changed => {
            let fields: String = d.diff.iter().map(|x| format!("\n      {x}")).collect();
            format!("{}{fields}", head("~", d.actual.as_ref()))
        }
    }
}

fn print_plan(cfg: &Config, p: &ImportPlan) {
    let line = |sign: &str, e: &BaselineEntry| {
        println!(
            "{sign} {:<22} {}",
            e.kind.as_str(),
            describe(cfg, e.kind, &e.key, &e.value)
        )
    };
    for e in &p.adds {
        line("+ add    ", e);
    }
    for r in &p.replaces {
        line("~ replace", &r.new);
        for d in crate::engine::diff::diff(&r.old.value, &r.new.value) {
            println!("      {d}");
        }
    }
    for e in &p.removes {
        line("- remove ", e);
    }
    println!(
        "import would add {}, replace {}, remove {} of {} entries ({} unchanged)",
        p.adds.len(),
        p.replaces.len(),
        p.removes.len(),
        p.current,
        p.unchanged
    );
}

/// A short human description of a fact (role names instead of GUIDs).
fn describe(cfg: &Config, kind: FactKind, key: &str, v: &Value) -> String {
    match kind {
        FactKind::RoleAssignment | FactKind::RoleEligibility => {
            let s = |p: &str| v.get(p).and_then(Value::as_str).unwrap_or("?");
            format!(
                "{}{} → principal {} at {}",
                if kind == FactKind::RoleEligibility {
                    "eligible for "
                } else {
                    ""
                },
                cfg.role_name(s("role_definition_id")),
                s("principal_id"),
                s("scope")
            )
        }
        _ => key.to_string(),
    }
}
