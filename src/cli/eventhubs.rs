//! `accessdrift eventhubs check`: connect with the configured auth, read the hub and each
//! partition, and print checkpoint, last enqueued sequence number and lag. What an SRE runs
//! first, before (or next to) the daemon.

use super::DbArg;
use crate::config::Config;
use crate::sources::eventhubs::open_client;
use crate::store::{EventHubsPartition, EventHubsPosition, Store};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// `eventhubs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventhubsCommand {
    /// Connect to the `[eventhubs]` hub and print, per partition, the committed checkpoint,
    /// the last enqueued sequence number and the lag. Exits 1 when it cannot connect or
    /// authenticate.
    Check(CheckArgs),
}

/// Arguments of `eventhubs check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    db: DbArg,
}

pub(super) fn run(cfg: &Config, c: EventhubsCommand) -> anyhow::Result<ExitCode> {
    let EventhubsCommand::Check(a) = c;
    let e = &cfg.eventhubs;
    if e.namespace.is_empty() || e.eventhub.is_empty() {
        bail!("no Event Hub configured: set [eventhubs] namespace and eventhub in --config");
    }
    // Checkpoints are optional: a daemon that never ran has none, which is worth seeing too.
    let db = a.db.path(cfg);
    let committed: BTreeMap<String, i64> = match Store::open_read_only(&db) {
        Ok(mut s) => {
            let prefix =
                EventHubsPartition::source_prefix(&e.namespace, &e.eventhub, &e.consumer_group);
            let tx = s.read()?;
            let mut m = BTreeMap::new();
            for (name, cp, _) in tx.checkpoints_with_prefix(&prefix)? {
                let pos = EventHubsPosition::from_checkpoint(&name, &cp)?;
                m.insert(name[prefix.len()..].to_string(), pos.sequence_number);
            }
            m
        }
        Err(_) => BTreeMap::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let rows = rt.block_on(async {
        let client = open_client(e).await?;
        let props = client.get_eventhub_properties().await.map_err(|err| {
            anyhow::anyhow!(
                "Event Hub {} in namespace {} (auth = \"{}\"): reading the hub's properties: {}",
                e.eventhub,
                e.namespace,
                e.auth.as_str(),
                crate::domain::error_chain(&err)
            )
        })?;
        let mut rows = Vec::new();
        for pid in &props.partition_ids {
            let p = client.get_partition_properties(pid).await.map_err(|err| {
                anyhow::anyhow!(
                    "Event Hub {} partition {pid}: reading its properties: {}",
                    e.eventhub,
                    crate::domain::error_chain(&err)
                )
            })?;
            rows.push((pid.clone(), p));
        }
        // The answers are in: a peer slow to confirm the close must not hold the exit.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), client.close()).await;
        anyhow::Ok(rows)
    })?;
    outln!(
        "Event Hub {} in {} — consumer group {}, auth {}, {} partition(s); checkpoints from {}",
        e.eventhub,
        e.namespace,
        e.consumer_group,
        e.auth.as_str(),
        rows.len(),
        db.display()
    )?;
    outln!(
        "{:<10} {:>12} {:>14} {:>10}",
        "PARTITION",
        "CHECKPOINT",
        "LAST ENQUEUED",
        "LAG"
    )?;
    for (pid, p) in rows {
        let cp = committed.get(&pid).copied();
        let last = (!p.is_empty).then_some(p.last_enqueued_sequence_number);
        let lag = match last {
            None => 0,
            Some(l) => (l - cp.unwrap_or(p.beginning_sequence_number - 1)).max(0),
        };
        outln!(
            "{:<10} {:>12} {:>14} {:>10}",
            pid,
            cp.map_or("-".to_string(), |c| c.to_string()),
            last.map_or("(empty)".to_string(), |l| l.to_string()),
            lag
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
