//! `accessdrift replay`.

use super::{render, CreateDbArg};
use crate::config::Config;
use crate::pipeline::replay::{self, FileIssue, ReplaySummary};
use crate::pipeline::Pipeline;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    db: CreateDbArg,
    /// Cluster name given to Kubernetes facts (default: `[pipeline] default_cluster`, `local`).
    #[arg(long)]
    cluster: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 1 (after applying what was good) when the input was not all good records: a
    /// malformed record, an empty file, a file with no JSON/YAML in it, or a last record that
    /// looks unfinished. A file replayed from the start because it was rewritten is not an
    /// error.
    #[arg(long)]
    strict: bool,
    /// Apply each `kind: List` dump as a relist, as the live watch does: objects of the kinds a
    /// file's Lists hold that none of them contains are deleted within `--cluster`. Without it
    /// a List only adds and updates (watch events always apply as they say).
    #[arg(long)]
    relist: bool,
    /// Input files, applied in this order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub(super) fn run(cfg: &Config, a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.db.open(cfg)?;
    let cluster = a
        .cluster
        .unwrap_or_else(|| cfg.pipeline.default_cluster.clone());
    let mut pipeline = Pipeline::new(&mut store, cfg, crate::notify::route::queue_sinks(cfg));
    let mode = if a.relist {
        replay::Mode::Relist
    } else {
        replay::Mode::Upsert
    };
    let summary = replay::run_with(&mut pipeline, &a.files, &cluster, mode)?;
    let has_baseline = store.read()?.baseline_version()?.is_some();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&summary))?);
    } else {
        print!("{}", render::summary(&summary, has_baseline));
        for w in &summary.warnings {
            println!("warning: {w}");
        }
    }
    let problems = summary.strict_problems();
    if a.strict && problems > 0 {
        eprintln!("replay --strict: {problems} problem(s) in the input, listed above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary for scripts, with the file-level warnings.
fn summary_json(s: &ReplaySummary) -> Value {
    let mut v = render::summary_json(s);
    let warnings: Vec<Value> = s
        .warnings
        .iter()
        .map(|w| {
            let mut o = json!({"input": w.input, "kind": w.kind(), "message": w.to_string()});
            if let FileIssue::Unfinished { bytes } = w.issue {
                o["bytes"] = json!(bytes);
            }
            o
        })
        .collect();
    v["warnings"] = Value::Array(warnings);
    v
}
