//! `accessdrift demo`: a baseline day and a change day of bundled data, end to end.

use super::render;
use crate::config::Config;
use crate::domain::EventTime;
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

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the sample files and the database (recreated on every run).
    #[arg(long, default_value = "accessdrift-demo")]
    dir: PathBuf,
}

pub(super) fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::parse(
        EXAMPLE_CONFIG,
        Path::new("config/accessdrift.example.toml (bundled)"),
    )?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    for (name, bytes) in FILES {
        let p = a.dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    let db = a.dir.join("accessdrift.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("removing the previous demo database {}", p.display()))?;
        }
    }
    let mut store = Store::open(&db)?;
    let sinks = vec!["stdout".to_string()];
    let file = |n: &str| a.dir.join(n);

    println!("== Day 1: replaying the baseline day into {}", db.display());
    let s = replay::run(
        &mut Pipeline::new(&mut store, &cfg, sinks.clone()),
        &[file("day1-activity.json"), file("day1-k8s.json")],
        CLUSTER,
    )?;
    print!("{}", render::summary(&s, false));

    println!("\n== Approving what day 1 shows: accessdrift baseline capture");
    let (v, n, _) = super::baseline::capture(&mut store, &cfg, "demo", "baseline day", &sinks)?;
    println!("baseline version {v}: {n} facts approved");

    println!("\n== Day 2: replaying the change day");
    let s = replay::run(
        &mut Pipeline::new(&mut store, &cfg, sinks.clone()),
        &[file("day2-activity.json"), file("day2-k8s.ndjson")],
        CLUSTER,
    )?;
    print!("{}", render::summary(&s, true));

    println!(
        "\n== Open findings (accessdrift findings --db {})",
        db.display()
    );
    let findings = store.read()?.findings(true)?;
    print!("{}", render::findings_table(&findings));

    println!("\n== Notifications it would send (the outbox, drained to stdout)");
    let mut notifier = Notifier::new(
        vec![Box::new(StdoutSink::new(std::io::stdout(), false))],
        cfg.notify.clone(),
    );
    let r = notifier.drain(&mut store, EventTime::now().unix_seconds())?;
    println!("{} notifications delivered to stdout", r.delivered);

    println!("\nExplore further:");
    println!("  accessdrift findings --db {} --json", db.display());
    println!("  accessdrift baseline diff --db {}", db.display());
    println!("  accessdrift baseline approve --db {} <ID>", db.display());
    Ok(ExitCode::SUCCESS)
}
