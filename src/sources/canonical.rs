//! Canonical fact values from outside the sources (a baseline file edited by hand): the same
//! normalisation the sources apply (ids lower-cased, lists sorted), plus validation of the
//! value's shape per fact kind. A value that is canonical already comes back unchanged.

use super::activity_log::fields::{looks_like_guid, normalize_guid};
use super::activity_log::map::cluster_id;
use crate::config::roles::role_guid;
use crate::domain::{canonical_id, FactKind, Plane};
use serde_json::{json, Map, Value};

/// Why a value or key does not fit its fact kind. `field` is a path inside the value
/// (`subjects[1].name`), or `key` for the fact key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} field `{field}`: {problem}")]
pub struct CanonicalError {
    /// The fact kind the value was checked against.
    pub kind: FactKind,
    /// Path of the offending field.
    pub field: String,
    /// What is wrong and what was expected.
    pub problem: String,
}

type Result<T> = std::result::Result<T, CanonicalError>;

/// The canonical form of `value` for a fact of `kind`, as a source would have projected it.
/// Errors name the field: missing required fields, wrong types and unknown fields are refused
/// (an unknown field is usually a typo that would otherwise show as drift forever).
pub fn canonicalise(kind: FactKind, value: &Value) -> Result<Value> {
    let o = Obj::root(kind, value)?;
    let v = match kind {
        FactKind::RoleAssignment => role_assignment(o)?,
        FactKind::RoleEligibility => role_eligibility(o)?,
        FactKind::PimActivation => {
            return Err(CanonicalError {
                kind,
                field: "kind".into(),
                problem: "a PIM activation ends by itself and is never part of a baseline; approve the eligibility (role_eligibility) instead".into(),
            })
        }
        FactKind::RoleDefinition => role_definition(o)?,
        FactKind::ClusterSettings => cluster_settings(o)?,
        FactKind::ManagedIdentity => managed_identity(o)?,
        FactKind::FederatedCredential => federated_credential(o)?,
        FactKind::ClusterRoleBinding | FactKind::RoleBinding => binding(o)?,
        FactKind::ClusterRole | FactKind::Role => role(o)?,
        FactKind::ServiceAccount => service_account(o)?,
    };
    Ok(v)
}

/// The canonical key of a fact whose canonical value is `value`: Azure ids as
/// [`canonical_id`] writes them; a role assignment's key must agree with its value.
pub fn canonical_key(kind: FactKind, key: &str, value: &Value) -> Result<String> {
    let err = |problem: String| CanonicalError {
        kind,
        field: "key".into(),
        problem,
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(err("is empty".into()));
    }
    match kind {
        FactKind::RoleAssignment | FactKind::RoleEligibility | FactKind::PimActivation => {
            let s = |f: &str| value.get(f).and_then(Value::as_str).unwrap_or("");
            let want = format!(
                "{}|{}|{}",
                s("scope"),
                s("principal_id"),
                s("role_definition_id")
            );
            let given: Vec<String> = key.split('|').map(str::to_string).collect();
            let normalised = match given.as_slice() {
                [scope, principal, role] => format!(
                    "{}|{}|{}",
                    canonical_id(scope),
                    normalize_guid(principal).to_ascii_lowercase(),
                    role_guid(role)
                ),
                _ => {
                    return Err(err(format!(
                        "{key:?} is not `scope|principalId|roleDefinitionGuid`"
                    )))
                }
            };
            if normalised != want {
                return Err(err(format!(
                    "{key:?} does not match the value (scope, principal_id, role_definition_id give {want:?})"
                )));
            }
            Ok(want)
        }
        FactKind::ClusterSettings => Ok(cluster_id(&canonical_id(key))),
        k if k.plane() == Plane::Azure => Ok(canonical_id(key)),
        k => {
            let parts = key.split('/').count();
            let want = if matches!(k, FactKind::ClusterRoleBinding | FactKind::ClusterRole) {
                2
            } else {
                3
            };
            if parts != want || key.split('/').any(str::is_empty) {
                let shape = if want == 2 {
                    "cluster/name"
                } else {
                    "cluster/namespace/name"
                };
                return Err(err(format!("{key:?} is not `{shape}`")));
            }
            Ok(key.to_string())
        }
    }
}

/// An object being read field by field; fields left unread at `finish` are unknown.
struct Obj<'a> {
    kind: FactKind,
    path: String,
    map: &'a Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    fn root(kind: FactKind, v: &'a Value) -> Result<Obj<'a>> {
        Obj::at(kind, String::new(), v)
    }

    fn at(kind: FactKind, path: String, v: &'a Value) -> Result<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj {
                kind,
                path,
                map,
                read: Vec::new(),
            }),
            other => Err(CanonicalError {
                kind,
                field: if path.is_empty() {
                    "value".into()
                } else {
                    path
                },
                problem: format!("must be an object, found {}", type_name(other)),
            }),
        }
    }

    fn field_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn err(&self, name: &str, problem: String) -> CanonicalError {
        CanonicalError {
            kind: self.kind,
            field: self.field_path(name),
            problem,
        }
    }

    /// The field, `None` when absent or null.
    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.read.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn wrong(&self, name: &str, want: &str, found: &Value) -> CanonicalError {
        self.err(name, format!("must be {want}, found {}", type_name(found)))
    }

    fn opt_str(&mut self, name: &'static str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
            Some(v) => Err(self.wrong(name, "a string or null", v)),
        }
    }

    /// A string kept as written (empty included), for fields the source does not trim away.
    fn opt_raw_str(&mut self, name: &'static str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.wrong(name, "a string or null", v)),
        }
    }

    fn req_str(&mut self, name: &'static str) -> Result<&'a str> {
        match self.get(name) {
            None => Err(self.err(name, "is required (a non-empty string)".into())),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            Some(v) => Err(self.wrong(name, "a non-empty string", v)),
        }
    }

    fn req_bool(&mut self, name: &'static str) -> Result<bool> {
        match self.get(name) {
            None => Err(self.err(name, "is required (true or false)".into())),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.wrong(name, "true or false", v)),
        }
    }

    fn bool_or_false(&mut self, name: &'static str) -> Result<bool> {
        Ok(self.opt_bool(name)?.unwrap_or(false))
    }

    fn opt_bool(&mut self, name: &'static str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(name, "true, false or null", v)),
        }
    }

    /// A list of strings (absent means empty), each mapped by `f`.
    fn strings(&mut self, name: &'static str, f: impl Fn(&str) -> String) -> Result<Vec<String>> {
        let Some(v) = self.get(name) else {
            return Ok(Vec::new());
        };
        let arr = v
            .as_array()
            .ok_or_else(|| self.wrong(name, "a list of strings", v))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(&f)
                    .ok_or_else(|| self.wrong(&format!("{name}[{i}]"), "a string", x))
            })
            .collect()
    }

    fn opt_obj(&mut self, name: &'static str) -> Result<Option<Obj<'a>>> {
        let path = self.field_path(name);
        self.get(name)
            .map(|v| Obj::at(self.kind, path, v))
            .transpose()
    }

    fn req_obj(&mut self, name: &'static str) -> Result<Obj<'a>> {
        self.opt_obj(name)?
            .ok_or_else(|| self.err(name, "is required (an object)".into()))
    }

    fn list(&mut self, name: &'static str) -> Result<Vec<(String, &'a Value)>> {
        let path = self.field_path(name);
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()),
            Some(v) => Err(self.wrong(name, "a list", v)),
        }
    }

    /// Refuses fields nobody read: the projection has no such field.
    fn finish(self) -> Result<()> {
        match self.map.keys().find(|k| !self.read.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.err(
                k,
                format!(
                    "is not a field of a {} value (known: {})",
                    self.kind,
                    self.read.join(", ")
                ),
            )),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// As the Activity Log mapping writes GUID-ish text: trimmed, GUIDs dashed and lower-cased.
fn lower_guid(s: &str) -> String {
    normalize_guid(s).to_ascii_lowercase()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn sorted_values(mut v: Vec<Value>, dedup: bool) -> Vec<Value> {
    v.sort_by_cached_key(|x| x.to_string());
    if dedup {
        v.dedup();
    }
    v
}

fn role_assignment(mut o: Obj<'_>) -> Result<Value> {
    let scope = canonical_id(o.req_str("scope")?);
    let principal = lower_guid(o.req_str("principal_id")?);
    let role = role_guid(o.req_str("role_definition_id")?);
    let condition = o.opt_str("condition")?;
    o.finish()?;
    let mut v = json!({"scope": scope, "principal_id": principal, "role_definition_id": role});
    if let Some(c) = condition {
        v["condition"] = json!(c);
    }
    Ok(v)
}

fn role_eligibility(mut o: Obj<'_>) -> Result<Value> {
    let scope = canonical_id(o.req_str("scope")?);
    let principal = lower_guid(o.req_str("principal_id")?);
    let role = role_guid(o.req_str("role_definition_id")?);
    let member_type = o.opt_str("member_type")?.unwrap_or("Direct").to_string();
    let end = match o.opt_str("end")? {
        None => None,
        Some(t) => Some(
            crate::domain::EventTime::parse(t)
                .ok_or_else(|| CanonicalError {
                    kind: FactKind::RoleEligibility,
                    field: "end".into(),
                    problem: format!("{t:?} is not an RFC 3339 time (or null: permanent)"),
                })?
                .to_string(),
        ),
    };
    let condition = o.opt_str("condition")?;
    o.finish()?;
    let mut v = json!({"scope": scope, "principal_id": principal, "role_definition_id": role,
                       "member_type": member_type, "end": end});
    if let Some(c) = condition {
        v["condition"] = json!(c);
    }
    Ok(v)
}

fn role_definition(mut o: Obj<'_>) -> Result<Value> {
    let role_name = o.opt_str("role_name")?;
    let kind = o.kind;
    let mut permissions = Vec::new();
    for (path, p) in o.list("permissions")? {
        let mut p = Obj::at(kind, path, p)?;
        let lower = |s: &str| lower_guid(s);
        let v = json!({
            "actions": sorted(p.strings("actions", lower)?),
            "not_actions": sorted(p.strings("not_actions", lower)?),
            "data_actions": sorted(p.strings("data_actions", lower)?),
            "not_data_actions": sorted(p.strings("not_data_actions", lower)?),
        });
        p.finish()?;
        permissions.push(v);
    }
    let scopes = sorted(o.strings("assignable_scopes", canonical_id)?);
    o.finish()?;
    Ok(json!({
        "role_name": role_name,
        "permissions": sorted_values(permissions, false),
        "assignable_scopes": scopes,
    }))
}

fn cluster_settings(mut o: Obj<'_>) -> Result<Value> {
    let aad = match o.opt_obj("aad")? {
        None => Value::Null,
        Some(mut a) => {
            let v = json!({
                "managed": a.req_bool("managed")?,
                "enable_azure_rbac": a.req_bool("enable_azure_rbac")?,
                "admin_group_object_ids": sorted(a.strings("admin_group_object_ids", lower_guid)?),
                "tenant_id": a.opt_str("tenant_id")?.map(lower_guid),
            });
            a.finish()?;
            v
        }
    };
    let kubelet = match o.opt_obj("kubelet_identity")? {
        None => Value::Null,
        Some(mut k) => {
            let v = json!({
                "resource_id": k.opt_str("resource_id")?.map(canonical_id),
                "client_id": k.opt_str("client_id")?.map(lower_guid),
                "object_id": k.opt_str("object_id")?.map(lower_guid),
            });
            k.finish()?;
            v
        }
    };
    let mut addons = Map::new();
    if let Some(a) = o.opt_obj("addon_identities")? {
        for (name, oid) in a.map {
            let oid = oid
                .as_str()
                .ok_or_else(|| a.wrong(name, "an object id (a string)", oid))?;
            addons.insert(name.to_ascii_lowercase(), json!(lower_guid(oid)));
        }
    }
    let mut user_assigned = o.strings("user_assigned_identities", canonical_id)?;
    user_assigned.sort();
    let v = json!({
        "disable_local_accounts": o.req_bool("disable_local_accounts")?,
        "enable_rbac": o.req_bool("enable_rbac")?,
        "aad": aad,
        "identity_type": o.opt_str("identity_type")?.map(str::to_ascii_lowercase),
        "user_assigned_identities": user_assigned,
        "kubelet_identity": kubelet,
        "service_principal_client_id": o.opt_str("service_principal_client_id")?.map(lower_guid),
        "oidc_issuer_enabled": o.req_bool("oidc_issuer_enabled")?,
        "workload_identity_enabled": o.req_bool("workload_identity_enabled")?,
        "addon_identities": addons,
    });
    o.finish()?;
    Ok(v)
}

fn managed_identity(mut o: Obj<'_>) -> Result<Value> {
    let v = json!({
        "principal_id": o.opt_str("principal_id")?.map(lower_guid),
        "client_id": o.opt_str("client_id")?.map(lower_guid),
        "tenant_id": o.opt_str("tenant_id")?.map(lower_guid),
    });
    o.finish()?;
    Ok(v)
}

fn federated_credential(mut o: Obj<'_>) -> Result<Value> {
    let v = json!({
        "issuer": o.req_str("issuer")?,
        "subject": o.req_str("subject")?,
        "audiences": sorted(o.strings("audiences", |s| s.trim().to_string())?),
    });
    o.finish()?;
    Ok(v)
}

/// As the Kubernetes projection: Entra object ids are case-insensitive, other names are not.
fn subject_name(s: &str) -> String {
    if looks_like_guid(s) {
        s.to_ascii_lowercase()
    } else {
        s.to_string()
    }
}

fn binding(mut o: Obj<'_>) -> Result<Value> {
    let mut rr = o.req_obj("role_ref")?;
    let role_ref = json!({"kind": rr.req_str("kind")?, "name": rr.req_str("name")?});
    rr.finish()?;
    let kind = o.kind;
    let mut subjects = Vec::new();
    for (path, s) in o.list("subjects")? {
        let mut s = Obj::at(kind, path, s)?;
        let mut v = json!({
            "kind": s.req_str("kind")?,
            "name": subject_name(s.req_str("name")?),
        });
        if let Some(ns) = s.opt_str("namespace")? {
            v["namespace"] = json!(ns);
        }
        s.finish()?;
        subjects.push(v);
    }
    let v = json!({
        "role_ref": role_ref,
        "subjects": sorted_values(subjects, true),
        "platform_managed": o.bool_or_false("platform_managed")?,
    });
    o.finish()?;
    Ok(v)
}

fn role(mut o: Obj<'_>) -> Result<Value> {
    let kind = o.kind;
    let mut rules = Vec::new();
    for (path, r) in o.list("rules")? {
        let mut r = Obj::at(kind, path, r)?;
        let same = |s: &str| s.to_string();
        let v = json!({
            "api_groups": sorted(r.strings("api_groups", same)?),
            "resources": sorted(r.strings("resources", same)?),
            "verbs": sorted(r.strings("verbs", same)?),
            "resource_names": sorted(r.strings("resource_names", same)?),
            "non_resource_urls": sorted(r.strings("non_resource_urls", same)?),
        });
        r.finish()?;
        rules.push(v);
    }
    let mut v = json!({ "rules": sorted_values(rules, true) });
    if let Some(sel) = o.get("aggregation_selectors") {
        let arr = sel
            .as_array()
            .ok_or_else(|| o.wrong("aggregation_selectors", "a list of label selectors", sel))?;
        v["aggregation_selectors"] = Value::Array(sorted_values(arr.clone(), false));
    }
    v["platform_managed"] = json!(o.bool_or_false("platform_managed")?);
    o.finish()?;
    Ok(v)
}

fn service_account(mut o: Obj<'_>) -> Result<Value> {
    let lower = |s: &str| s.trim().to_ascii_lowercase();
    let v = json!({
        "workload_identity_client_id": o.opt_raw_str("workload_identity_client_id")?.map(lower),
        "workload_identity_tenant_id": o.opt_raw_str("workload_identity_tenant_id")?.map(lower),
        "automount_token": o.opt_bool("automount_token")?,
        "platform_managed": o.bool_or_false("platform_managed")?,
    });
    o.finish()?;
    Ok(v)
}
