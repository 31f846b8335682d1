//! `accessdrift demo`: a baseline day and a change day of bundled data, end to end.

use super::render;
use crate::config::Config;
use crate::notify::{Notifier, StdoutSink};
use crate::pipeline::{replay, Pipeline};
use crate::store::Store;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The bundled files, written out so every location in the output points at a real file.
const FILES: &[(&str, &[u8])] = &[
    (
        "day1-activity.json",
        include_bytes!("../../examples/demo/day1-activity.json"),
    ),
    (
        "day1-k8s.json",
        include_bytes!("../../examples/demo/day1-k8s.json"),
    ),
    (
        "day2-activity.json",
        include_bytes!("../../examples/demo/day2-activity.json"),
    ),
    (
        "day2-k8s.ndjson",
        include_bytes!("../../examples/demo/day2-k8s.ndjson"),
    ),
];

/// The example configuration, which names the demo cluster.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/accessdrift.example.toml");

/// Cluster name of the demo's Kubernetes data.
const CLUSTER: &str = "aks-prod-weu";

/// Written into the demo directory before anything else: only a directory carrying it is
/// one the demo may overwrite (sample files) and delete from (its database).
const MARKER: &str = ".accessdrift-demo";

/// Database file name inside the demo directory.
const DB_NAME: &str = "accessdrift.db";

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the sample files and the database. A directory an earlier demo made is
    /// reused (its database recreated); one holding files of the same names that the demo
    /// did not write is refused, never overwritten.
    #[arg(long, default_value = "accessdrift-demo")]
    dir: PathBuf,
}

/// Makes `dir` ready for a fresh demo run: refuses when it holds a database or sample file
/// the demo did not write, otherwise marks it and removes the previous demo database.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let marker = dir.join(MARKER);
    let db = dir.join(DB_NAME);
    let db_files: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .collect();
    if !marker.exists() {
        let ours = FILES.iter().map(|(name, _)| dir.join(name));
        if let Some(taken) = db_files.iter().cloned().chain(ours).find(|p| p.exists()) {
            anyhow::bail!(
                "{} already exists and was not written by `accessdrift demo` (no {MARKER} marker in {}): the demo never overwrites or deletes files it did not create; choose another --dir (e.g. --dir accessdrift-demo)",
                taken.display(),
                dir.display()
            );
        }
        std::fs::write(
            &marker,
            "This directory was written by `accessdrift demo`; the next demo run recreates its files.\n",
        )
        .with_context(|| format!("writing {}", marker.display()))?;
    }
    for p in db_files.iter().filter(|p| p.exists()) {
        std::fs::remove_file(p)
            .with_context(|| format!("removing the previous demo database {}", p.display()))?;
    }
    Ok(db)
}

pub(super) fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::parse(
        EXAMPLE_CONFIG,
        Path::new("config/accessdrift.example.toml (bundled)"),
    )?;
    let db = prepare_dir(&a.dir)?;
    for (name, bytes) in FILES {
        let p = a.dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    let mut store = Store::open(&db)?;
    let sinks = vec!["stdout".to_string()];
    let file = |n: &str| a.dir.join(n);

    outln!("== Day 1: replaying the baseline day into {}", db.display())?;
    let s = replay::run(
        &mut Pipeline::new(&mut store, &cfg, sinks.clone()),
        &[file("day1-activity.json"), file("day1-k8s.json")],
        CLUSTER,
    )?;
    out!("{}", render::summary(&s, false))?;

    outln!("\n== Approving what day 1 shows: accessdrift baseline capture")?;
    let (v, n, _) = super::baseline::capture(&mut store, &cfg, "demo", "baseline day", &sinks)?;
    outln!("baseline version {v}: {n} facts approved")?;

    outln!("\n== Day 2: replaying the change day")?;
    let s = replay::run(
        &mut Pipeline::new(&mut store, &cfg, sinks.clone()),
        &[file("day2-activity.json"), file("day2-k8s.ndjson")],
        CLUSTER,
    )?;
    out!("{}", render::summary(&s, true))?;

    outln!(
        "\n== Open findings (accessdrift findings --db {})",
        db.display()
    )?;
    let findings = store.read()?.findings(true)?;
    out!("{}", render::findings_table(&findings))?;

    outln!("\n== Notifications it would send (the outbox, drained to stdout)")?;
    drop(store);
    let mut notifier = Notifier::with_sinks(
        vec![Box::new(StdoutSink::new(std::io::stdout(), false))],
        cfg.notify.clone(),
        &db,
    )?
    .leave_other_sinks();
    let r = notifier.drain_once()?;
    outln!("{} notifications delivered to stdout", r.delivered)?;

    outln!("\nExplore further:")?;
    outln!("  accessdrift findings --db {} --json", db.display())?;
    outln!("  accessdrift baseline diff --db {}", db.display())?;
    outln!("  accessdrift baseline approve --db {} <ID>", db.display())?;
    Ok(ExitCode::SUCCESS)
}
