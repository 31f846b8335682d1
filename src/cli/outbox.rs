//! `accessdrift outbox`: what waits for delivery, what was dead-lettered, and requeueing.

use super::DbArg;
use crate::config::Config;
use crate::store::{OutboxRow, OutboxState};
use std::process::ExitCode;

/// Arguments of `outbox`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutboxArgs {
    #[command(subcommand)]
    cmd: Option<OutboxCmd>,
    #[command(flatten)]
    db: DbArg,
    /// Only dead-lettered alerts.
    #[arg(long)]
    dead: bool,
    /// A JSON array for scripts instead of the table.
    #[arg(long)]
    json: bool,
}

/// `outbox` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OutboxCmd {
    /// Put dead-lettered alerts back in the queue (attempts reset, due now). All ids or none.
    Retry {
        #[command(flatten)]
        db: DbArg,
        /// Every dead-lettered alert.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
        /// Outbox ids, as `accessdrift outbox --dead` lists them.
        #[arg(value_name = "ID", required_unless_present = "all_dead")]
        ids: Vec<i64>,
    },
}

pub(super) fn run(cfg: &Config, a: OutboxArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(OutboxCmd::Retry { db, all_dead, ids }) => retry(cfg, &db, all_dead, &ids),
        None => list(cfg, &a.db, a.dead, a.json),
    }
}

fn list(cfg: &Config, db: &DbArg, dead: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mut store = db.open_read_only(cfg)?;
    let rows = store
        .read()?
        .outbox_all(dead.then_some(OutboxState::Dead))?;
    if json {
        let arr: Vec<serde_json::Value> = rows.iter().map(row_json).collect();
        outln!("{}", serde_json::to_string_pretty(&arr)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!(
            "{}",
            if dead {
                "no dead-lettered alerts"
            } else {
                "outbox empty: every alert was delivered"
            }
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<6} {:<8} {:<14} {:>8}  {:<12} {:<16} {:<8}  LAST ERROR",
        "ID",
        "STATE",
        "SINK",
        "ATTEMPTS",
        "FINDING",
        "TRANSITION",
        "SEVERITY"
    )?;
    for r in &rows {
        outln!(
            "{:<6} {:<8} {:<14} {:>8}  {:<12} {:<16} {:<8}  {}",
            r.seq,
            r.state.as_str(),
            r.sink,
            r.attempts,
            r.finding_id,
            r.transition,
            r.severity,
            r.last_error.as_deref().unwrap_or("-")
        )?;
    }
    let dead_n = rows.iter().filter(|r| r.state == OutboxState::Dead).count();
    outln!(
        "{} waiting, {dead_n} dead-lettered{}",
        rows.len() - dead_n,
        if dead_n > 0 {
            " (requeue with `accessdrift outbox retry ID…` or `--all-dead`)"
        } else {
            ""
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

fn row_json(r: &OutboxRow) -> serde_json::Value {
    serde_json::json!({
        "id": r.seq,
        "state": r.state.as_str(),
        "sink": r.sink,
        "idempotency_key": r.idempotency_key,
        "finding_id": r.finding_id,
        "transition": r.transition,
        "severity": r.severity,
        "created_at": r.created_at.to_string(),
        "attempts": r.attempts,
        "last_error": r.last_error,
    })
}

fn retry(cfg: &Config, db: &DbArg, all_dead: bool, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let mut store = db.open_existing(cfg)?;
    let tx = store.tx()?;
    let n = if all_dead {
        tx.requeue(None)?
    } else {
        for id in ids {
            match tx.outbox_row(*id)? {
                None => anyhow::bail!("outbox id {id} does not exist (it may have been delivered): list them with `accessdrift outbox`; nothing was requeued"),
                Some(r) if r.state != OutboxState::Dead => anyhow::bail!("outbox id {id} is not dead-lettered (it is still waiting for delivery): nothing was requeued"),
                Some(_) => {}
            }
        }
        tx.requeue(Some(ids))?
    };
    tx.commit()?;
    outln!("requeued {n} alert{}", if n == 1 { "" } else { "s" })?;
    Ok(ExitCode::SUCCESS)
}
