//! `cargo bench --bench inventory`: `accessdrift inventory` against the in-test ARM server
//! holding 50,000 role assignments (500 pages of 100) and 2,000 managed identities with 4,000
//! federated credentials. Prints the time of a first snapshot, the ARM requests it made, the
//! process's peak RSS, and the same for a second, unchanged snapshot (which must change and
//! open nothing).
//!
//! Sizes can be changed: `cargo bench --bench inventory -- ASSIGNMENTS IDENTITIES`.

#[path = "../tests/support/arm_server.rs"]
mod arm_server;

use arm_server::{assignment, cluster, fic, identity, ArmServer, READER};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `args`, sampling the child's peak RSS until it exits: (elapsed, peak MB, stdout).
fn run(args: &[&str], env: &[(String, String)]) -> (Duration, f64, String) {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0f64;
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { out }, &mut s).unwrap();
        s
    });
    loop {
        if let Some(m) = peak_rss_mb(pid) {
            peak = peak.max(m);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = t0.elapsed();
    (elapsed, peak, reader.join().unwrap())
}

fn sum(report: &Value, field: &str) -> u64 {
    report["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_u64().unwrap_or(0))
        .sum()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let assignments = args.first().copied().unwrap_or(50_000);
    let identities = args.get(1).copied().unwrap_or(2_000);

    let arm = ArmServer::start(100);
    arm.set_assignments(
        SUB,
        (0..assignments)
            .map(|i| {
                let scope = format!("/subscriptions/{SUB}/resourceGroups/rg-{}", i % 300);
                assignment(
                    SUB,
                    &format!("ra-{i:06}"),
                    &scope,
                    &format!("{:08x}-0000-4000-8000-{:012x}", i, i % 7919),
                    READER,
                )
            })
            .collect(),
    );
    let ids: Vec<Value> = (0..identities)
        .map(|i| {
            identity(
                SUB,
                &format!("id-{i:05}"),
                &format!("{:08x}-1111-4000-8000-000000000000", i),
            )
        })
        .collect();
    for id in &ids {
        let iid = id["id"].as_str().unwrap();
        arm.set_fics(
            iid,
            (0..2)
                .map(|j| {
                    fic(
                        iid,
                        &format!("fic-{j}"),
                        "https://westeurope.oic.prod-aks.azure.com/tenant/issuer/",
                        &format!("system:serviceaccount:ns-{j}:sa"),
                    )
                })
                .collect(),
        );
    }
    arm.set_identities(SUB, ids);
    let cid = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod");
    arm.set_cluster(&cid, Some(cluster(&cid, true, &[])));

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let cfg = dir.path().join("accessdrift.toml");
    std::fs::write(
        &cfg,
        format!("[[clusters]]\nname = \"aks-prod\"\nresource_id = \"{cid}\"\n\n[azure]\nauth = \"managed_identity\"\narm_endpoint = \"{}\"\n", arm.endpoint()),
    )
    .unwrap();
    let env = arm.identity_env();
    let (cfg_s, db_s) = (cfg.display().to_string(), db.display().to_string());
    let inventory = [
        "inventory",
        "--json",
        "--config",
        cfg_s.as_str(),
        "--db",
        db_s.as_str(),
    ];
    println!(
        "inventory bench: {assignments} role assignments in {} pages, {identities} identities with {} federated credentials",
        assignments.div_ceil(100),
        identities * 2
    );

    let (t1, rss1, out1) = run(&inventory, &env);
    let r1: Value = serde_json::from_str(&out1).expect("inventory --json");
    let req1 = r1["requests"].as_u64().unwrap_or(0);
    println!("  first snapshot:         {:>8.2} s   {:>6} requests   peak RSS {:>6.1} MB   facts added {}", t1.as_secs_f64(), req1, rss1, sum(&r1, "added"));
    assert_eq!(r1["complete"], true, "{out1}");

    let capture = Command::new(BIN)
        .args(["baseline", "capture", "--db", &db_s, "--by", "bench"])
        .output()
        .unwrap();
    assert!(capture.status.success());

    let (t2, rss2, out2) = run(&inventory, &env);
    let r2: Value = serde_json::from_str(&out2).expect("inventory --json");
    let changed = sum(&r2, "added") + sum(&r2, "changed") + sum(&r2, "removed");
    let opened = sum(&r2, "findings_opened");
    println!(
        "  unchanged snapshot:     {:>8.2} s   {:>6} requests   peak RSS {:>6.1} MB   facts changed {changed}, findings opened {opened}",
        t2.as_secs_f64(),
        r2["requests"].as_u64().unwrap_or(0),
        rss2
    );
    println!(
        "  throughput:             {:>8.0} objects/s (first), {:.0} objects/s (unchanged)",
        (assignments + identities * 3) as f64 / t1.as_secs_f64(),
        (assignments + identities * 3) as f64 / t2.as_secs_f64()
    );
    assert_eq!(
        (changed, opened),
        (0, 0),
        "an unchanged snapshot changed something: {out2}"
    );
    let _ = Path::new(&db_s);
}
