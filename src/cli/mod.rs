//! Command-line interface. The subcommands and flags here are a contract scripts rely on.

mod baseline;
pub mod bench;
mod demo;
mod findings;
mod render;
mod replay;
mod rules;

use crate::config::Config;
use crate::store::Store;
use crate::telemetry::{self, LogFormat};
use anyhow::Context;
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

/// Where the database is: `--db`, else `[store] path` in the config.
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database file (created if missing). Defaults to `[store] path` from the config.
    #[arg(long, env = "ACCESSDRIFT_DB")]
    pub db: Option<PathBuf>,
}

impl DbArg {
    fn path(&self, cfg: &Config) -> PathBuf {
        self.db.clone().unwrap_or_else(|| cfg.store.path.clone())
    }

    /// Opens the database, creating it when missing (commands that write observations).
    fn open(&self, cfg: &Config) -> anyhow::Result<Store> {
        let path = self.path(cfg);
        Store::open(&path).with_context(|| format!("opening the store at {}", path.display()))
    }

    /// Opens a database that must exist: a mistyped path is an error, not an empty answer.
    fn open_existing(&self, cfg: &Config) -> anyhow::Result<Store> {
        let path = self.path(cfg);
        if !path.exists() {
            anyhow::bail!(
                "no database at {}: create it with `accessdrift replay --db {} FILE…` (or check --db / ACCESSDRIFT_DB / [store] path)",
                path.display(),
                path.display()
            );
        }
        self.open(cfg)
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
    /// some records were skipped or malformed; non-zero when a file cannot be read.
    Replay(replay::ReplayArgs),
    /// Manage the approved baseline: capture, show, diff, approve, export, import.
    #[command(subcommand)]
    Baseline(baseline::BaselineCmd),
    /// List findings: a table for people, or `--json` for scripts.
    Findings(findings::FindingsArgs),
    /// Acknowledge findings: activity findings stay open until someone does.
    Ack(findings::AckArgs),
    /// Deliver queued alerts to the configured sinks (stdout for now), with retries.
    Notify(findings::NotifyArgs),
    /// Replay bundled sample data (a baseline day, then a change day) and show what it finds.
    Demo(demo::DemoArgs),
    /// Measure replay throughput on a generated corpus against a bare JSON parse.
    Bench(bench::BenchArgs),
    /// List the rules catalogue (`--json` for scripts); `rules explain ID` prints one in full.
    Rules(rules::RulesArgs),
    /// Load and validate the configuration, then print the effective settings.
    CheckConfig,
}

/// Entry point used by `main`: errors become one clear message and exit code 1 (2 for usage).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log_level, cli.log_format);
    match run(cli) {
        Ok(code) => code,
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
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(&cfg, a),
        Command::Rules(a) => rules::run(&cfg, a),
        Command::CheckConfig => {
            println!("{cfg:#?}");
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
