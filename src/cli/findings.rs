//! `accessdrift findings`, `ack` and `notify`.

use super::{actor, render, DbArg};
use crate::baseline::BaselineService;
use crate::config::Config;
use crate::domain::EventTime;
use crate::notify::{Notifier, StdoutSink};
use std::process::ExitCode;

/// Which findings to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Open and acknowledged findings.
    Open,
    /// Every finding, resolved and approved included.
    All,
}

/// Arguments of `findings`.
#[derive(Debug, clap::Args)]
pub struct FindingsArgs {
    #[command(flatten)]
    db: DbArg,
    /// Which findings.
    #[arg(long, value_enum, default_value = "open")]
    status: StatusFilter,
    /// A JSON array for scripts instead of the table.
    #[arg(long)]
    json: bool,
}

pub(super) fn list(cfg: &Config, a: FindingsArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.db.open_read_only(cfg)?;
    let tx = store.read()?;
    let findings = tx.findings(a.status == StatusFilter::Open)?;
    if a.json {
        let arr: Vec<_> = findings.iter().map(render::finding_json).collect();
        outln!("{}", serde_json::to_string_pretty(&arr)?)?;
    } else {
        out!("{}", render::findings_table(&findings))?;
        let counts: Vec<String> = tx
            .finding_counts()?
            .iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        let (pending, dead) = tx.outbox_counts()?;
        outln!(
            "findings: {}; outbox: {pending} alerts waiting, {dead} dead-lettered",
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(", ")
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `ack`.
#[derive(Debug, clap::Args)]
pub struct AckArgs {
    #[command(flatten)]
    db: DbArg,
    /// Who acknowledges (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// Finding ids (or unique prefixes of at least 4 characters); all or none are acknowledged.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

pub(super) fn ack(cfg: &Config, a: AckArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.db.open_existing(cfg)?;
    let sinks = vec!["stdout".to_string()];
    let out = BaselineService::new(&mut store, cfg, &sinks).ack(&actor(&a.by), &a.ids)?;
    for f in &out.already {
        println!("already acknowledged {} ({}): nothing to do", f.id, f.title);
    }
    for f in &out.acknowledged {
        println!("acknowledged {} ({})", f.id, f.title);
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `notify`.
#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    #[command(flatten)]
    db: DbArg,
    /// Drain what is due once and exit, instead of running until interrupted.
    #[arg(long)]
    once: bool,
    /// Print alerts as JSON lines.
    #[arg(long)]
    json: bool,
}

pub(super) fn notify(cfg: &Config, a: NotifyArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.db.open_existing(cfg)?;
    let mut notifier = Notifier::new(
        vec![Box::new(StdoutSink::new(std::io::stdout(), a.json))],
        cfg.notify.clone(),
    );
    if a.once {
        let r = notifier.drain(&mut store, EventTime::now().unix_seconds())?;
        if r.gone.is_some() {
            return Ok(ExitCode::from(super::EXIT_BROKEN_PIPE));
        }
        eprintln!(
            "delivered {}, retrying {}, dead-lettered {}",
            r.delivered, r.retried, r.dead_lettered
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        let mut tick = tokio::time::interval(cfg.notify.poll_interval);
        tracing::info!(interval = ?cfg.notify.poll_interval, "notifier running; Ctrl-C stops it");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let r = notifier.drain(&mut store, EventTime::now().unix_seconds())?;
                    if r.delivered + r.retried + r.dead_lettered > 0 {
                        tracing::info!(delivered = r.delivered, retried = r.retried, dead = r.dead_lettered, "drained outbox");
                    }
                    if r.gone.is_some() {
                        return anyhow::Ok(ExitCode::from(super::EXIT_BROKEN_PIPE));
                    }
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
