//! Command-line interface. The subcommands and flags here are a contract scripts rely on.

#[macro_use]
mod out;
mod baseline;
mod bench;
mod demo;
mod eventhubs;
mod findings;
mod inventory;
mod outbox;
mod render;
mod replay;
mod rules;
mod run;

use crate::config::Config;
use crate::store::Store;
use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// accessdrift — tells you when AKS identity and RBAC drift from what was approved, and who did it.
///
/// It replays Azure Activity Log records and Kubernetes RBAC objects into a SQLite store,
/// compares them with an approved baseline, and queues alerts with who did it. (The in-cluster
/// daemon feeds the same pipeline from Event Hubs and the Kubernetes API.)
///
/// Typical first run:
///   accessdrift replay --db ad.db --cluster aks-prod day1-activity.json day1-k8s.json
///   accessdrift baseline capture --db ad.db          # approve what is there now
///   accessdrift replay --db ad.db --cluster aks-prod day2-activity.json
///   accessdrift findings --db ad.db                  # what drifted, and who did it
///
/// Exit status: 0 success, 1 error, 2 usage error, 141 when stdout was closed early
/// (`accessdrift findings | head -1`), like tools killed by SIGPIPE, with nothing printed.
#[derive(Debug, Parser)]
#[command(name = "accessdrift", version, verbatim_doc_comment)]
pub struct Cli {
    /// Configuration file (TOML). Defaults apply when not given; see config/accessdrift.example.toml.
    #[arg(long, global = true, env = "ACCESSDRIFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log level or filter (`info`, `debug`, `accessdrift=debug`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--db` of commands that need an existing database (reads, acks, approvals).
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database file; it must exist (`accessdrift replay` creates it). Defaults to
    /// `[store] path` from the config.
    #[arg(long, env = "ACCESSDRIFT_DB")]
    pub db: Option<PathBuf>,
}

impl DbArg {
    fn path(&self, cfg: &Config) -> PathBuf {
        self.db.clone().unwrap_or_else(|| cfg.store.path.clone())
    }

    /// Opens a database that must exist, for writing: a mistyped path is an error, not an
    /// empty answer.
    fn open_existing(&self, cfg: &Config) -> anyhow::Result<Store> {
        let path = self.existing(cfg)?;
        Ok(Store::open(&path)?)
    }

    /// Opens a database that must exist, read-only: works without write permission on the
    /// file or its directory, and never migrates it.
    fn open_read_only(&self, cfg: &Config) -> anyhow::Result<Store> {
        let path = self.existing(cfg)?;
        Ok(Store::open_read_only(&path)?)
    }

    fn existing(&self, cfg: &Config) -> anyhow::Result<PathBuf> {
        let path = self.path(cfg);
        if !path.exists() {
            anyhow::bail!(
                "no database at {}: create it with `accessdrift replay --db {} FILE…` (or check --db / ACCESSDRIFT_DB / [store] path)",
                path.display(),
                path.display()
            );
        }
        Ok(path)
    }
}

/// `--db` of commands that write observations and may start a new database.
#[derive(Debug, clap::Args)]
pub struct CreateDbArg {
    /// SQLite database file (created if missing). Defaults to `[store] path` from the config.
    #[arg(long, env = "ACCESSDRIFT_DB")]
    pub db: Option<PathBuf>,
}

impl CreateDbArg {
    /// Opens the database for writing, creating and migrating it when needed.
    fn open(&self, cfg: &Config) -> anyhow::Result<Store> {
        let path = self.db.clone().unwrap_or_else(|| cfg.store.path.clone());
        Ok(Store::open(&path)?)
    }

    /// Opens the database only if it exists (a dry run must not create one).
    fn open_existing(&self, cfg: &Config) -> anyhow::Result<Store> {
        DbArg {
            db: self.db.clone(),
        }
        .open_existing(cfg)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline on files: Activity Log records (Event Hubs `{"records":[…]}`, NDJSON,
    /// arrays, REST shape) and Kubernetes watch events or `kind: List` dumps (JSON or YAML).
    ///
    /// Files are applied in the order given, each resumable from its checkpoint: replaying
    /// the same file again applies nothing twice. Exit 0 when every file was read, even if
    /// some records were skipped or malformed (see --strict); non-zero when a file cannot be read.
    Replay(replay::ReplayArgs),
    /// Manage the approved baseline: capture, show, diff, approve, export, import.
    #[command(subcommand)]
    Baseline(baseline::BaselineCmd),
    /// List findings: a table for people, or `--json` for scripts.
    Findings(findings::FindingsArgs),
    /// Acknowledge findings: activity findings stay open until someone does.
    Ack(findings::AckArgs),
    /// Deliver queued alerts to the configured [[sinks]] (stdout when none are configured),
    /// with retries; `--test --sink NAME` sends one synthetic alert through one sink.
    Notify(findings::NotifyArgs),
    /// List alerts waiting for delivery or dead-lettered, and requeue dead ones.
    Outbox(outbox::OutboxArgs),
    /// Replay bundled sample data (a baseline day, then a change day) and show what it finds.
    Demo(demo::DemoArgs),
    /// Measure replay throughput on a generated corpus against a bare JSON parse.
    Bench(bench::BenchArgs),
    /// List the rules catalogue (`--json` for scripts); `rules explain ID` prints one in full.
    Rules(rules::RulesArgs),
    /// Load and validate the configuration, then print the effective settings and which
    /// sources `run` would start (a `[kubernetes]`, `[eventhubs]` or `[azure]` table turns its source on).
    CheckConfig,
    /// Run the daemon: watch the sources in `--config`, evaluate every change, deliver alerts,
    /// serve `/healthz`, `/readyz` and `/metrics`. Stops cleanly (exit 0) on SIGTERM or SIGINT.
    ///
    /// A source runs when its table is in the config: `[kubernetes]` (cluster = "NAME") watches
    /// RBAC, `[eventhubs]` (namespace, eventhub) reads the Activity Log, `[azure]` reads the
    /// Azure inventory from ARM at start and every `snapshot_interval`; `enabled = false` keeps
    /// a table but turns it off. With no source enabled `run` exits 2 at once, saying so.
    Run(run::RunArgs),
    /// Read the Azure state once from Azure Resource Manager (role assignments, custom roles,
    /// the [[clusters]]' access settings, managed identities and their federated credentials)
    /// into the store, as of now; needs an `[azure]` table. Run it before `baseline capture`
    /// so the baseline holds what existed before accessdrift was installed.
    ///
    /// Each part (a kind in a subscription, or a cluster) that lists completely also removes
    /// what it no longer lists; a part that fails removes nothing. Exit 0 when every part
    /// completed, 1 when any failed (the completed ones are applied).
    ///
    ///   accessdrift inventory --config accessdrift.toml --db ad.db
    ///   accessdrift baseline capture --config accessdrift.toml --db ad.db
    #[command(verbatim_doc_comment)]
    Inventory(inventory::InventoryArgs),
    /// Event Hubs: `check` connects and prints checkpoint, last enqueued and lag per partition.
    #[command(subcommand)]
    Eventhubs(eventhubs::EventhubsCommand),
}

/// Exit status when stdout is closed before the output is written (`findings | head -1`):
/// 128 + SIGPIPE, what the shell reports for `cat`, `grep` and others killed by SIGPIPE, so
/// `set -o pipefail` scripts treat accessdrift like any other tool. Nothing is printed.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Entry point used by `main`: errors become one clear message and exit code 1 (2 for usage,
/// [`EXIT_BROKEN_PIPE`] when the reader of stdout went away).
pub fn main() -> ExitCode {
    out::exit_quietly_on_broken_pipe_panic();
    let cli = Cli::parse();
    // Held to the end of main: dropping it flushes the spans still queued.
    let _telemetry = match telemetry::init(&cli.log_level, cli.log_format) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("accessdrift: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(e) => {
            eprintln!("accessdrift: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Replay(a) => replay::run(&cfg, a),
        Command::Baseline(c) => baseline::run(&cfg, c),
        Command::Findings(a) => findings::list(&cfg, a),
        Command::Ack(a) => findings::ack(&cfg, a),
        Command::Notify(a) => findings::notify(&cfg, a),
        Command::Outbox(a) => outbox::run(&cfg, a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(&cfg, a),
        Command::Run(a) => run::run(cfg, cli.config.as_deref(), a),
        Command::Rules(a) => rules::run(&cfg, a),
        Command::Eventhubs(c) => eventhubs::run(&cfg, c),
        Command::Inventory(a) => inventory::run(&cfg, a),
        Command::CheckConfig => {
            let toml = cfg.to_toml()?;
            outln!("# effective configuration: defaults filled in, secrets shown as references")?;
            // As comments, so the output still loads back as the same configuration.
            let sources = cfg.enabled_sources();
            if sources.is_empty() {
                outln!(
                    "# `accessdrift run` would start no source: {}",
                    run::NO_SOURCE_HINT
                )?;
            } else {
                outln!(
                    "# `accessdrift run` would start {} source(s):",
                    sources.len()
                )?;
                for s in &sources {
                    outln!("#   {s}")?;
                }
            }
            out!("{toml}")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who is acting, for baseline history: `--by`, else `$USER`, else `unknown`.
fn actor(by: &Option<String>) -> String {
    by.clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
