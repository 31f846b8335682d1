//! One record of an Event Hub (or a replayed file) to its decoder, by its `category`: the
//! Activity Log's, the AKS audit categories (`kube-audit`, `kube-audit-admin`), and the other
//! AKS resource logs, which are skipped and counted under their category.

use crate::domain::{AuditWrite, ChangeOp, EventTime, Location, Observation, Provenance};
use crate::sources::activity_log::{self, Prefilter};
use crate::sources::kube_audit::{
    self, ClusterRef, Clusters, AUDIT_CATEGORIES, OTHER_AKS_CATEGORIES,
};
use crate::sources::{Decoded, SkipReason};
use memchr::memmem::Finder;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a cluster whose audit records arrive but are all filtered out says so to the
/// store: alerts of that cluster then wait for their actor (`[notify] attribution_wait`).
pub const AUDIT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Decodes records of every category a diagnostic setting writes.
pub struct RecordRouter {
    prefilter: Prefilter,
    category: Finder<'static>,
    clusters: Clusters,
    /// When each cluster last sent a heartbeat (per router: one per partition or replay).
    heartbeats: Mutex<HashMap<String, Instant>>,
}

impl Default for RecordRouter {
    fn default() -> Self {
        RecordRouter::new(Clusters::default())
    }
}

impl RecordRouter {
    /// A router that maps audit records to `clusters`.
    pub fn new(clusters: Clusters) -> Self {
        RecordRouter {
            prefilter: Prefilter::default(),
            category: Finder::new(b"\"category\""),
            clusters,
            heartbeats: Mutex::new(HashMap::new()),
        }
    }

    /// The clusters audit records are mapped to.
    pub fn clusters(&self) -> &Clusters {
        &self.clusters
    }

    /// Decodes one record (one element of `records[]`).
    pub fn decode(&self, rec: &[u8]) -> Decoded {
        match kube_audit::category(rec, &self.category) {
            Some(c) if AUDIT_CATEGORIES.iter().any(|a| a.eq_ignore_ascii_case(c)) => {
                let label = if c.eq_ignore_ascii_case("kube-audit") {
                    "kube-audit"
                } else {
                    "kube-audit-admin"
                };
                let out = kube_audit::decode_record(&self.clusters, rec);
                self.count(label, &out.decoded);
                match (&out.decoded, out.cluster) {
                    (Decoded::Skipped(SkipReason::AuditFiltered), Some(cluster)) => {
                        self.heartbeat(&cluster).unwrap_or(out.decoded)
                    }
                    _ => out.decoded,
                }
            }
            Some(c) => match OTHER_AKS_CATEGORIES
                .iter()
                .find(|o| o.eq_ignore_ascii_case(c))
            {
                Some(name) => {
                    crate::metrics::global().resource_log_record(name, "skipped");
                    Decoded::Skipped(SkipReason::OtherLogCategory)
                }
                None => activity_log::decode_record(&self.prefilter, rec),
            },
            None => activity_log::decode_record(&self.prefilter, rec),
        }
    }

    /// Decodes one raw audit Event (a line of an API server's audit log) of `cluster`.
    pub fn decode_audit_event(&self, cluster: &ClusterRef, bytes: &[u8]) -> Decoded {
        let d = kube_audit::decode_event(cluster, bytes, None);
        self.count("audit-log", &d);
        match d {
            Decoded::Skipped(SkipReason::AuditFiltered) => {
                self.heartbeat(&cluster.name).unwrap_or(d)
            }
            d => d,
        }
    }

    fn count(&self, category: &str, d: &Decoded) {
        let outcome = match d {
            Decoded::Observation(_) => "kept",
            Decoded::Skipped(SkipReason::UnknownCluster) => "unknown_cluster",
            Decoded::Skipped(_) => "filtered",
            Decoded::Malformed(_) => "malformed",
        };
        crate::metrics::global().resource_log_record(category, outcome);
    }

    /// An observation that only says "audit records of `cluster` are arriving", at most once
    /// per [`AUDIT_HEARTBEAT`].
    fn heartbeat(&self, cluster: &str) -> Option<Decoded> {
        let now = Instant::now();
        let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        if beats
            .get(cluster)
            .is_some_and(|t| now.duration_since(*t) < AUDIT_HEARTBEAT)
        {
            return None;
        }
        beats.insert(cluster.to_string(), now);
        let c = self.clusters.by_name(cluster);
        Some(Decoded::Observation(Observation::immediate(
            ChangeOp::Audit(AuditWrite {
                cluster: c.name,
                cluster_id: c.id,
                target: None,
                verb: "seen".to_string(),
            }),
            Provenance {
                source: kube_audit::SOURCE.to_string(),
                event_time: EventTime::now(),
                correlation_id: None,
                resource_version: None,
                operation: "k8s-audit:seen".to_string(),
                actor: Default::default(),
                location: Location::default(),
            },
        )))
    }
}
