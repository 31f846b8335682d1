//! In-memory facts and builders for the rule tables.

use super::{Context, FactView, Field};
use crate::config::{ClusterConfig, Config};
use crate::domain::FactKind;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;

pub const SUB: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f";
pub const CLUSTER: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/aks";
pub const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/tenant/aks-issuer";
pub const KUBELET_OID: &str = "aaaaaaaa-0000-4000-8000-00000000001e";
pub const KUBELET_ID: &str = "/subscriptions/6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f/resourcegroups/mc_rg/providers/microsoft.managedidentity/userassignedidentities/aks-agentpool";
pub const CP_OID: &str = "cccccccc-0000-4000-8000-0000000000c9";
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// A cluster that fires no cluster-settings rule.
pub fn hardened_cluster() -> Value {
    json!({
        "disable_local_accounts": true,
        "enable_rbac": true,
        "aad": {"managed": true, "enable_azure_rbac": true, "admin_group_object_ids": ["0ad0ad00-0000-4000-8000-000000000001"], "tenant_id": "t"},
        "identity_type": "systemassigned",
        "identity_principal_id": CP_OID,
        "user_assigned_identities": [],
        "kubelet_identity": {"resource_id": KUBELET_ID, "client_id": "aaaaaaaa-0000-4000-8000-0000000000c1", "object_id": KUBELET_OID},
        "service_principal_client_id": "msi",
        "oidc_issuer_enabled": true,
        "oidc_issuer_url": format!("{ISSUER}/"),
        "workload_identity_enabled": true,
        "addon_identities": {},
    })
}

pub fn fired(rules: &[&str], rule: &str) -> bool {
    rules.contains(&rule)
}

pub fn assignment(scope: &str, principal: &str, role: &str) -> (String, Value) {
    (
        format!("{scope}|{principal}|{role}"),
        json!({"scope": scope, "principal_id": principal, "role_definition_id": role}),
    )
}

/// Facts by kind and key.
#[derive(Default, Clone)]
pub struct Mem(pub BTreeMap<(FactKind, String), Value>);

impl Mem {
    pub fn with(mut self, kind: FactKind, key: &str, v: Value) -> Mem {
        self.0.insert((kind, key.to_string()), v);
        self
    }
    pub fn put(&mut self, kind: FactKind, key: &str, v: Value) {
        self.0.insert((kind, key.to_string()), v);
    }
}

impl FactView for Mem {
    type Error = Infallible;
    fn get(&self, kind: FactKind, key: &str) -> Result<Option<Value>, Infallible> {
        Ok(self.0.get(&(kind, key.to_string())).cloned())
    }
    fn under(&self, kind: FactKind, prefix: &str) -> Result<Vec<(String, Value)>, Infallible> {
        Ok(self
            .0
            .iter()
            .filter(|((k, key), _)| *k == kind && key.starts_with(prefix))
            .map(|((_, key), v)| (key.clone(), v.clone()))
            .collect())
    }
    fn keys_under(&self, kind: FactKind, prefix: &str) -> Result<Vec<String>, Infallible> {
        Ok(self
            .under(kind, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
    fn any_under(&self, kind: FactKind, prefix: &str) -> Result<bool, Infallible> {
        Ok(!self.under(kind, prefix)?.is_empty())
    }
    fn find(
        &self,
        kind: FactKind,
        field: Field,
        text: &str,
    ) -> Result<Vec<(String, Value)>, Infallible> {
        let ptr = field.pointer();
        Ok(self
            .under(kind, "")?
            .into_iter()
            .filter(|(_, v)| v.pointer(&ptr).and_then(Value::as_str) == Some(text))
            .collect())
    }
    fn any_with(&self, kind: FactKind, field: Field) -> Result<bool, Infallible> {
        let ptr = field.pointer();
        Ok(self
            .under(kind, "")?
            .iter()
            .any(|(_, v)| v.pointer(&ptr).is_some_and(|x| !x.is_null())))
    }
    fn containing(&self, kind: FactKind, needle: &str) -> Result<Vec<(String, Value)>, Infallible> {
        Ok(self
            .under(kind, "")?
            .into_iter()
            .filter(|(_, v)| v.to_string().contains(needle))
            .collect())
    }
}

/// A configuration that watches `aks` as `prod`.
pub fn config() -> Config {
    Config {
        clusters: vec![ClusterConfig {
            name: "prod".into(),
            resource_id: CLUSTER.into(),
            oidc_issuer: None,
        }],
        ..Config::default()
    }
}

/// Runs `f` with a context over `cfg`.
pub fn with_ctx<T>(cfg: &Config, f: impl FnOnce(&Context<'_>) -> T) -> T {
    let allowed = |_: &str| Vec::new();
    let ctx = Context {
        catalog: cfg,
        configured: &cfg.clusters,
        allowed_roles: &allowed,
    };
    f(&ctx)
}

/// Rule ids that hold for one subject.
pub fn eval(mem: &Mem, kind: FactKind, key: &str) -> Vec<&'static str> {
    let cfg = config();
    let v = mem
        .0
        .get(&(kind, key.to_string()))
        .expect("subject in the view")
        .clone();
    with_ctx(&cfg, |ctx| {
        super::evaluate(kind, key, &v, ctx, mem)
            .unwrap_or_else(|e| match e {})
            .into_iter()
            .map(|h| h.rule)
            .collect()
    })
}
