//! `accessdrift inventory`: one snapshot of the Azure state, applied to the store.

use super::CreateDbArg;
use crate::config::Config;
use crate::sources::arm::{PartOutcome, SnapshotReport};
use crate::store::Store;
use serde_json::json;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Arguments of `inventory`.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    db: CreateDbArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(cfg: &Config, a: InventoryArgs) -> anyhow::Result<ExitCode> {
    if !cfg.azure.enabled {
        anyhow::bail!(
            "nothing to read: `inventory` needs an [azure] table in --config (with [[clusters]] entries, or [azure] subscriptions = [\"GUID\"]); see config/accessdrift.example.toml"
        );
    }
    let inventory = crate::sources::arm::inventory(cfg)?;
    let store = a.db.open(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(snapshot(cfg, store, inventory))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report_json(&report))?)?;
    } else {
        out!("{}", table(&report))?;
    }
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one snapshot through the same store-writer the daemon uses; SIGINT/SIGTERM stop it
/// (what was committed stays).
async fn snapshot(
    cfg: &Config,
    store: Store,
    inventory: crate::sources::arm::Inventory,
) -> anyhow::Result<SnapshotReport> {
    let backlog = Arc::new(AtomicUsize::new(0));
    let (writer, rx) = crate::ingest::channel(8, backlog.clone());
    let writer_thread = {
        let cfg = cfg.clone();
        let sinks = crate::notify::route::queue_sinks(&cfg);
        std::thread::Builder::new()
            .name("accessdrift-writer".into())
            .spawn(move || crate::pipeline::writer::run(store, &cfg, sinks, rx, &backlog, |_| {}))?
    };
    let cancel = CancellationToken::new();
    let signals = {
        let cancel = cancel.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            tracing::warn!("signal: stopping the inventory; what was committed stays");
            cancel.cancel();
        })
    };
    let result = inventory
        .snapshot(&writer, &cancel, |part| tracing::info!(%part, "listing"))
        .await;
    drop(writer);
    signals.abort();
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    Ok(result?)
}

fn outcome(p: &PartOutcome) -> (&'static str, Option<&str>) {
    match p {
        PartOutcome::Completed => ("completed", None),
        PartOutcome::Failed { error, .. } => ("FAILED", Some(error.as_str())),
    }
}

/// The report for people: one row per part, then what failed and why.
pub fn table(r: &SnapshotReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Inventory as of {} ({} ARM requests, {:.1}s)\n",
        r.at,
        r.requests,
        r.took.as_secs_f64()
    );
    let mut sub = "";
    for p in &r.parts {
        if p.part.subscription() != sub {
            sub = p.part.subscription();
            let _ = writeln!(o, "Subscription {sub}");
            let _ = writeln!(
                o,
                "  {:<26}  {:>7}  {:>6}  {:>7}  {:>7}  STATUS",
                "PART", "LISTED", "ADDED", "CHANGED", "REMOVED"
            );
        }
        let _ = writeln!(
            o,
            "  {:<26}  {:>7}  {:>6}  {:>7}  {:>7}  {}",
            p.part.short(),
            p.listed,
            p.stats.added,
            p.stats.changed,
            p.stats.removed,
            outcome(&p.outcome).0
        );
    }
    let opened: u64 = r
        .parts
        .iter()
        .map(|p| p.stats.opened + p.stats.reopened)
        .sum();
    let resolved: u64 = r.parts.iter().map(|p| p.stats.resolved).sum();
    let waiting: u64 = r.parts.iter().map(|p| p.stats.awaiting_baseline).sum();
    let _ = writeln!(o);
    if waiting > 0 {
        let _ = writeln!(
            o,
            "No baseline yet: approve what is there now with `accessdrift baseline capture`."
        );
    } else {
        let _ = writeln!(o, "Findings: {opened} opened, {resolved} resolved.");
    }
    let failures = r.failures();
    if !failures.is_empty() {
        let _ = writeln!(
            o,
            "\n{} part(s) incomplete: what they listed was applied, nothing of theirs was deleted.",
            failures.len()
        );
        for f in failures {
            let _ = writeln!(o, "  {f}");
        }
    }
    o
}

/// The report for scripts.
pub fn report_json(r: &SnapshotReport) -> serde_json::Value {
    let parts: Vec<_> = r
        .parts
        .iter()
        .map(|p| {
            let (status, error) = outcome(&p.outcome);
            json!({
                "part": p.part.to_string(),
                "kind": p.part.kind().as_str(),
                "subscription": p.part.subscription(),
                "listed": p.listed,
                "added": p.stats.added,
                "changed": p.stats.changed,
                "removed": p.stats.removed,
                "findings_opened": p.stats.opened + p.stats.reopened,
                "findings_resolved": p.stats.resolved,
                "completed": status == "completed",
                "error": error,
            })
        })
        .collect();
    json!({
        "at": r.at.to_string(),
        "complete": r.complete(),
        "requests": r.requests,
        "took_ms": r.took.as_millis() as u64,
        "parts": parts,
    })
}
