//! The in-cluster RBAC stays least-privilege (DESIGN §5): read-only on the watched kinds.

use serde::Deserialize;

#[test]
fn cluster_role_is_read_only_on_rbac_kinds_and_service_accounts() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml")).unwrap();
    let mut roles = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        if v["kind"].as_str() != Some("ClusterRole") {
            continue;
        }
        roles += 1;
        for rule in v["rules"].as_sequence().unwrap() {
            for verb in rule["verbs"].as_sequence().unwrap() {
                assert!(
                    matches!(verb.as_str(), Some("get" | "list" | "watch")),
                    "verb {verb:?} is more than read"
                );
            }
            for res in rule["resources"].as_sequence().unwrap() {
                let r = res.as_str().unwrap();
                assert!(
                    [
                        "clusterrolebindings",
                        "rolebindings",
                        "clusterroles",
                        "roles",
                        "serviceaccounts"
                    ]
                    .contains(&r),
                    "resource {r} is not one accessdrift watches"
                );
            }
        }
    }
    assert_eq!(roles, 1);
}
