//! Liveness and readiness of the daemon's tasks, shared with the HTTP server.
//!
//! Every source state change goes through [`Readiness::set`], which also writes the one log
//! line per change that operators follow (connecting, syncing, synced, watch restarted, error).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a source is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Building a client or opening a connection.
    Connecting,
    /// Reading its initial state (a Kubernetes list).
    Syncing,
    /// Initial state applied; following changes.
    Synced,
    /// The watch restarted and is reading the full state again (410 Gone, reconnect).
    Relisting,
    /// The server refused the credentials (401) or the permission (403): not ready until fixed.
    Unauthorized(String),
    /// Any other failure; retried with backoff.
    Error(String),
    /// Stopped on shutdown.
    Stopped,
}

impl SourceState {
    fn label(&self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Syncing => "syncing",
            SourceState::Synced => "synced",
            SourceState::Relisting => "watch restarted",
            SourceState::Unauthorized(_) => "unauthorized",
            SourceState::Error(_) => "error",
            SourceState::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct SourceEntry {
    state: SourceState,
    synced_once: bool,
    /// Set by the source while it is up but not keeping up (an Event Hubs partition stalled).
    degraded: Option<String>,
    /// Source-specific figures shown in `/readyz` (Event Hubs lag per partition).
    details: Option<Value>,
    /// What the initial sync is waiting for (the inventory part being listed).
    waiting: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    sources: BTreeMap<String, SourceEntry>,
    dead_tasks: Vec<String>,
}

/// The daemon's health registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Mutex<Inner>>,
    backlog: Arc<AtomicUsize>,
    capacity: usize,
}

/// A source's handle on its own readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    health: Health,
    name: String,
}

impl Health {
    /// A registry for a writer queue of `capacity` batches.
    pub fn new(capacity: usize) -> Self {
        Health {
            inner: Arc::default(),
            backlog: Arc::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a source (not ready until its initial sync is done).
    pub fn register(&self, name: &str) -> Readiness {
        crate::metrics::global().source_ready(name, false);
        crate::metrics::global().declare_source(name);
        self.lock().sources.insert(
            name.to_string(),
            SourceEntry {
                state: SourceState::Connecting,
                synced_once: false,
                degraded: None,
                details: None,
                waiting: None,
            },
        );
        Readiness {
            health: self.clone(),
            name: name.to_string(),
        }
    }

    /// Records that a task the daemon needs has ended; `/healthz` fails from then on.
    pub fn task_died(&self, task: &str) {
        self.lock().dead_tasks.push(task.to_string());
    }

    /// Batches sent to the writer and not yet committed.
    pub(crate) fn backlog(&self) -> Arc<AtomicUsize> {
        self.backlog.clone()
    }

    /// `/healthz`: alive while every task is.
    pub fn live(&self) -> (bool, Value) {
        let g = self.lock();
        let ok = g.dead_tasks.is_empty();
        (
            ok,
            json!({"status": if ok { "ok" } else { "failed" }, "dead_tasks": g.dead_tasks}),
        )
    }

    /// `/readyz`: ready when every source has synced (and is authorised) and the writer keeps up.
    pub fn ready(&self) -> (bool, Value) {
        let g = self.lock();
        let mut not_ready = BTreeMap::new();
        let mut sources = BTreeMap::new();
        let mut details = BTreeMap::new();
        for (name, s) in &g.sources {
            if let Some(d) = &s.details {
                details.insert(name.clone(), d.clone());
            }
            let reason = match &s.state {
                SourceState::Unauthorized(m) => Some(format!("unauthorized: {m}")),
                _ if !s.synced_once => Some(match (&s.state, &s.waiting) {
                    (SourceState::Error(m), _) => format!("initial sync not finished: {m}"),
                    (_, Some(w)) => format!("initial sync not finished: {w}"),
                    (st, None) => format!("initial sync not finished ({})", st.label()),
                }),
                _ => s.degraded.clone(),
            };
            sources.insert(name.clone(), json!(s.state.label()));
            if let Some(r) = reason {
                not_ready.insert(name.clone(), r);
            }
        }
        let backlog = self.backlog.load(Ordering::Relaxed);
        let writer_ok = backlog < self.capacity;
        if !writer_ok {
            not_ready.insert(
                "writer".to_string(),
                format!(
                    "falling behind: {backlog} batches queued (queue holds {})",
                    self.capacity
                ),
            );
        }
        let ok = not_ready.is_empty() && g.dead_tasks.is_empty();
        (
            ok,
            json!({
                "status": if ok { "ready" } else { "not ready" },
                "not_ready": not_ready,
                "sources": sources,
                "writer_backlog": backlog,
                "details": details,
            }),
        )
    }
}

impl Readiness {
    /// This source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves to `state`, logging the change once (repeats of the same state are silent).
    pub fn set(&self, state: SourceState) {
        let mut g = self.health.lock();
        let Some(s) = g.sources.get_mut(&self.name) else {
            return;
        };
        if s.state == state {
            return;
        }
        if state == SourceState::Synced {
            s.synced_once = true;
        }
        let source = self.name.as_str();
        let label = state.label();
        match &state {
            SourceState::Unauthorized(m) | SourceState::Error(m) => {
                tracing::error!(source, state = label, error = %m, "source state changed")
            }
            _ => tracing::info!(source, state = label, "source state changed"),
        }
        // The same rule as `/readyz` for one source: synced once and not refused.
        let ready = s.synced_once && !matches!(state, SourceState::Unauthorized(_));
        crate::metrics::global().source_ready(source, ready);
        s.state = state;
    }

    /// Marks the source degraded (not ready, with this reason) or clears it; logs changes.
    pub fn set_degraded(&self, reason: Option<String>) {
        let mut g = self.health.lock();
        let Some(s) = g.sources.get_mut(&self.name) else {
            return;
        };
        if s.degraded == reason {
            return;
        }
        match &reason {
            Some(r) => tracing::error!(source = %self.name, reason = %r, "source degraded"),
            None => tracing::info!(source = %self.name, "source no longer degraded"),
        }
        s.degraded = reason;
    }

    /// Says what the initial sync waits for (`/readyz` names it); not logged, it changes often.
    pub fn set_waiting(&self, what: Option<String>) {
        if let Some(s) = self.health.lock().sources.get_mut(&self.name) {
            s.waiting = what;
        }
    }

    /// Replaces the figures `/readyz` shows for this source.
    pub fn set_details(&self, details: Value) {
        if let Some(s) = self.health.lock().sources.get_mut(&self.name) {
            s.details = Some(details);
        }
    }

    /// The current state.
    pub fn state(&self) -> SourceState {
        self.health
            .lock()
            .sources
            .get(&self.name)
            .map_or(SourceState::Stopped, |s| s.state.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_the_source_and_reason() {
        let h = Health::new(4);
        let a = h.register("k8s:c:Role");
        let b = h.register("k8s:c:RoleBinding");
        assert!(!h.ready().0);
        a.set(SourceState::Synced);
        b.set(SourceState::Unauthorized("cannot list rolebindings".into()));
        let (ok, body) = h.ready();
        assert!(!ok);
        assert_eq!(body["not_ready"].as_object().unwrap().len(), 1);
        assert!(body["not_ready"]["k8s:c:RoleBinding"]
            .as_str()
            .unwrap()
            .contains("cannot list rolebindings"));
        b.set(SourceState::Synced);
        // An error after the first sync (a dropped watch) does not flap readiness.
        a.set(SourceState::Error("connection reset".into()));
        assert!(h.ready().0, "{}", h.ready().1);
        a.set_degraded(Some("partition 1 stalled".into()));
        a.set_details(json!({"lag": 3}));
        let (ok, body) = h.ready();
        assert!(!ok);
        assert_eq!(body["not_ready"]["k8s:c:Role"], "partition 1 stalled");
        assert_eq!(body["details"]["k8s:c:Role"]["lag"], 3);
        a.set_degraded(None);
        assert!(h.ready().0);
        h.backlog().store(4, Ordering::Relaxed);
        assert!(h.ready().1["not_ready"]["writer"].is_string());
    }
}
