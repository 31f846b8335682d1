//! `accessdrift run`: the daemon.

use super::DbArg;
use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    db: DbArg,
}

/// What to add when no source is enabled (`run`'s refusal and `check-config`).
pub(super) const NO_SOURCE_HINT: &str = "add a [kubernetes] table (cluster = \"NAME\") to watch Kubernetes RBAC, or an [eventhubs] table (namespace = \"NS.servicebus.windows.net\", eventhub = \"HUB\") to read the Azure Activity Log, or an [azure] table to read the Azure inventory from ARM; a table with enabled = false stays off";

/// Exit status of a `run` with nothing to run: a usage error, like a missing argument.
const EXIT_NOTHING_TO_RUN: u8 = 2;

pub(super) fn run(cfg: Config, config_path: Option<&Path>, a: RunArgs) -> anyhow::Result<ExitCode> {
    // A daemon without a source would serve a readiness that can never turn 200: refuse
    // before opening anything, in one line that names the file and what to add.
    if cfg.enabled_sources().is_empty() {
        let read = match config_path {
            Some(p) => format!("{} enables no source", p.display()),
            None => {
                "no --config given (nor ACCESSDRIFT_CONFIG), so no source is enabled".to_string()
            }
        };
        eprintln!("accessdrift: error: nothing to run: {read}: {NO_SOURCE_HINT}");
        return Ok(ExitCode::from(EXIT_NOTHING_TO_RUN));
    }
    for s in cfg.enabled_sources() {
        tracing::info!(source = %s, "source enabled");
    }
    let db = a.db.path(&cfg);
    crate::daemon::run(cfg, &db)?;
    Ok(ExitCode::SUCCESS)
}
