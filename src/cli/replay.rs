//! `accessdrift replay`.

use super::{render, CreateDbArg};
use crate::config::Config;
use crate::pipeline::{replay, Pipeline};
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
    let summary = replay::run(&mut pipeline, &a.files, &cluster)?;
    let has_baseline = store.read()?.baseline_version()?.is_some();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::summary_json(&summary))?
        );
    } else {
        print!("{}", render::summary(&summary, has_baseline));
    }
    Ok(ExitCode::SUCCESS)
}
