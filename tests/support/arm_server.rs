//! An in-test Azure Resource Manager: the list and GET endpoints the inventory reads, with
//! `nextLink` paging (absolute URLs, `$skipToken`), ARM's error bodies, `Retry-After`, the
//! `x-ms-ratelimit-remaining-subscription-reads` header, injected faults (a status on page N,
//! a hang), and an App Service managed-identity token endpoint (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`) that the real `ManagedIdentityCredential` gets its token from. Object
//! shapes follow tests/fixtures/arm/ (azure-rest-api-specs examples). Shared by the inventory
//! tests and the bench; never in the binary.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The secret the token endpoint wants in `X-IDENTITY-HEADER`.
pub const IDENTITY_HEADER: &str = "identity-header-secret-not-in-logs";
/// Object id the token is issued to (it appears in 401 messages).
pub const OBJECT_ID: &str = "9f3e0c5a-1111-4a2b-9c3d-444444444444";
/// Client id of the identity.
pub const CLIENT_ID: &str = "5b0a7e11-2222-4c3d-8e9f-555555555555";

/// A built-in role definition id (Owner).
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// One fault: matching requests get `status` (with `retry_after` and ARM's error body), or
/// never an answer (`hang`).
#[derive(Clone, Debug)]
pub struct Fault {
    /// Lower-case substring of the path.
    pub path: String,
    /// Only this page (1-based) of a list; `None`: every page.
    pub page: Option<usize>,
    /// The status to answer.
    pub status: u16,
    /// `Retry-After` value.
    pub retry_after: Option<String>,
    /// ARM error code and message.
    pub error: (String, String),
    /// How many times; `None`: always.
    pub times: Option<u32>,
    /// Never answer.
    pub hang: bool,
}

impl Fault {
    /// `status` on every request whose path contains `path` (ends with it, when it ends in `$`).
    pub fn status(path: &str, status: u16) -> Fault {
        Fault {
            path: path.to_ascii_lowercase(),
            page: None,
            status,
            retry_after: None,
            error: ("InternalServerError".into(), "injected".into()),
            times: None,
            hang: false,
        }
    }
}

/// What the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query.
    pub uri: String,
    /// When.
    pub at: Instant,
    /// The status it answered.
    pub status: u16,
    /// The Authorization header was the bearer token of the token endpoint.
    pub authorized: bool,
}

#[derive(Default)]
struct Inner {
    /// subscription → role assignments (ARM objects).
    role_assignments: BTreeMap<String, Vec<Value>>,
    role_definitions: BTreeMap<String, Vec<Value>>,
    /// subscription → PIM eligibility schedule instances.
    eligibilities: BTreeMap<String, Vec<Value>>,
    /// subscription → PIM assignment schedule instances.
    activations: BTreeMap<String, Vec<Value>>,
    identities: BTreeMap<String, Vec<Value>>,
    /// identity id (lower-case) → federated credentials.
    fics: BTreeMap<String, Vec<Value>>,
    /// cluster id (lower-case) → GET body.
    clusters: BTreeMap<String, Value>,
    page_size: usize,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
    tokens_issued: u32,
    remaining_reads: Option<u64>,
    reject_tokens: bool,
}

/// The server; runs on its own thread until dropped.
pub struct ArmServer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _rt: tokio::runtime::Runtime,
}

/// The bearer token it issues: a JWT-shaped string whose claims name the identity.
pub fn token() -> String {
    use base64::Engine as _;
    let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
        e(&json!({"alg": "RS256", "typ": "JWT"})),
        e(
            &json!({"oid": OBJECT_ID, "appid": CLIENT_ID, "tid": "72f988bf-0000-0000-0000-000000000000", "aud": "https://management.azure.com"})
        )
    )
}

/// A role assignment object as ARM lists it (RoleAssignments_ListForScope shape).
pub fn assignment(sub: &str, name: &str, scope: &str, principal: &str, role: &str) -> Value {
    let scope = if scope.is_empty() {
        format!("/subscriptions/{sub}")
    } else {
        scope.to_string()
    };
    json!({
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal,
            "principalType": "User",
            "scope": scope,
            "createdOn": "2025-01-01T00:00:00Z",
        },
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "type": "Microsoft.Authorization/roleAssignments",
        "name": name,
    })
}

/// A user-assigned identity (IdentityGet shape).
/// A PIM eligibility schedule instance as `roleEligibilityScheduleInstances` lists it.
pub fn eligibility(
    sub: &str,
    name: &str,
    scope: &str,
    principal: &str,
    role: &str,
    end: Option<&str>,
) -> Value {
    serde_json::json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/{name}"),
        "name": name,
        "type": "Microsoft.Authorization/roleEligibilityScheduleInstances",
        "properties": {
            "scope": scope,
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal,
            "principalType": "User",
            "status": "Provisioned",
            "startDateTime": "2026-11-01T08:00:00Z",
            "endDateTime": end,
            "memberType": "Direct",
            "createdOn": "2026-11-01T08:00:00Z"
        }
    })
}

/// A PIM activation as `roleAssignmentScheduleInstances` lists it: the eligibility `el` of
/// the same scope, principal and role, activated until `end`.
pub fn activation(
    sub: &str,
    name: &str,
    scope: &str,
    principal: &str,
    role: &str,
    end: &str,
) -> Value {
    let mut v = eligibility(sub, name, scope, principal, role, Some(end));
    v["id"] = serde_json::json!(format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances/{name}"
    ));
    v["type"] = serde_json::json!("Microsoft.Authorization/roleAssignmentScheduleInstances");
    let p = &mut v["properties"];
    p["assignmentType"] = serde_json::json!("Activated");
    p["originRoleAssignmentId"] = serde_json::json!(format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    ));
    p["linkedRoleEligibilityScheduleId"] = serde_json::json!(format!(
        "{scope}/providers/Microsoft.Authorization/roleEligibilitySchedules/{name}"
    ));
    v
}

pub fn identity(sub: &str, name: &str, principal: &str) -> Value {
    json!({
        "name": name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "id": format!("/subscriptions/{sub}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"),
        "location": "westeurope",
        "properties": {
            "clientId": "4024ab25-56a8-4370-aea6-6389221caf29",
            "principalId": principal,
            "tenantId": "b6c948ef-f6b5-4384-8354-da3a15eca969",
            "isolationScope": "None",
        },
    })
}

/// A federated credential of `identity_id` (FederatedIdentityCredentialList shape).
pub fn fic(identity_id: &str, name: &str, issuer: &str, subject: &str) -> Value {
    json!({
        "id": format!("{identity_id}/federatedIdentityCredentials/{name}"),
        "name": name,
        "properties": {"issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]},
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
    })
}

/// A custom role definition.
pub fn custom_role(sub: &str, guid: &str, name: &str, actions: &[&str]) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name,
            "type": "CustomRole",
            "description": "",
            "assignableScopes": [format!("/subscriptions/{sub}")],
            "permissions": [{"actions": actions, "notActions": [], "dataActions": [], "notDataActions": []}],
        },
    })
}

/// A managed cluster GET body: the properties of tests/fixtures/arm (aksgpt, redacted) with
/// the id, identity and the access settings set as given.
pub fn cluster(id: &str, disable_local_accounts: bool, admin_groups: &[&str]) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/arm/arm-managedCluster-properties-redacted-aksgpt.json"
    ))
    .unwrap();
    let mut body: Value = serde_json::from_str(&text).unwrap();
    body["id"] = json!(id);
    body["name"] = json!(id.rsplit('/').next().unwrap());
    body["type"] = json!("Microsoft.ContainerService/ManagedClusters");
    body["identity"] = json!({"type": "SystemAssigned", "principalId": "11111111-2222-3333-4444-000000000001", "tenantId": "72f988bf-0000-0000-0000-000000000000"});
    let p = &mut body["properties"];
    p["disableLocalAccounts"] = json!(disable_local_accounts);
    p["aadProfile"]["adminGroupObjectIDs"] = json!(admin_groups);
    p["oidcIssuerProfile"] = json!({"enabled": true, "issuerURL": "https://westeurope.oic.prod-aks.azure.com/tenant/issuer/"});
    p["securityProfile"]["workloadIdentity"] = json!({"enabled": true});
    // A managed-identity cluster: AKS reports `msi` as the service principal.
    p["servicePrincipalProfile"] = json!({"clientId": "msi"});
    body
}

impl ArmServer {
    /// Starts on 127.0.0.1 with pages of `page_size` objects.
    pub fn start(page_size: usize) -> ArmServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            page_size,
            ..Default::default()
        }));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ArmServer {
            addr,
            inner,
            _rt: rt,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment that points the real `ManagedIdentityCredential` at the token endpoint.
    pub fn identity_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("{}/msi/token", self.endpoint()),
            ),
            ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
        ]
    }

    /// Sets the role assignments listed at `sub`.
    pub fn set_assignments(&self, sub: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .role_assignments
            .insert(sub.to_string(), v);
    }

    /// Edits the role assignments listed at `sub`.
    pub fn edit_assignments(&self, sub: &str, f: impl FnOnce(&mut Vec<Value>)) {
        f(self
            .inner
            .lock()
            .unwrap()
            .role_assignments
            .entry(sub.to_string())
            .or_default());
    }

    /// The PIM assignment schedule instances (activations) a subscription lists.
    pub fn set_activations(&self, sub: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .activations
            .insert(sub.to_ascii_lowercase(), v);
    }

    /// The PIM eligibility schedule instances a subscription lists.
    pub fn set_eligibilities(&self, sub: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .eligibilities
            .insert(sub.to_ascii_lowercase(), v);
    }

    /// Sets the custom roles of `sub`.
    pub fn set_role_definitions(&self, sub: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .role_definitions
            .insert(sub.to_string(), v);
    }

    /// Sets the identities of `sub`.
    pub fn set_identities(&self, sub: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .identities
            .insert(sub.to_string(), v);
    }

    /// Sets the federated credentials of an identity.
    pub fn set_fics(&self, identity_id: &str, v: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .fics
            .insert(identity_id.to_ascii_lowercase(), v);
    }

    /// Sets (or with `None` removes) a cluster.
    pub fn set_cluster(&self, id: &str, body: Option<Value>) {
        let mut g = self.inner.lock().unwrap();
        match body {
            Some(b) => g.clusters.insert(id.to_ascii_lowercase(), b),
            None => g.clusters.remove(&id.to_ascii_lowercase()),
        };
    }

    /// Adds a fault.
    pub fn fault(&self, f: Fault) {
        self.inner.lock().unwrap().faults.push(f);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.inner.lock().unwrap().faults.clear();
    }

    /// Answers every ARM request with 401.
    pub fn reject_tokens(&self, reject: bool) {
        self.inner.lock().unwrap().reject_tokens = reject;
    }

    /// Sends `x-ms-ratelimit-remaining-subscription-reads: n` with every answer.
    pub fn remaining_reads(&self, n: Option<u64>) {
        self.inner.lock().unwrap().remaining_reads = n;
    }

    /// Requests seen so far (token requests excluded).
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Tokens issued by the token endpoint.
    pub fn tokens_issued(&self) -> u32 {
        self.inner.lock().unwrap().tokens_issued
    }

    /// Forgets the requests seen.
    pub fn clear_seen(&self) {
        self.inner.lock().unwrap().seen.clear();
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn error(status: u16, code: &str, message: &str, retry_after: Option<&str>) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(r) = retry_after {
        b = b.header("retry-after", r);
    }
    b.body(Body::from(
        json!({"error": {"code": code, "message": message}}).to_string(),
    ))
    .unwrap()
}

fn ok(v: Value, remaining: Option<u64>) -> Response {
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    if let Some(n) = remaining {
        b = b.header("x-ms-ratelimit-remaining-subscription-reads", n.to_string());
    }
    b.body(Body::from(v.to_string())).unwrap()
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let lower = path.to_ascii_lowercase();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: HeaderMap = req.headers().clone();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    if lower == "/msi/token" {
        let ok_header = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok())
            == Some(IDENTITY_HEADER);
        if !ok_header || query_param(&query, "resource").is_none() {
            return error(
                400,
                "BadRequest",
                "missing X-IDENTITY-HEADER or resource",
                None,
            );
        }
        inner.lock().unwrap().tokens_issued += 1;
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let resource = query_param(&query, "resource").unwrap().to_string();
        return ok(
            json!({"access_token": token(), "expires_on": expires.to_string(), "resource": resource, "token_type": "Bearer"}),
            None,
        );
    }
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", token()).as_str());
    let page: usize = query_param(&query, "$skipToken")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (response, hang) = {
        let mut g = inner.lock().unwrap();
        let uri = format!("{path}?{query}");
        let fault = g
            .faults
            .iter_mut()
            .find(|f| {
                // A trailing `$` anchors the path's end: `roleassignments$` is not the
                // `roleassignmentscheduleinstances` list.
                let hit = match f.path.strip_suffix('$') {
                    Some(end) => lower.ends_with(end),
                    None => lower.contains(&f.path),
                };
                hit && f.page.is_none_or(|p| p == page) && f.times != Some(0)
            })
            .map(|f| {
                if let Some(t) = &mut f.times {
                    *t -= 1;
                }
                f.clone()
            });
        let response = if !authorized || g.reject_tokens {
            error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                None,
            )
        } else if let Some(f) = &fault {
            if f.hang {
                error(504, "GatewayTimeout", "hang", None)
            } else {
                error(f.status, &f.error.0, &f.error.1, f.retry_after.as_deref())
            }
        } else {
            route(&g, &host, &lower, &query, page)
        };
        let status = response.status().as_u16();
        g.seen.push(Seen {
            uri,
            at: Instant::now(),
            status,
            authorized,
        });
        (response, fault.is_some_and(|f| f.hang))
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    response
}

fn list(
    g: &Inner,
    host: &str,
    items: &[Value],
    base_path: &str,
    query: &str,
    page: usize,
) -> Response {
    let size = g.page_size.max(1);
    let start = (page - 1) * size;
    let chunk: Vec<Value> = items.iter().skip(start).take(size).cloned().collect();
    let mut body = json!({"value": chunk});
    if start + size < items.len() {
        let api = query_param(query, "api-version").unwrap_or("2022-04-01");
        let filter = query_param(query, "$filter")
            .map(|f| format!("&$filter={f}"))
            .unwrap_or_default();
        // ARM's nextLink: absolute, with a skip token (here: the next page's number).
        body["nextLink"] = json!(format!(
            "http://{host}{base_path}?api-version={api}{filter}&$skipToken={}",
            page + 1
        ));
    }
    ok(body, g.remaining_reads)
}

fn route(g: &Inner, host: &str, lower: &str, query: &str, page: usize) -> Response {
    let segs: Vec<&str> = lower.trim_matches('/').split('/').collect();
    let not_found = || {
        error(
            404,
            "ResourceNotFound",
            &format!("The resource '{lower}' was not found."),
            None,
        )
    };
    // /subscriptions/{s}/providers/{ns}/{type}
    if segs.len() == 5 && segs[0] == "subscriptions" && segs[2] == "providers" {
        let sub = segs[1];
        let items = match (segs[3], segs[4]) {
            ("microsoft.authorization", "roleassignments") => g.role_assignments.get(sub),
            ("microsoft.authorization", "roledefinitions") => {
                if !query_param(query, "$filter").is_some_and(|f| f.contains("CustomRole")) {
                    return error(
                        400,
                        "BadRequest",
                        "this test server wants the CustomRole filter",
                        None,
                    );
                }
                g.role_definitions.get(sub)
            }
            ("microsoft.managedidentity", "userassignedidentities") => g.identities.get(sub),
            ("microsoft.authorization", "roleeligibilityscheduleinstances") => {
                g.eligibilities.get(sub)
            }
            ("microsoft.authorization", "roleassignmentscheduleinstances") => {
                g.activations.get(sub)
            }
            _ => return not_found(),
        };
        let path = format!("/{}", segs.join("/"));
        return list(
            g,
            host,
            items.map_or(&[][..], |v| v.as_slice()),
            &path,
            query,
            page,
        );
    }
    if let Some(id) = lower.strip_suffix("/federatedidentitycredentials") {
        if !g
            .identities
            .values()
            .flatten()
            .any(|i| i["id"].as_str().unwrap_or("").eq_ignore_ascii_case(id))
        {
            return not_found();
        }
        let items = g.fics.get(id).map_or(&[][..], |v| v.as_slice());
        return list(g, host, items, lower, query, page);
    }
    if let Some(c) = g.clusters.get(lower) {
        return ok(c.clone(), g.remaining_reads);
    }
    // GET of one object (the hints' targeted reads).
    let all = g
        .role_assignments
        .values()
        .chain(g.identities.values())
        .chain(g.role_definitions.values())
        .chain(g.fics.values())
        .flatten();
    for o in all {
        if o["id"]
            .as_str()
            .is_some_and(|i| i.eq_ignore_ascii_case(lower))
        {
            return ok(o.clone(), g.remaining_reads);
        }
    }
    not_found()
}
