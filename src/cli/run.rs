//! `accessdrift run`: the daemon.

use super::DbArg;
use crate::config::Config;
use std::process::ExitCode;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    db: DbArg,
}

pub(super) fn run(cfg: Config, a: RunArgs) -> anyhow::Result<ExitCode> {
    let db = a.db.path(&cfg);
    crate::daemon::run(cfg, &db)?;
    Ok(ExitCode::SUCCESS)
}
