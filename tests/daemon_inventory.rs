//! `accessdrift run` with `[azure]`: readiness waits for the first complete snapshot and names
//! what it lacks (a 403 on one part), SIGTERM during a hung ARM request exits at once, and an
//! Activity Log record without a body (from the in-test Event Hubs broker) makes the daemon
//! read the resource from the in-test ARM server, keeping the record's author.

#[path = "support/amqp_broker.rs"]
mod amqp_broker;
#[path = "support/arm_server.rs"]
mod arm_server;
mod common;
#[path = "support/daemon.rs"]
mod daemon;

use amqp_broker::AmqpBroker;
use arm_server::{activation, assignment, cluster, eligibility, ArmServer, Fault, OWNER, READER};
use common::{envelope, Rec};
use daemon::{cli, wait_for, Daemon};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "contoso-logs.servicebus.windows.net";
const HUB: &str = "activity";

fn cluster_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod")
}

struct Env {
    arm: ArmServer,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let arm = ArmServer::start(50);
        arm.set_assignments(
            SUB,
            (0..3)
                .map(|i| {
                    assignment(
                        SUB,
                        &format!("ra-{i}"),
                        "",
                        &format!("{:08x}-0000-0000-0000-000000000000", i + 1),
                        READER,
                    )
                })
                .collect(),
        );
        arm.set_cluster(&cluster_id(), Some(cluster(&cluster_id(), true, &[])));
        Env {
            arm,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("ad.db")
    }

    fn config(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join("accessdrift.toml");
        std::fs::write(
            &p,
            format!(
                "[[clusters]]\nname = \"aks-prod\"\nresource_id = \"{}\"\n\n[azure]\nauth = \"managed_identity\"\narm_endpoint = \"{}\"\nmax_attempts = 2\nrequest_timeout = \"60s\"\nhint_debounce = \"100ms\"\n\n{extra}\n[server]\nlisten = \"127.0.0.1:0\"\n\n[notify]\npoll_interval = \"200ms\"\n",
                cluster_id(),
                self.arm.endpoint()
            ),
        )
        .unwrap();
        p
    }

    fn env(&self) -> Vec<(String, String)> {
        self.arm.identity_env()
    }

    fn start(&self, extra: &str) -> Daemon {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Daemon::start_env(&self.config(extra), &self.db(), &[], &env)
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = common::cmd(args);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        let o = c.env_remove("RUST_LOG").output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Env {
    /// Day one (`inventory`, then `baseline capture`), then the daemon with an Event Hub of
    /// the in-test broker next to the inventory; returns the broker's runtime, the broker and
    /// the daemon, ready.
    fn day_one_then_daemon_with_hub(&self) -> (tokio::runtime::Runtime, AmqpBroker, Daemon) {
        let cfg = self.config("");
        let (cfg_s, db) = (cfg.display().to_string(), self.db().display().to_string());
        let (code, out, err) = self.cli(&["inventory", "--config", &cfg_s, "--db", &db]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, _, err) = cli(&["baseline", "capture", "--db", &db, "--by", "t"]);
        assert_eq!(code, 0, "{err}");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let broker = rt.block_on(AmqpBroker::start(HUB, 1, &["accessdrift"]));
        let secret = self.dir.path().join("eh");
        std::fs::write(&secret, format!("Endpoint=sb://{NS}/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath={HUB}\n")).unwrap();
        let eh = format!(
            "[eventhubs]\nnamespace = \"{NS}\"\neventhub = \"{HUB}\"\nconsumer_group = \"accessdrift\"\nauth = \"connection_string\"\nconnection_string = {{ file = {secret:?} }}\ncustom_endpoint = \"{}\"\nmax_wait = \"50ms\"\nrebalance_interval = \"1s\"\n",
            broker.endpoint()
        );
        let mut d = self.start(&eh);
        d.wait_ready(LIMIT);
        (rt, broker, d)
    }
}

#[test]
fn readiness_waits_for_a_complete_snapshot_and_names_the_refused_part() {
    let env = Env::new();
    let mut f = Fault::status("roledefinitions", 403);
    f.error = ("AuthorizationFailed".into(), format!("The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/read' over scope '/subscriptions/{SUB}' or the scope is invalid."));
    env.arm.fault(f);
    let mut d = env.start("");
    let body = wait_for("readyz to name the refused part", LIMIT, || {
        let (code, body) = d.readyz()?;
        let why = body["not_ready"]["inventory"].as_str()?.to_string();
        (code == 503 && why.contains("roleDefinitions/read")).then_some(body)
    });
    assert!(
        body["not_ready"]["inventory"]
            .as_str()
            .unwrap()
            .contains("custom role definitions"),
        "{body}"
    );
    // The other parts went on: the assignments are in the store.
    let mut store = accessdrift::store::Store::open_read_only(&env.db()).unwrap();
    let n = store
        .read()
        .unwrap()
        .facts()
        .unwrap()
        .iter()
        .filter(|f| f.kind.as_str() == "role_assignment")
        .count();
    assert_eq!(n, 3);
    drop(store);
    // Granted: the next try completes and the daemon is ready.
    env.arm.clear_faults();
    assert!(d.terminate(Duration::from_secs(10)).success());
    let mut d = env.start("");
    d.wait_ready(LIMIT);
    assert!(d.terminate(Duration::from_secs(10)).success());
}

#[test]
fn sigterm_during_a_hung_arm_request_exits_cleanly_within_ten_seconds() {
    let env = Env::new();
    let mut f = Fault::status("roleassignments$", 200);
    f.hang = true;
    env.arm.fault(f);
    let mut d = env.start("");
    wait_for("the daemon to ask ARM for role assignments", LIMIT, || {
        env.arm
            .seen()
            .iter()
            .any(|s| s.uri.to_ascii_lowercase().contains("/roleassignments?"))
            .then_some(())
    });
    let (code, body) = d.readyz().unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body["not_ready"]["inventory"]
            .as_str()
            .unwrap_or("")
            .contains("role assignments"),
        "{body}"
    );
    let started = Instant::now();
    let st = d.terminate(Duration::from_secs(10));
    assert!(st.success(), "{st:?}\n{}", d.stderr());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_bodyless_cluster_write_makes_the_daemon_read_the_cluster_and_keeps_the_author() {
    let env = Env::new();
    // Day one: inventory, then approve.
    let (_rt, broker, mut d) = env.day_one_then_daemon_with_hub();
    let db = env.db().display().to_string();

    // Someone turns local accounts back on; the Activity Log says so without a body.
    env.arm
        .set_cluster(&cluster_id(), Some(cluster(&cluster_id(), false, &[])));
    let t = accessdrift::domain::EventTime::now()
        .add_nanos(-30_000_000_000)
        .to_string();
    let op = "Microsoft.ContainerService/managedClusters/write";
    let start = Rec::new(op, &cluster_id(), "Start", "corr-local", &t);
    let success = Rec::new(op, &cluster_id(), "Success", "corr-local", &t);
    broker.append(0, envelope(&[&start, &success]).as_bytes());

    let f = wait_for("a finding from the ARM read", LIMIT, || {
        let (_, out, _) = cli(&["findings", "--db", &db, "--json"]);
        let v: Vec<Value> = serde_json::from_str(&out).ok()?;
        v.into_iter()
            .find(|f| f["kind"] == "drift" && f["fact_kind"] == "cluster_settings")
    });
    assert_eq!(f["actual"]["disable_local_accounts"], false, "{f}");
    assert_eq!(f["actor"]["upn"], "mallory@contoso.com", "{f}");
    assert_eq!(f["correlation_id"], "corr-local", "{f}");
    assert!(
        env.arm
            .seen()
            .iter()
            .filter(|s| s
                .uri
                .to_ascii_lowercase()
                .contains("managedclusters/aks-prod"))
            .count()
            >= 3,
        "inventory + daemon snapshot + hint GET"
    );
    assert!(d.terminate(Duration::from_secs(10)).success());
}

/// A PIM activation record on the hub: the daemon reads the activation's schedule instance
/// from ARM for the end time the record does not carry, and reports the activation of the
/// approved eligibility as `AZ-PIM-ACTIVATION`, not as an unapproved Owner.
#[test]
fn a_pim_activation_record_makes_the_daemon_read_its_schedule() {
    const CAROL: &str = "cccccccc-0000-4000-8000-00000000000c";
    let env = Env::new();
    let scope = format!("/subscriptions/{SUB}");
    env.arm.set_eligibilities(
        SUB,
        vec![eligibility(SUB, "el-carol", &scope, CAROL, OWNER, None)],
    );
    let (_rt, broker, mut d) = env.day_one_then_daemon_with_hub();
    let db = env.db().display().to_string();

    // Carol activates; PIM logs it without an end time, ARM lists the schedule instance.
    let until = accessdrift::domain::EventTime::now()
        .add_nanos(2 * 3600 * 1_000_000_000)
        .to_string();
    env.arm.set_activations(
        SUB,
        vec![activation(SUB, "act-carol", &scope, CAROL, OWNER, &until)],
    );
    let now = accessdrift::domain::EventTime::now().to_string();
    let rec = serde_json::json!({
        "time": now, "resourceId": scope.to_uppercase(), "category": "Administrative",
        "correlationId": "91d00000-0000-4000-8000-000000000001",
        "operationName": "Add member to role completed (PIM activation)", "resultType": "Succeeded",
        "properties": {
            "OriginRoleAssignmentId": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/act-carol"),
            "RoleDefinitionOriginId": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"),
            "SubjectID": CAROL, "Justification": "INC-1234",
            "CallerInfo": "[{\"CallerIdentityType\":\"UPN\",\"CallerIdentityValue\":\"carol@contoso.com\"}]"
        }
    });
    broker.append(
        0,
        serde_json::json!({"records": [rec]}).to_string().as_bytes(),
    );

    let f = wait_for("the activation with its end time", LIMIT, || {
        let (_, out, _) = cli(&["findings", "--db", &db, "--json"]);
        let v: Vec<Value> = serde_json::from_str(&out).ok()?;
        v.into_iter().find(|f| {
            f["rule"] == "AZ-PIM-ACTIVATION"
                && f["title"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!("until {until}")))
        })
    });
    assert_eq!(f["severity"], "low", "{f}");
    assert_eq!(f["actor"]["upn"], "carol@contoso.com", "{f}");
    assert!(
        env.arm
            .seen()
            .iter()
            .any(|s| s.uri.contains("roleAssignmentScheduleInstances")
                && s.uri.contains("assignedTo(")),
        "the targeted read"
    );
    assert!(d.terminate(Duration::from_secs(10)).success());
}
