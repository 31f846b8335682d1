//! `accessdrift inventory` against the in-test ARM server (tests/support/arm_server.rs) over
//! TCP, with the real `ManagedIdentityCredential` getting its token from the server's App
//! Service token endpoint: day-one inventory, deletes implied by complete listings, merge with
//! Activity Log records by time, paging, throttling, 401 and 403.

#[path = "support/arm_server.rs"]
mod arm_server;
mod common;

use arm_server::{
    activation, assignment, cluster, custom_role, eligibility, fic, identity, ArmServer, Fault,
    OWNER, READER,
};
use common::{envelope, Rec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const MALLORY: &str = "eeeeeeee-0000-0000-0000-00000000000e";
const CAROL: &str = "cccccccc-0000-0000-0000-00000000000c";

fn cluster_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod")
}

struct Env {
    arm: ArmServer,
    dir: tempfile::TempDir,
}

impl Env {
    /// A subscription with `n` Reader assignments, one custom role, one identity with one
    /// credential, and the watched cluster.
    fn new(page_size: usize, n: usize) -> Env {
        let arm = ArmServer::start(page_size);
        arm.set_assignments(
            SUB,
            (0..n)
                .map(|i| {
                    assignment(
                        SUB,
                        &format!("ra-{i:03}"),
                        "",
                        &format!("{:08x}-0000-0000-0000-000000000000", i + 1),
                        READER,
                    )
                })
                .collect(),
        );
        arm.set_role_definitions(
            SUB,
            vec![custom_role(
                SUB,
                "11111111-2222-3333-4444-555555555555",
                "AKS Credential Reader",
                &["Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"],
            )],
        );
        let id = identity(SUB, "payments-api", "25cc773c-7f05-40fc-a104-32d2300754ad");
        let id_id = id["id"].as_str().unwrap().to_string();
        arm.set_identities(SUB, vec![id]);
        arm.set_fics(
            &id_id,
            vec![fic(
                &id_id,
                "payments",
                "https://westeurope.oic.prod-aks.azure.com/tenant/issuer/",
                "system:serviceaccount:payments:api",
            )],
        );
        arm.set_cluster(
            &cluster_id(),
            Some(cluster(
                &cluster_id(),
                true,
                &["99999999-0000-0000-0000-000000000001"],
            )),
        );
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
                "[[clusters]]\nname = \"aks-prod\"\nresource_id = \"{}\"\n\n[azure]\nauth = \"managed_identity\"\narm_endpoint = \"{}\"\nmax_attempts = 3\nrequest_timeout = \"5s\"\n{extra}\n",
                cluster_id(),
                self.arm.endpoint()
            ),
        )
        .unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        let cfg = self.config("");
        let mut c = common::cmd(args);
        c.arg("--config").arg(&cfg).arg("--db").arg(self.db());
        for (k, v) in self.arm.identity_env() {
            c.env(k, v);
        }
        c.env_remove("RUST_LOG").output().unwrap()
    }

    fn inventory(&self) -> (i32, Value, String) {
        let o = self.run(&["inventory", "--json"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{err}"));
        (o.status.code().unwrap_or(-1), v, err)
    }

    fn findings(&self) -> Vec<Value> {
        let o = self.run(&["findings", "--json", "--status", "all"]);
        assert!(o.status.success(), "{}", common::text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn capture(&self) {
        let o = self.run(&["baseline", "capture", "--by", "test"]);
        assert!(o.status.success(), "{}", common::text(&o));
    }

    fn replay(&self, lines: &[String]) {
        let f = self.dir.path().join(format!("al-{}.json", lines.len()));
        std::fs::write(&f, lines.join("\n")).unwrap();
        let o = self.run(&["replay", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}", common::text(&o));
    }

    fn live_fact(&self, kind: &str, key_part: &str) -> bool {
        let mut store = accessdrift::store::Store::open_read_only(&self.db()).unwrap();
        let tx = store.read().unwrap();
        let facts = tx.facts().unwrap();
        facts
            .iter()
            .any(|f| f.kind.as_str() == kind && f.key.contains(key_part) && f.value.is_some())
    }
}

fn part<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == kind)
        .unwrap_or_else(|| panic!("no part {kind} in {report}"))
}

fn open_drift<'a>(findings: &'a [Value], key_part: &str) -> Option<&'a Value> {
    findings.iter().find(|f| {
        f["kind"] == "drift"
            && f["fact_key"].as_str().unwrap_or("").contains(key_part)
            && f["status"] == "open"
    })
}

#[test]
fn day_one_inventory_then_baseline_then_drift_seen_by_the_inventory() {
    let env = Env::new(2, 5);
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["complete"], true);
    let ra = part(&r, "role_assignment");
    assert_eq!(ra["listed"], 5, "{r}");
    assert_eq!(ra["added"], 5);
    assert_eq!(part(&r, "role_definition")["listed"], 1);
    assert_eq!(part(&r, "managed_identity")["listed"], 1);
    assert_eq!(part(&r, "federated_credential")["listed"], 1);
    assert_eq!(part(&r, "cluster_settings")["added"], 1);
    // Five assignments in pages of two: three pages, each asked for with the bearer token
    // the real ManagedIdentityCredential got from the token endpoint.
    let seen = env.arm.seen();
    let ra_pages: Vec<_> = seen
        .iter()
        .filter(|s| s.uri.to_ascii_lowercase().contains("/roleassignments?"))
        .collect();
    assert_eq!(ra_pages.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
    assert!(env.arm.tokens_issued() >= 1);

    env.capture();
    // The cluster's OIDC issuer came from ARM: the federated credential trusts a watched
    // cluster, so no "foreign issuer" finding.
    assert!(
        env.findings().iter().all(|f| f["status"] != "open"),
        "{:?}",
        env.findings()
    );

    // Someone grants Owner while accessdrift runs; the next snapshot sees it.
    env.arm.edit_assignments(SUB, |v| {
        v.push(assignment(SUB, "ra-owner", "", MALLORY, OWNER));
        v.push(assignment(
            SUB,
            "ra-custom",
            "",
            CAROL,
            "11111111-2222-3333-4444-555555555555",
        ));
    });
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    assert_eq!(part(&r, "role_assignment")["added"], 2, "{r}");
    // The custom role's name came from its definition in ARM, not from [role_names].
    let findings = env.findings();
    let custom = open_drift(&findings, CAROL).unwrap_or_else(|| panic!("{findings:?}"));
    assert!(
        custom["title"]
            .as_str()
            .unwrap()
            .contains("AKS Credential Reader"),
        "{custom}"
    );
    let findings = env.findings();
    let f = open_drift(&findings, MALLORY).unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(f["severity"], "critical", "{f}");
    assert!(
        f["actor"]["upn"].is_null() && f["actor"]["object_id"].is_null(),
        "{f}"
    );
    assert!(
        f["seen_by_inventory"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{f}"
    );
    let table = env.run(&["findings"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("(seen by inventory, 20"), "{table}");

    // An unchanged snapshot changes nothing and opens nothing.
    let (code, r, _) = env.inventory();
    assert_eq!(code, 0);
    for p in r["parts"].as_array().unwrap() {
        assert_eq!(
            (
                p["added"].as_u64(),
                p["changed"].as_u64(),
                p["removed"].as_u64(),
                p["findings_opened"].as_u64()
            ),
            (Some(0), Some(0), Some(0), Some(0)),
            "{p}"
        );
    }
}

#[test]
fn an_assignment_removed_while_down_is_missing_after_the_next_snapshot() {
    let env = Env::new(2, 4);
    assert_eq!(env.inventory().0, 0);
    env.capture();
    env.arm.edit_assignments(SUB, |v| {
        v.retain(|a| a["name"] != "ra-002");
    });
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    assert_eq!(part(&r, "role_assignment")["removed"], 1, "{r}");
    let findings = env.findings();
    let f = open_drift(&findings, "00000003-0000").unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(f["change"], "missing", "{f}");
    // The cluster left too: its GET answers 404.
    env.arm.set_cluster(&cluster_id(), None);
    let (code, r, _) = env.inventory();
    assert_eq!(code, 0);
    assert_eq!(part(&r, "cluster_settings")["removed"], 1, "{r}");
}

/// PIM eligibilities are facts of their own: listed with every snapshot, approved with the
/// baseline, a new one is drift with its role's severity, a removed one is missing.
#[test]
fn pim_eligibilities_are_part_of_the_baseline() {
    let env = Env::new(2, 1);
    let scope = format!("/subscriptions/{SUB}");
    env.arm.set_eligibilities(
        SUB,
        vec![eligibility(
            SUB,
            "el-1",
            &scope,
            CAROL,
            READER,
            Some("2027-06-01T00:00:00Z"),
        )],
    );
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    assert_eq!(part(&r, "role_eligibility")["listed"], 1, "{r}");
    assert!(env.live_fact("role_eligibility", CAROL));
    env.capture();
    // Mallory becomes eligible for Owner on the subscription; Carol's eligibility is removed.
    env.arm.set_eligibilities(
        SUB,
        vec![eligibility(SUB, "el-2", &scope, MALLORY, OWNER, None)],
    );
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            part(&r, "role_eligibility")["added"].clone(),
            part(&r, "role_eligibility")["removed"].clone()
        ),
        (1.into(), 1.into()),
        "{r}"
    );
    let findings = env.findings();
    let new = open_drift(&findings, MALLORY).unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(new["fact_kind"], "role_eligibility");
    assert_eq!(new["change"], "unapproved");
    assert_eq!(
        new["severity"], "critical",
        "Owner on a subscription: {new}"
    );
    assert!(
        new["title"]
            .as_str()
            .unwrap()
            .contains("PIM eligibility Owner"),
        "{new}"
    );
    assert!(
        new["title"].as_str().unwrap().contains("permanent"),
        "{new}"
    );
    let gone = open_drift(&findings, CAROL).unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(gone["change"], "missing", "{gone}");
}

fn open_rule<'a>(findings: &'a [Value], rule: &str, key_part: &str) -> Option<&'a Value> {
    findings.iter().find(|f| {
        f["rule"] == rule
            && f["fact_key"].as_str().unwrap_or("").contains(key_part)
            && f["status"] == "open"
    })
}

/// An activation of an approved eligibility: the role assignment it makes is not drift, the
/// activation is reported while it lasts and resolves when the snapshot no longer lists it,
/// and the assignment's removal is no "missing approved". An activation of an eligibility
/// nobody approved is drift on both.
#[test]
fn pim_activations_of_approved_eligibilities_are_not_drift() {
    let env = Env::new(2, 1);
    let scope = format!("/subscriptions/{SUB}");
    let rg = format!("{scope}/resourceGroups/rg");
    env.arm.set_eligibilities(
        SUB,
        vec![eligibility(
            SUB,
            "el-carol",
            &rg,
            CAROL,
            OWNER,
            Some("2027-06-01T00:00:00Z"),
        )],
    );
    assert_eq!(env.inventory().0, 0);
    env.capture();
    // Carol activates her approved eligibility; Mallory holds one nobody approved and uses it.
    let until = accessdrift::domain::EventTime::now()
        .add_nanos(4 * 3600 * 1_000_000_000)
        .to_string();
    let until = until.as_str();
    env.arm.set_eligibilities(
        SUB,
        vec![
            eligibility(
                SUB,
                "el-carol",
                &rg,
                CAROL,
                OWNER,
                Some("2027-06-01T00:00:00Z"),
            ),
            eligibility(SUB, "el-mallory", &rg, MALLORY, OWNER, None),
        ],
    );
    env.arm.set_activations(
        SUB,
        vec![
            activation(SUB, "act-carol", &rg, CAROL, OWNER, until),
            activation(SUB, "act-mallory", &rg, MALLORY, OWNER, until),
        ],
    );
    env.arm.edit_assignments(SUB, |v| {
        v.push(assignment(SUB, "act-carol", &rg, CAROL, OWNER));
        v.push(assignment(SUB, "act-mallory", &rg, MALLORY, OWNER));
    });
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    assert_eq!(part(&r, "pim_activation")["listed"], 2, "{r}");
    let findings = env.findings();
    let drift_of = |who: &str, kind: &str| {
        findings.iter().find(|f| {
            f["kind"] == "drift"
                && f["fact_kind"] == kind
                && f["fact_key"].as_str().unwrap_or("").contains(who)
        })
    };
    assert!(
        drift_of(CAROL, "role_assignment").is_none(),
        "{findings:#?}"
    );
    let act =
        open_rule(&findings, "AZ-PIM-ACTIVATION", CAROL).unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(act["severity"], "low");
    assert!(
        act["title"]
            .as_str()
            .unwrap()
            .contains(&format!("until {until}")),
        "{act}"
    );
    assert_eq!(
        drift_of(MALLORY, "role_assignment").unwrap()["change"],
        "unapproved"
    );
    assert_eq!(
        drift_of(MALLORY, "role_eligibility").unwrap()["change"],
        "unapproved"
    );
    assert!(open_rule(&findings, "AZ-PIM-ACTIVATION", MALLORY).is_some());
    // The activations end: PIM removes what they made.
    env.arm.set_activations(SUB, vec![]);
    env.arm.edit_assignments(SUB, |v| {
        v.retain(|a| !a["name"].as_str().unwrap().starts_with("act-"))
    });
    let (code, _, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    let findings = env.findings();
    assert!(
        open_rule(&findings, "AZ-PIM-ACTIVATION", CAROL).is_none(),
        "{findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f["fact_key"].as_str().unwrap_or("").contains(CAROL)
                && f["kind"] == "drift"
                && f["status"] == "open"),
        "no missing assignment for an ended activation: {findings:#?}"
    );
}

#[test]
fn an_older_event_does_not_resurrect_and_a_newer_one_wins() {
    let env = Env::new(10, 3);
    assert_eq!(env.inventory().0, 0);
    env.capture();
    // Removed in Azure: the snapshot deletes it as of its start.
    env.arm
        .edit_assignments(SUB, |v| v.retain(|a| a["name"] != "ra-000"));
    assert_eq!(env.inventory().0, 0);
    assert!(!env.live_fact("role_assignment", "00000001-0000"));
    // The Activity Log's write of it, an hour old, arrives now: it does not bring it back.
    let old = (chrono_like_now(-3600), chrono_like_now(60));
    let ra0 =
        format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-000");
    let write = Rec::new("Microsoft.Authorization/roleAssignments/write", &ra0, "Success", "c-old", &old.0)
        .request(serde_json::json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": "00000001-0000-0000-0000-000000000000", "scope": format!("/subscriptions/{SUB}")}}));
    env.replay(&[envelope(&[&write])]);
    assert!(
        !env.live_fact("role_assignment", "00000001-0000"),
        "an older write resurrected a fact the snapshot deleted"
    );
    // A delete newer than the snapshot wins over what it listed.
    let ra1 =
        format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-001");
    let del = Rec::new(
        "Microsoft.Authorization/roleAssignments/delete",
        &ra1,
        "Success",
        "c-new",
        &old.1,
    );
    env.replay(&[envelope(&[&del])]);
    assert!(
        !env.live_fact("role_assignment", "00000002-0000"),
        "a newer delete lost to the snapshot"
    );
    assert!(env.live_fact("role_assignment", "00000003-0000"));
}

#[test]
fn a_late_activity_log_record_says_who_made_the_change_the_snapshot_saw() {
    let env = Env::new(10, 1);
    assert_eq!(env.inventory().0, 0);
    env.capture();
    env.arm.edit_assignments(SUB, |v| {
        v.push(assignment(SUB, "ra-owner", "", MALLORY, OWNER))
    });
    assert_eq!(env.inventory().0, 0);
    // The record of that grant, made five minutes before the snapshot, arrives after it.
    let id =
        format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-owner");
    let body = serde_json::json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"), "principalId": MALLORY, "scope": format!("/subscriptions/{SUB}")}});
    let t = chrono_like_now(-300);
    let start = Rec::new(
        "Microsoft.Authorization/roleAssignments/write",
        &id,
        "Start",
        "corr-owner",
        &t,
    )
    .request(body);
    let success = Rec::new(
        "Microsoft.Authorization/roleAssignments/write",
        &id,
        "Success",
        "corr-owner",
        &t,
    );
    env.replay(&[envelope(&[&start, &success])]);
    let findings = env.findings();
    let f = open_drift(&findings, MALLORY).unwrap_or_else(|| panic!("{findings:?}"));
    assert!(
        f["actor"]["upn"].as_str().is_some_and(|u| u.contains('@')),
        "{f}"
    );
    assert_eq!(f["correlation_id"], "corr-owner", "{f}");
    // The alert that says who: queued as `attributed` after the `opened` one.
    let o = env.run(&["outbox", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("attributed"), "{out}");
    // Replaying the same record again attributes nothing twice.
    let before = out.matches("attributed").count();
    env.replay(&[envelope(&[&start, &success]), String::new()]);
    let o = env.run(&["outbox", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("attributed")
            .count(),
        before
    );
}

#[test]
fn page_three_of_five_failing_deletes_nothing_and_says_which_part() {
    let env = Env::new(2, 10);
    assert_eq!(env.inventory().0, 0);
    env.capture();
    // Half the assignments are gone, but page 3 of 5 keeps failing.
    env.arm.edit_assignments(SUB, |v| v.truncate(6));
    let mut f = Fault::status("roleassignments$", 500);
    f.page = Some(3);
    env.arm.fault(f);
    let (code, r, err) = env.inventory();
    assert_eq!(code, 1, "{r}\n{err}");
    let ra = part(&r, "role_assignment");
    assert_eq!(ra["completed"], false);
    assert_eq!(ra["removed"], 0, "{r}");
    assert!(ra["error"].as_str().unwrap().contains("page 3"), "{r}");
    for k in [
        "role_definition",
        "managed_identity",
        "federated_credential",
        "cluster_settings",
    ] {
        assert_eq!(part(&r, k)["completed"], true, "{k}: {r}");
    }
    assert!(env.findings().iter().all(|f| f["change"] != "missing"));
    // Fixed: the next snapshot completes and removes them.
    env.arm.clear_faults();
    let (code, r, _) = env.inventory();
    assert_eq!(code, 0);
    assert_eq!(part(&r, "role_assignment")["removed"], 4, "{r}");
    // The table for people names the failed part too.
    env.arm.fault(Fault::status("roleassignments$", 500));
    let o = env.run(&["inventory"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.contains("role assignments of subscription")
            && t.contains("FAILED")
            && t.contains("nothing of theirs was deleted"),
        "{t}"
    );
}

#[test]
fn a_429_retry_after_is_honoured() {
    let env = Env::new(10, 3);
    let mut f = Fault::status("roleassignments$", 429);
    f.retry_after = Some("2".into());
    f.times = Some(1);
    f.error = ("TooManyRequests".into(), "throttled".into());
    env.arm.fault(f);
    let (code, r, err) = env.inventory();
    assert_eq!(code, 0, "{r}\n{err}");
    let seen: Vec<_> = env
        .arm
        .seen()
        .into_iter()
        .filter(|s| s.uri.to_ascii_lowercase().contains("/roleassignments?"))
        .collect();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        [429, 200],
        "{seen:?}"
    );
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(6), "retried after {waited:?}");
}

#[test]
fn a_403_on_role_definitions_leaves_the_rest_working_and_names_the_permission() {
    let env = Env::new(10, 3);
    let mut f = Fault::status("roledefinitions", 403);
    f.error = (
        "AuthorizationFailed".into(),
        format!("The client '{}' with object id '{}' does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/read' over scope '/subscriptions/{SUB}' or the scope is invalid.", arm_server::CLIENT_ID, arm_server::OBJECT_ID),
    );
    env.arm.fault(f);
    let (code, r, _) = env.inventory();
    assert_eq!(code, 1);
    let rd = part(&r, "role_definition");
    let e = rd["error"].as_str().unwrap();
    assert!(
        e.contains("Microsoft.Authorization/roleDefinitions/read")
            && e.contains(&format!("/subscriptions/{SUB}")),
        "{e}"
    );
    assert!(e.contains("Reader"), "the fix is named: {e}");
    assert_eq!(part(&r, "role_assignment")["completed"], true);
    assert_eq!(part(&r, "role_assignment")["listed"], 3);
}

#[test]
fn a_401_names_the_endpoint_and_identity_never_the_token() {
    let env = Env::new(10, 3);
    env.arm.reject_tokens(true);
    let o = env.run(&["--log-level", "debug", "inventory"]);
    assert_eq!(o.status.code(), Some(1));
    let all = common::text(&o);
    assert!(all.contains(&env.arm.endpoint()), "{all}");
    assert!(
        all.contains(arm_server::OBJECT_ID),
        "the identity's object id: {all}"
    );
    assert!(all.contains("401"), "{all}");
    // One error: after the refusal nothing else is asked, and the message is said once.
    assert_eq!(env.arm.seen().len(), 1, "{:?}", env.arm.seen());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("401 Unauthorized")
            .count(),
        1,
        "{all}"
    );
    assert!(
        !all.contains(&arm_server::token()),
        "the token leaked: {all}"
    );
    assert!(
        !all.contains(arm_server::IDENTITY_HEADER),
        "the identity header leaked"
    );
}

#[test]
fn a_low_read_quota_spaces_the_requests_out() {
    let env = Env::new(1, 4);
    // 200 reads left of the hour's bucket: ARM asks callers to slow down before it throttles.
    env.arm.remaining_reads(Some(200));
    let (code, _, err) = env.inventory();
    assert_eq!(code, 0, "{err}");
    let seen: Vec<_> = env
        .arm
        .seen()
        .into_iter()
        .filter(|s| s.uri.to_ascii_lowercase().contains("/roleassignments?"))
        .collect();
    assert_eq!(seen.len(), 4);
    for w in seen.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(150),
            "requests {gap:?} apart while reads run low"
        );
    }
    // With the quota back, no pause.
    env.arm.remaining_reads(Some(11_000));
    env.arm.clear_seen();
    let t = std::time::Instant::now();
    assert_eq!(env.inventory().0, 0);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// The table people read, against tests/golden/inventory.txt (times masked). Regenerate
/// after an intended change with `UPDATE_GOLDEN=1 cargo test --test inventory`.
#[test]
fn the_inventory_table_matches_golden() {
    let env = Env::new(2, 5);
    let mut f = Fault::status("roledefinitions", 403);
    f.error = ("AuthorizationFailed".into(), format!("The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/read' over scope '/subscriptions/{SUB}' or the scope is invalid."));
    env.arm.fault(f);
    let o = env.run(&["inventory"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // `Inventory as of 2026-…Z (N ARM requests, 0.1s)`: the time and duration vary.
    let (head, rest) = out.split_once('\n').unwrap();
    let requests = head.split('(').nth(1).unwrap().split(',').next().unwrap();
    let masked = format!("Inventory as of <T> ({requests}, <took>)\n{rest}")
        .replace(&env.arm.endpoint(), "http://<arm>");
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/inventory.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &masked).unwrap();
    }
    let want = std::fs::read_to_string(golden)
        .expect("tests/golden/inventory.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        masked, want,
        "inventory table changed; if intended, UPDATE_GOLDEN=1 cargo test --test inventory"
    );
}

#[test]
fn inventory_without_an_azure_table_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "").unwrap();
    let o = common::ad(&[
        "inventory",
        "--config",
        cfg.to_str().unwrap(),
        "--db",
        dir.path().join("x.db").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(common::text(&o).contains("[azure]"), "{}", common::text(&o));
}

/// An RFC 3339 time `offset` seconds from now, as the Activity Log writes it.
fn chrono_like_now(offset: i64) -> String {
    let now = accessdrift::domain::EventTime::now();
    now.add_nanos(offset * 1_000_000_000).to_string()
}

#[allow(dead_code)]
fn unused(_: &Path) {}
