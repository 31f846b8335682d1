//! `accessdrift findings`, `ack` and `notify`.

use super::{actor, render, DbArg};
use crate::baseline::BaselineService;
use crate::config::Config;
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
    let sinks = crate::notify::route::queue_sinks(cfg);
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
    /// Print alerts as JSON lines (the built-in stdout sink, when no [[sinks]] are configured).
    #[arg(long)]
    json: bool,
    /// Send one synthetic alert through the sink named by --sink, bypassing the outbox, and
    /// print what the receiver answered. Exit 1 if it was not accepted.
    #[arg(long, requires = "sink")]
    test: bool,
    /// The `[[sinks]] name` for --test.
    #[arg(long, value_name = "NAME", requires = "test")]
    sink: Option<String>,
}

pub(super) fn notify(cfg: &Config, a: NotifyArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if a.test {
        let name = a.sink.unwrap_or_default();
        let receipt = rt.block_on(crate::notify::send_test(cfg, &name))?;
        outln!("sink {name}: test alert accepted: {}", receipt.0)?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = a.db.existing(cfg)?;
    let mut notifier = if cfg.sinks.is_empty() {
        Notifier::with_sinks(
            vec![Box::new(StdoutSink::new(std::io::stdout(), a.json))],
            cfg.notify.clone(),
            &path,
        )?
        .leave_other_sinks()
    } else {
        Notifier::new(cfg, &path)?
    };
    if a.once {
        let r = rt.block_on(notifier.drain(crate::notify::unix_now()))?;
        if r.gone.is_some() {
            return Ok(ExitCode::from(super::EXIT_BROKEN_PIPE));
        }
        eprintln!(
            "delivered {}, retrying {}, dead-lettered {}",
            r.delivered, r.retried, r.dead_lettered
        );
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        tracing::info!(interval = ?cfg.notify.poll_interval, "notifier running; Ctrl-C stops it");
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        notifier.run(wake, stop).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
