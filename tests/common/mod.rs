//! Test builders: Activity Log records and Kubernetes objects, and a store in a temp dir.
#![allow(dead_code)]

use accessdrift::config::Config;
use accessdrift::pipeline::replay::{self, ReplaySummary};
use accessdrift::pipeline::Pipeline;
use accessdrift::store::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const SUB: &str = "6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

pub fn cluster_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks")
}

/// An Activity Log record in the Event Hubs schema.
#[derive(Clone)]
pub struct Rec {
    pub v: Value,
}

impl Rec {
    pub fn new(op: &str, resource: &str, result: &str, corr: &str, time: &str) -> Rec {
        Rec {
            v: json!({
                "time": time,
                "resourceId": resource.to_uppercase(),
                "operationName": op.to_uppercase(),
                "category": "Administrative",
                "resultType": result,
                "correlationId": corr,
                "callerIpAddress": "198.51.100.77",
                "identity": {"claims": {
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "mallory@contoso.com",
                    "http://schemas.microsoft.com/identity/claims/objectidentifier": "6d6d6d6d-0000-4000-8000-00000000dead"
                }},
                "properties": {"statusCode": "OK"}
            }),
        }
    }

    pub fn request(mut self, body: Value) -> Rec {
        self.v["properties"]["requestbody"] = json!(body.to_string());
        self
    }

    pub fn line(&self) -> String {
        self.v.to_string()
    }
}

pub fn assignment_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

/// The three phases of an Owner assignment at subscription scope.
pub fn owner_grant(corr: &str, name: &str, principal: &str, day: u32) -> [Rec; 3] {
    let id = assignment_id(name);
    let op = "Microsoft.Authorization/roleAssignments/write";
    let body = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"), "principalId": principal, "principalType": "User", "scope": format!("/subscriptions/{SUB}")}});
    [
        Rec::new(
            op,
            &id,
            "Start",
            corr,
            &format!("2026-11-{day:02}T10:00:00.0000000Z"),
        )
        .request(body),
        Rec::new(
            op,
            &id,
            "Accept",
            corr,
            &format!("2026-11-{day:02}T10:00:01.0000000Z"),
        ),
        Rec::new(
            op,
            &id,
            "Success",
            corr,
            &format!("2026-11-{day:02}T10:00:02.0000000Z"),
        ),
    ]
}

pub fn envelope(recs: &[&Rec]) -> String {
    let v: Vec<&Value> = recs.iter().map(|r| &r.v).collect();
    json!({ "records": v }).to_string()
}

pub fn crb(name: &str, role: &str, subject: (&str, &str), rv: &str, time: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "resourceVersion": rv, "uid": format!("uid-{name}"), "creationTimestamp": "2026-10-01T08:00:00Z",
                     "managedFields": [{"manager": "kubectl", "operation": "Update", "time": time}]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": subject.0, "name": subject.1, "apiGroup": "rbac.authorization.k8s.io"}]
    })
}

pub fn watch(ty: &str, obj: &Value) -> String {
    json!({"type": ty, "object": obj}).to_string()
}

/// A temp dir holding a database and input files.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            cfg: Config::default(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }

    pub fn write(&self, name: &str, lines: &[String]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db()).unwrap()
    }

    pub fn replay(&self, files: &[PathBuf]) -> ReplaySummary {
        let mut store = self.store();
        let mut p = Pipeline::new(&mut store, &self.cfg, vec!["stdout".into()]);
        replay::run(&mut p, files, "c1").unwrap()
    }

    pub fn dump(&self) -> String {
        dump(&self.db())
    }
}

pub fn dump(db: &Path) -> String {
    Store::open(db).unwrap().read().unwrap().dump().unwrap()
}

// --- Baseline builders (tests/baseline.rs, tests/baseline_cli.rs) ---

/// A ClusterRoleBinding with several subjects, in the order given.
pub fn crb_subjects(name: &str, role: &str, subjects: &[(&str, &str)], rv: &str) -> Value {
    let mut o = crb(name, role, ("User", "x"), rv, "2026-11-01T00:00:00Z");
    o["subjects"] = Value::Array(
        subjects
            .iter()
            .map(|(k, n)| json!({"kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io"}))
            .collect(),
    );
    o
}

/// Day 1: an Owner grant to `p1` and a ClusterRoleBinding with two subjects (one an Entra
/// group GUID). Returns the files to replay.
pub fn baseline_day1(env: &Env) -> Vec<PathBuf> {
    let [a, b, c] = owner_grant("d1", "ra1", P1, 1);
    let az = env.write("day1-activity.json", &[envelope(&[&a, &b, &c])]);
    let k8s = env.write(
        "day1-k8s.ndjson",
        &[watch(
            "ADDED",
            &crb_subjects("ops", "view", &[("User", "zed"), ("Group", GROUP)], "10"),
        )],
    );
    vec![az, k8s]
}

/// Day 2: an unapproved Owner grant to `p2`.
pub fn baseline_day2(env: &Env) -> PathBuf {
    let [a, b, c] = owner_grant("d2", "ra2", P2, 2);
    env.write("day2-activity.json", &[envelope(&[&a, &b, &c])])
}

/// Principal of the day-1 grant.
pub const P1: &str = "11111111-aaaa-4aaa-8aaa-111111111111";
/// Principal of the day-2 grant.
pub const P2: &str = "22222222-bbbb-4bbb-8bbb-222222222222";
/// An Entra group object id.
pub const GROUP: &str = "c0ffee00-1111-2222-3333-444455556666";

/// The binary under test, for CLI-level tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

/// `accessdrift ARGS…` with the environment that would steer it (crash hook, default db and
/// config) removed, so a developer's shell cannot change a test's outcome.
pub fn cmd(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.args(args)
        .env_remove("ACCESSDRIFT_TEST_CRASH_AT")
        .env_remove("ACCESSDRIFT_DB")
        .env_remove("ACCESSDRIFT_CONFIG");
    c
}

/// Runs `accessdrift ARGS…` to completion.
pub fn ad(args: &[&str]) -> std::process::Output {
    cmd(args).output().unwrap()
}

/// Stdout then stderr, as one text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
