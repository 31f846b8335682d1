//! `accessdrift bench`: replay throughput on a generated corpus vs a bare JSON parse.

use crate::config::Config;
use crate::pipeline::{replay, Pipeline};
use crate::store::Store;
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Number of Activity Log records to generate.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Percentage of records that are watched operations (the rest is noise, as in real hubs).
    #[arg(long, default_value_t = 4.0)]
    relevant_percent: f64,
    /// Seed of the generator (same seed, same corpus).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Measurement rounds per side; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    rounds: u64,
    /// Also write the corpus to this file (to profile `replay` on it, or feed other tools).
    #[arg(long, value_name = "FILE")]
    save_corpus: Option<std::path::PathBuf>,
}

/// Deterministic xorshift64*: the corpus must be the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn guid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

const SUB: &str = "6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";
const NOISE_OPS: &[(&str, &str, &str)] = &[
    (
        "MICROSOFT.STORAGE/STORAGEACCOUNTS/WRITE",
        "Administrative",
        "Microsoft.Storage/storageAccounts/stprod{n}",
    ),
    (
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/START/ACTION",
        "Administrative",
        "Microsoft.Compute/virtualMachines/vm-{n}",
    ),
    (
        "MICROSOFT.WEB/SITES/CONFIG/WRITE",
        "Administrative",
        "Microsoft.Web/sites/app-{n}/config/appsettings",
    ),
    (
        "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
        "Administrative",
        "Microsoft.Network/networkSecurityGroups/nsg-{n}",
    ),
    (
        "MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE",
        "Administrative",
        "Microsoft.KeyVault/vaults/kv-{n}/providers/microsoft.insights/diagnosticSettings/ds",
    ),
    (
        "MICROSOFT.RESOURCEHEALTH/HEALTHEVENT/ACTIVATED/ACTION",
        "ResourceHealth",
        "Microsoft.Compute/virtualMachines/vm-{n}",
    ),
    (
        "MICROSOFT.EVENTHUB/NAMESPACES/AUTHORIZATIONRULES/LISTKEYS/ACTION",
        "Administrative",
        "Microsoft.EventHub/namespaces/ehns-{n}/authorizationRules/RootManageSharedAccessKey",
    ),
];

/// Who and when, shared by the records of one operation.
struct Call<'a> {
    time: &'a str,
    corr: &'a str,
    upn: &'a str,
}

fn base_record(
    rng: &mut Rng,
    call: &Call<'_>,
    op: &str,
    category: &str,
    resource: &str,
    result: &str,
) -> Value {
    let Call { time, corr, upn } = *call;
    let oid = rng.guid();
    json!({
        "time": time,
        "resourceId": resource.to_uppercase(),
        "operationName": op,
        "category": category,
        "resultType": result,
        "resultSignature": if result == "Start" { "Started." } else { "Succeeded." },
        "durationMs": rng.below(3000),
        "callerIpAddress": format!("203.0.113.{}", rng.below(250)),
        "correlationId": corr,
        "identity": {
            "authorization": {
                "scope": resource,
                "action": op.to_lowercase(),
                "evidence": {"role": "Contributor", "roleAssignmentScope": format!("/subscriptions/{SUB}"), "roleAssignmentId": rng.guid().replace('-', ""), "roleDefinitionId": "b24988ac618042a0ab8820f7382dd24c", "principalId": oid.replace('-', ""), "principalType": "User"}
            },
            "claims": {
                "aud": "https://management.core.windows.net/",
                "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": upn,
                "http://schemas.microsoft.com/identity/claims/objectidentifier": oid,
                "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                "ipaddr": "203.0.113.10",
                "name": upn,
                "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation",
                "uti": "kINdgmA35kmIMsXXinoXAA",
                "ver": "1.0"
            }
        },
        "level": "Information",
        "location": "global",
        "properties": {"statusCode": if result == "Start" { "Created" } else { "OK" }, "serviceRequestId": rng.guid(), "eventCategory": category, "entity": resource, "message": op.to_lowercase(), "hierarchy": format!("72f988bf-86f1-41af-91ab-2d7cd011db47/{SUB}")}
    })
}

/// The phases of one watched operation.
fn relevant(rng: &mut Rng, time: &str, upn: &str) -> Vec<Value> {
    let corr = rng.guid();
    let rg = format!("/subscriptions/{SUB}/resourceGroups/rg-{}", rng.below(40));
    let (op, resource, body) = match rng.below(6) {
        0 | 1 => {
            let scope = rg.clone();
            let role = ["b24988ac-6180-42a0-ab88-20f7382dd24c", "7f951dda-4ed3-4680-a7ca-43fe172d538d", "acdd72a7-3385-48ef-bd42-f606fba81ae7"][rng.below(3) as usize];
            (
                "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
                format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}", rng.guid()),
                Some(json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"), "principalId": rng.guid(), "principalType": "ServicePrincipal", "scope": scope}})),
            )
        }
        2 => (
            "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/WRITE",
            format!("{rg}/providers/Microsoft.ContainerService/managedClusters/aks-{}", rng.below(8)),
            Some(json!({"location": "westeurope", "identity": {"type": "SystemAssigned"}, "properties": {"kubernetesVersion": "1.33.2", "disableLocalAccounts": rng.below(2) == 0, "enableRBAC": true, "aadProfile": {"managed": true, "enableAzureRBAC": true, "adminGroupObjectIDs": [rng.guid()]}, "servicePrincipalProfile": {"clientId": "msi"}, "oidcIssuerProfile": {"enabled": true}, "securityProfile": {"workloadIdentity": {"enabled": true}}, "agentPoolProfiles": [{"name": "system", "count": 3, "vmSize": "Standard_D4s_v5", "mode": "System"}]}})),
        ),
        3 => (
            "MICROSOFT.MANAGEDIDENTITY/USERASSIGNEDIDENTITIES/FEDERATEDIDENTITYCREDENTIALS/WRITE",
            format!("{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{}/federatedIdentityCredentials/fic-{}", rng.below(20), rng.below(5)),
            Some(json!({"properties": {"issuer": "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/0f4e1d2c/", "subject": format!("system:serviceaccount:ns-{}:sa-{}", rng.below(10), rng.below(10)), "audiences": ["api://AzureADTokenExchange"]}})),
        ),
        4 => (
            "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE",
            format!("{rg}/providers/Microsoft.Authorization/roleAssignments/{}", rng.guid()),
            None,
        ),
        _ => (
            "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/LISTCLUSTERADMINCREDENTIAL/ACTION",
            format!("{rg}/providers/Microsoft.ContainerService/managedClusters/aks-{}", rng.below(8)),
            None,
        ),
    };
    let mut out = Vec::new();
    for phase in ["Start", "Accept", "Success"] {
        let call = Call {
            time,
            corr: &corr,
            upn,
        };
        let mut r = base_record(rng, &call, op, "Administrative", &resource, phase);
        if phase == "Start" {
            if let Some(b) = &body {
                r["properties"]["requestbody"] = json!(b.to_string());
            }
        }
        out.push(r);
    }
    out
}

/// A corpus of `n` records as NDJSON of Event Hubs envelopes (20 records each), written
/// envelope by envelope so the generator holds little besides the output.
pub fn generate(n: usize, relevant_percent: f64, seed: u64) -> (Vec<u8>, usize) {
    let mut rng = Rng(seed.max(1));
    let mut out = Vec::with_capacity(n * 2200);
    let mut chunk: Vec<Value> = Vec::with_capacity(24);
    let mut produced = 0;
    let mut relevant_records = 0;
    let threshold = (relevant_percent / 100.0 * 1_000_000.0 / 3.0) as u64;
    let upns = [
        "alice@contoso.com",
        "bob@contoso.com",
        "ci-bot@contoso.com",
        "mallory@contoso.com",
    ];
    while produced < n {
        let i = produced;
        let time = format!(
            "2026-11-03T{:02}:{:02}:{:02}.{:07}Z",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            rng.below(10_000_000)
        );
        let upn = upns[rng.below(4) as usize];
        if rng.below(1_000_000) < threshold && produced + 3 <= n {
            let r = relevant(&mut rng, &time, upn);
            relevant_records += r.len();
            produced += r.len();
            chunk.extend(r);
        } else {
            let (op, cat, res) = NOISE_OPS[rng.below(NOISE_OPS.len() as u64) as usize];
            let resource = format!(
                "/subscriptions/{SUB}/resourceGroups/rg-{}/providers/{}",
                rng.below(40),
                res.replace("{n}", &rng.below(500).to_string())
            );
            let phase = if rng.below(2) == 0 {
                "Start"
            } else {
                "Success"
            };
            let corr = rng.guid();
            let call = Call {
                time: &time,
                corr: &corr,
                upn,
            };
            chunk.push(base_record(&mut rng, &call, op, cat, &resource, phase));
            produced += 1;
        }
        if chunk.len() >= 20 || produced >= n {
            serde_json::to_writer(&mut out, &json!({ "records": chunk })).expect("in-memory write");
            out.push(b'\n');
            chunk.clear();
        }
    }
    (out, relevant_records)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(super) fn run(cfg: &Config, a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.records == 0 {
        anyhow::bail!("--records must be at least 1");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    let t = Instant::now();
    let (corpus, relevant) = generate(a.records, a.relevant_percent, a.seed);
    let mb = corpus.len() as f64 / 1e6;
    println!(
        "generated {} records ({relevant} in watched operations, {:.1} MB) in {:.2}s",
        a.records,
        mb,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile_dir()?;
    let input = dir.join("corpus.ndjson");
    std::fs::File::create(&input)?.write_all(&corpus)?;
    if let Some(p) = &a.save_corpus {
        std::fs::write(p, &corpus).with_context(|| format!("writing {}", p.display()))?;
    }

    // Each side runs `rounds` times and the median counts: one slow round on a shared
    // 2-core machine must not decide the figure.
    let mut bare_times = Vec::with_capacity(a.rounds as usize);
    for _ in 0..a.rounds {
        // Bare parse: every envelope fully into serde_json::Value, the floor any JSON consumer pays.
        let t = Instant::now();
        let mut parsed = 0usize;
        for line in corpus.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line)?;
            parsed += v["records"].as_array().map_or(0, Vec::len);
        }
        bare_times.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            parsed == a.records,
            "bare parse saw {parsed} records, expected {}",
            a.records
        );
    }
    drop(corpus);
    // From here on the peak covers only the pipeline (Linux resets VmHWM on "5").
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let mut pipe_times = Vec::with_capacity(a.rounds as usize);
    let mut summary = None;
    for round in 0..a.rounds {
        // A fresh database each round: every round does the full work.
        let db = dir.join(format!("bench-{round}.db"));
        let mut store = Store::open(&db)?;
        let t = Instant::now();
        let s = replay::run(
            &mut Pipeline::new(&mut store, cfg, vec!["stdout".into()]),
            std::slice::from_ref(&input),
            "bench",
        )?;
        pipe_times.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            s.records == a.records as u64,
            "pipeline saw {} records, expected {}",
            s.records,
            a.records
        );
        summary = Some(s);
    }
    let summary = summary.expect("at least one round");
    let _ = std::fs::remove_dir_all(&dir);
    let (pipe, bare) = (median(&mut pipe_times), median(&mut bare_times));
    println!(
        "rounds {}: pipeline {:?} s, bare parse {:?} s (medians used)",
        a.rounds,
        pipe_times
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        bare_times
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );

    let pipe_rps = a.records as f64 / pipe;
    let bare_rps = a.records as f64 / bare;
    let st = &summary.stats;
    println!("pipeline: {:.3}s, {:.0} records/s, {:.0} MB/s (applied {}, skipped {}, malformed {}, findings opened {})",
        pipe, pipe_rps, mb / pipe, st.applied, st.skipped.values().sum::<u64>(), summary.malformed.len(), st.opened);
    println!(
        "bare serde_json::from_slice::<Value>: {:.3}s, {:.0} records/s, {:.0} MB/s",
        bare,
        bare_rps,
        mb / bare
    );
    match peak_rss_kib() {
        Some(kib) if peak_reset => println!(
            "pipeline peak RSS {:.1} MiB (input streamed in {} MiB chunks; the corpus itself was freed first)",
            kib as f64 / 1024.0,
            crate::sources::replay::CHUNK >> 20
        ),
        Some(kib) => println!("peak RSS {:.1} MiB (includes the generated corpus)", kib as f64 / 1024.0),
        None => {}
    }
    println!(
        "records={} pipeline_records_per_sec={:.0} bare_parse_records_per_sec={:.0} ratio={:.2}",
        a.records,
        pipe_rps,
        bare_rps,
        pipe_rps / bare_rps
    );
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("accessdrift-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
