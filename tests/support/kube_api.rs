//! An in-test Kubernetes API server: enough of discovery, list (limit/continue paging,
//! resourceVersion), watch (newline-delimited events, BOOKMARK, ERROR 410 Expired), 401/403
//! per resource and dropped connections for the real `kube::Client` and watcher to talk to
//! over TCP. Shared by the daemon tests and the `kubernetes` bench; never in the binary.

#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

const RBAC: &str = "rbac.authorization.k8s.io";

/// The kinds served: (plural, kind, group, namespaced).
pub const RESOURCES: [(&str, &str, &str, bool); 5] = [
    ("clusterrolebindings", "ClusterRoleBinding", RBAC, false),
    ("rolebindings", "RoleBinding", RBAC, true),
    ("clusterroles", "ClusterRole", RBAC, false),
    ("roles", "Role", RBAC, true),
    ("serviceaccounts", "ServiceAccount", "", true),
];

fn plural_of(kind: &str) -> &'static str {
    RESOURCES
        .iter()
        .find(|r| r.1 == kind)
        .map(|r| r.0)
        .unwrap_or_else(|| panic!("unknown kind {kind}"))
}

/// One change, as kept for watches that resume from an older resourceVersion.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    plural: &'static str,
    kind: &'static str,
    namespace: Option<String>,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// (plural, namespace or "", name) → object (with kind, apiVersion and metadata.resourceVersion).
    objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Change>,
    /// Watches from a resourceVersion below this get ERROR 410 Expired.
    expired_below: u64,
    forbidden: HashSet<String>,
    unauthorized: bool,
    page_delay: Duration,
    /// Changes made while silent reach no watch and no history (as if made while the
    /// client's watch was down and the history compacted since).
    silent: bool,
    requests: HashMap<String, u64>,
}

/// Handle on a running fake API server.
#[derive(Clone)]
pub struct KubeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    live: broadcast::Sender<Change>,
    drop_gen: watch::Sender<u64>,
}

impl KubeApi {
    /// Starts on 127.0.0.1 with a free port, inside the current tokio runtime.
    pub async fn start() -> KubeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (live, _) = broadcast::channel(200_000);
        let (drop_gen, _) = watch::channel(0);
        let api = KubeApi {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                rv: 1000,
                ..Default::default()
            })),
            live,
            drop_gen,
        };
        let app = Router::new().fallback(handle).with_state(api.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        api
    }

    /// A kubeconfig file text pointing at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: test\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\nusers:\n- name: tester\n  user:\n    token: test-token\n",
            self.addr
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Creates or replaces an object (`kind` and `metadata` required); returns its resourceVersion.
    pub fn apply(&self, mut obj: Value) -> u64 {
        let kind = obj["kind"].as_str().expect("object kind").to_string();
        let plural = plural_of(&kind);
        let r = RESOURCES.iter().find(|r| r.0 == plural).unwrap();
        obj["apiVersion"] = json!(if r.2.is_empty() {
            "v1".to_string()
        } else {
            format!("{}/v1", r.2)
        });
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut g = self.lock();
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let existed = g
            .objects
            .insert((plural.to_string(), ns.clone(), name), obj.clone())
            .is_some();
        let change = Change {
            rv,
            plural,
            kind: r.1,
            namespace: (!ns.is_empty()).then_some(ns),
            object: json!({"type": if existed { "MODIFIED" } else { "ADDED" }, "object": obj}),
        };
        if !g.silent {
            g.history.push(change.clone());
            drop(g);
            let _ = self.live.send(change);
        }
        rv
    }

    /// Deletes an object; returns false when it did not exist.
    pub fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let plural = plural_of(kind);
        let r = RESOURCES.iter().find(|r| r.0 == plural).unwrap();
        let mut g = self.lock();
        let Some(mut obj) = g.objects.remove(&(
            plural.to_string(),
            namespace.unwrap_or("").to_string(),
            name.to_string(),
        )) else {
            return false;
        };
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let change = Change {
            rv,
            plural,
            kind: r.1,
            namespace: namespace.map(str::to_string),
            object: json!({"type": "DELETED", "object": obj}),
        };
        if !g.silent {
            g.history.push(change.clone());
            drop(g);
            let _ = self.live.send(change);
        }
        true
    }

    /// Applies many objects without keeping watch history (initial state of a big cluster).
    pub fn load(&self, objs: impl IntoIterator<Item = Value>) {
        let mut g = self.lock();
        for mut obj in objs {
            let kind = obj["kind"].as_str().unwrap().to_string();
            let plural = plural_of(&kind);
            let r = RESOURCES.iter().find(|r| r.0 == plural).unwrap();
            obj["apiVersion"] = json!(if r.2.is_empty() {
                "v1".to_string()
            } else {
                format!("{}/v1", r.2)
            });
            g.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(g.rv.to_string());
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            g.objects.insert((plural.to_string(), ns, name), obj);
        }
        let rv = g.rv;
        g.expired_below = rv;
    }

    /// Ends every open watch (the connection closes; clients re-watch from their last version).
    pub fn drop_watches(&self) {
        self.drop_gen.send_modify(|g| *g += 1);
    }

    /// Makes watches resuming from any version up to now fail with 410 Expired (etcd compaction).
    pub fn expire_history(&self) {
        let mut g = self.lock();
        g.expired_below = g.rv + 1;
    }

    /// Answers 403 Forbidden on this resource (plural), or stops doing so.
    pub fn set_forbidden(&self, plural: &str, on: bool) {
        let mut g = self.lock();
        if on {
            g.forbidden.insert(plural.to_string());
        } else {
            g.forbidden.remove(plural);
        }
    }

    /// Changes stop reaching watches (see `Inner::silent`), or reach them again.
    pub fn set_silent(&self, on: bool) {
        self.lock().silent = on;
    }

    /// Answers 401 on every request, or stops doing so.
    pub fn set_unauthorized(&self, on: bool) {
        self.lock().unauthorized = on;
    }

    /// Delays every list page (to catch a client mid-sync).
    pub fn set_page_delay(&self, d: Duration) {
        self.lock().page_delay = d;
    }

    /// How many list (or watch) requests a resource got: key `list:PLURAL` / `watch:PLURAL`.
    pub fn requests(&self, key: &str) -> u64 {
        self.lock().requests.get(key).copied().unwrap_or(0)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn json_response(code: StatusCode, v: Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str| -> Value {
        RESOURCES
            .iter()
            .filter(|r| r.2 == group)
            .map(|r| {
                json!({"name": r.0, "singularName": "", "namespaced": r.3, "kind": r.1,
                             "verbs": ["get", "list", "watch"]})
            })
            .collect()
    };
    Some(match path {
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        }
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": RBAC, "versions": [{"groupVersion": format!("{RBAC}/v1"), "version": "v1"}],
            "preferredVersion": {"groupVersion": format!("{RBAC}/v1"), "version": "v1"}}]}),
        "/api/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("")})
        }
        p if p == format!("/apis/{RBAC}/v1") => {
            json!({"kind": "APIResourceList", "groupVersion": format!("{RBAC}/v1"), "resources": resources(RBAC)})
        }
        _ => return None,
    })
}

/// `(plural, namespace)` of a collection path.
fn collection(path: &str) -> Option<(&'static str, Option<String>)> {
    let rest = path
        .strip_prefix(&format!("/apis/{RBAC}/v1/"))
        .or_else(|| path.strip_prefix("/api/v1/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (plural, ns) = match parts.as_slice() {
        [p] => (*p, None),
        ["namespaces", ns, p] => (*p, Some(ns.to_string())),
        _ => return None,
    };
    let r = RESOURCES.iter().find(|r| r.0 == plural)?;
    let group_ok = if r.2.is_empty() {
        path.starts_with("/api/v1/")
    } else {
        path.starts_with("/apis/")
    };
    group_ok.then_some((r.0, ns))
}

fn labels_match(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

async fn handle(State(api): State<KubeApi>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default();
    if api.lock().unauthorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if let Some(v) = discovery(&path) {
        return json_response(StatusCode::OK, v);
    }
    let Some((plural, ns)) = collection(&path) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = if watching { "watch" } else { "list" };
    let delay = {
        let mut g = api.lock();
        *g.requests.entry(format!("{verb}:{plural}")).or_default() += 1;
        if g.forbidden.contains(plural) {
            let r = RESOURCES.iter().find(|r| r.0 == plural).unwrap();
            return status(403, "Forbidden", &format!(
                "{plural}.{} is forbidden: User \"system:serviceaccount:accessdrift:accessdrift\" cannot {verb} resource \"{plural}\" in API group \"{}\" at the cluster scope",
                r.2, r.2));
        }
        g.page_delay
    };
    let selector = query.get("labelSelector").map(String::as_str);
    if watching {
        return watch_response(&api, plural, ns, &query);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let g = api.lock();
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX)
        .max(1);
    let (list_rv, offset) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let (rv, off) = c.split_once(':').unwrap_or(("0", "0"));
            (rv.parse().unwrap_or(0), off.parse().unwrap_or(0))
        }
        None => (g.rv, 0usize),
    };
    let kind = RESOURCES.iter().find(|r| r.0 == plural).unwrap().1;
    let mut items = Vec::new();
    let mut next = None;
    let matching = g
        .objects
        .iter()
        .filter(|((p, n, _), _)| p == plural && ns.as_ref().is_none_or(|want| want == n))
        .filter(|(_, o)| labels_match(o, selector))
        .skip(offset);
    for (i, (_, o)) in matching.enumerate() {
        if i == limit {
            next = Some(format!("{list_rv}:{}", offset + limit));
            break;
        }
        // Items inside a list carry no kind or apiVersion.
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
        items.push(o);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(c) = next {
        meta["continue"] = json!(c);
    }
    let api_version = if RESOURCES
        .iter()
        .find(|r| r.0 == plural)
        .unwrap()
        .2
        .is_empty()
    {
        "v1".to_string()
    } else {
        format!("{RBAC}/v1")
    };
    json_response(
        StatusCode::OK,
        json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": meta, "items": items}),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(c) => {
                        out.push(c);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn watch_response(
    api: &KubeApi,
    plural: &'static str,
    ns: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let selector = query.get("labelSelector").cloned();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let mut live = api.live.subscribe();
    let mut dropped = api.drop_gen.subscribe();
    let (expired, backlog, rv_now) = {
        let g = api.lock();
        let backlog: Vec<Change> = g
            .history
            .iter()
            .filter(|c| c.rv > from && c.plural == plural)
            .cloned()
            .collect();
        (from < g.expired_below, backlog, g.rv)
    };
    let matches = move |c: &Change| {
        c.plural == plural
            && ns
                .as_ref()
                .is_none_or(|n| c.namespace.as_deref() == Some(n))
            && labels_match(&c.object["object"], selector.as_deref())
    };
    tokio::spawn(async move {
        let line = |v: &Value| Bytes::from(format!("{v}\n"));
        if expired {
            let _ = tx
                .send(line(&json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": format!("too old resource version: {from} ({rv_now})"),
                    "reason": "Expired", "code": 410}})))
                .await;
            return;
        }
        let mut last = from;
        for c in backlog.iter().filter(|c| matches(c)) {
            last = c.rv;
            if tx.send(line(&c.object)).await.is_err() {
                return;
            }
        }
        if bookmarks {
            let kind = RESOURCES.iter().find(|r| r.0 == plural).unwrap().1;
            let _ = tx
                .send(line(
                    &json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": "v1",
                    "metadata": {"resourceVersion": rv_now.max(last).to_string()}}}),
                ))
                .await;
        }
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return,
                _ = dropped.changed() => return,
                c = live.recv() => match c {
                    Ok(c) if c.rv > last && matches(&c) => {
                        last = c.rv;
                        if tx.send(line(&c.object)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap()
}
