//! Prometheus metrics (OpenMetrics text at `/metrics`): one process-wide registry.
//!
//! Names are `accessdrift_<what>_<unit>`; labels are low-cardinality (source, kind, sink,
//! severity, reason, partition) and never carry a fact key, a principal or a secret. Code
//! records through [`global()`]; the daemon's server encodes it with [`encode`]. Counters are
//! registered without `_total`: the OpenMetrics encoder appends it.

mod gauges;

use gauges::SeenSeries;
pub use gauges::{OutboxGauge, StoreGauges};
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// One label.
type L1 = [(&'static str, String); 1];
/// Two labels.
type L2 = [(&'static str, String); 2];
type Hist = Family<L1, Histogram, fn() -> Histogram>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Every metric family accessdrift exports.
pub struct Metrics {
    registry: Registry,
    records_read: Family<L1, Counter>,
    records_skipped: Family<L2, Counter>,
    records_malformed: Family<L1, Counter>,
    batches_committed: Family<L1, Counter>,
    batches_failed: Family<L1, Counter>,
    batch_commit: Hist,
    facts: Family<L1, Gauge>,
    findings_active: Family<L2, Gauge>,
    transitions: Family<L1, Counter>,
    alerts_queued: Family<L1, Counter>,
    alerts_delivered: Family<L1, Counter>,
    alerts_failed: Family<L1, Counter>,
    alerts_dead: Family<L1, Counter>,
    delivery: Hist,
    outbox_depth: Family<L2, Gauge>,
    outbox_oldest: Family<L1, GaugeF>,
    source_ready: Family<L1, Gauge>,
    eventhubs_lag: Family<L1, Gauge>,
    eventhubs_age: Family<L1, GaugeF>,
    watch_restarts: Family<L2, Counter>,
    relists: Family<L1, Counter>,
    arm_requests: Family<L2, Counter>,
    arm_retries: Family<L1, Counter>,
    inventory_parts: Family<L2, Counter>,
    resource_log_records: Family<L2, Counter>,
    attributions: Family<L1, Counter>,
    attribution_latency: Hist,
    spans_exported: Counter,
    spans_dropped: Family<L1, Counter>,
    errors: Family<L1, Counter>,
    /// Series of the store gauges that exist (declared, or seen in a reading).
    seen: Mutex<SeenSeries>,
}

/// Finding severities and kinds: every combination is exported, 0 included, so a panel or an
/// alert rule never sees a series appear or disappear.
const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];
const FINDING_KINDS: [&str; 3] = ["drift", "policy", "activity"];
const TRANSITIONS: [&str; 4] = ["opened", "reopened", "resolved", "severity_changed"];
const WATCH_RESTART_REASONS: [&str; 3] = ["expired", "error", "unauthorized"];

fn seconds_buckets() -> Histogram {
    // 1 ms … ~33 s: a commit or a delivery slower than that is an outage, not a bucket.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn attribution_buckets() -> Histogram {
    // An audit record lags its watch event by seconds to minutes; past the 10 m window there
    // is no attribution at all.
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 90.0, 180.0, 300.0, 600.0,
    ])
}

fn l1(k: &'static str, v: &str) -> L1 {
    [(k, v.to_string())]
}

fn l2(k1: &'static str, v1: &str, k2: &'static str, v2: &str) -> L2 {
    [(k1, v1.to_string()), (k2, v2.to_string())]
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let hist = || Hist::new_with_constructor(seconds_buckets);
        let m = Metrics {
            records_read: Family::default(),
            records_skipped: Family::default(),
            records_malformed: Family::default(),
            batches_committed: Family::default(),
            batches_failed: Family::default(),
            batch_commit: hist(),
            facts: Family::default(),
            findings_active: Family::default(),
            transitions: Family::default(),
            alerts_queued: Family::default(),
            alerts_delivered: Family::default(),
            alerts_failed: Family::default(),
            alerts_dead: Family::default(),
            delivery: hist(),
            outbox_depth: Family::default(),
            outbox_oldest: Family::default(),
            source_ready: Family::default(),
            eventhubs_lag: Family::default(),
            eventhubs_age: Family::default(),
            watch_restarts: Family::default(),
            relists: Family::default(),
            arm_requests: Family::default(),
            arm_retries: Family::default(),
            inventory_parts: Family::default(),
            resource_log_records: Family::default(),
            attributions: Family::default(),
            attribution_latency: Hist::new_with_constructor(attribution_buckets),
            spans_exported: Counter::default(),
            spans_dropped: Family::default(),
            errors: Family::default(),
            registry: Registry::default(),
            seen: Mutex::default(),
        };
        // Present from the first scrape, before the first store reading: absence alerts and
        // `rate()` must not see a healthy daemon's series appear late.
        m.declare_store_series(None);
        for t in TRANSITIONS {
            let _ = m.transitions.get_or_create(&l1("transition", t));
        }
        let _ = m
            .spans_dropped
            .get_or_create(&l1("reason", "export_failed"));
        r.register(
            "accessdrift_build",
            "Build information (value 1)",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("name", env!("CARGO_PKG_NAME").to_string()),
            ]),
        );
        r.register(
            "accessdrift_source_records_read",
            "Records a source read, per source",
            m.records_read.clone(),
        );
        r.register(
            "accessdrift_source_records_skipped",
            "Records that changed nothing, per source and reason",
            m.records_skipped.clone(),
        );
        r.register(
            "accessdrift_source_records_malformed",
            "Records that could not be understood (logged with their location and skipped)",
            m.records_malformed.clone(),
        );
        r.register(
            "accessdrift_batches_committed",
            "Batches committed by the store writer, per source",
            m.batches_committed.clone(),
        );
        r.register(
            "accessdrift_batches_failed",
            "Batches rolled back (read again by their source), per source",
            m.batches_failed.clone(),
        );
        r.register(
            "accessdrift_batch_commit_duration_seconds",
            "Time to apply and commit one batch, per source",
            m.batch_commit.clone(),
        );
        r.register(
            "accessdrift_facts",
            "Live facts in the store, per fact kind",
            m.facts.clone(),
        );
        r.register(
            "accessdrift_findings_active",
            "Open or acknowledged findings, per severity and finding kind",
            m.findings_active.clone(),
        );
        r.register(
            "accessdrift_finding_transitions",
            "Finding transitions committed, per transition (opened, reopened, resolved, severity_changed)",
            m.transitions.clone(),
        );
        r.register(
            "accessdrift_alerts_queued",
            "Alerts written to the outbox, per sink",
            m.alerts_queued.clone(),
        );
        r.register(
            "accessdrift_alerts_delivered",
            "Alerts a sink accepted, per sink",
            m.alerts_delivered.clone(),
        );
        r.register(
            "accessdrift_alerts_failed",
            "Delivery attempts that failed (then retried, or dead-lettered), per sink",
            m.alerts_failed.clone(),
        );
        r.register(
            "accessdrift_alerts_dead_lettered",
            "Alerts moved to the dead-letter state, per sink",
            m.alerts_dead.clone(),
        );
        r.register(
            "accessdrift_alert_delivery_duration_seconds",
            "Time a sink took to accept (or refuse) one alert, per sink",
            m.delivery.clone(),
        );
        r.register(
            "accessdrift_outbox_alerts",
            "Alerts in the outbox, per sink and state (pending, dead)",
            m.outbox_depth.clone(),
        );
        r.register(
            "accessdrift_outbox_oldest_pending_age_seconds",
            "Age of the oldest alert waiting for delivery, per sink (0 when none waits)",
            m.outbox_oldest.clone(),
        );
        r.register(
            "accessdrift_source_ready",
            "1 when the source has synced and is authorised, else 0",
            m.source_ready.clone(),
        );
        r.register(
            "accessdrift_eventhubs_lag_events",
            "Events enqueued on the partition and not yet committed, per partition",
            m.eventhubs_lag.clone(),
        );
        r.register(
            "accessdrift_eventhubs_last_committed_event_age_seconds",
            "Age of the last committed event's enqueue time, per partition",
            m.eventhubs_age.clone(),
        );
        r.register(
            "accessdrift_kubernetes_watch_restarts",
            "Kubernetes watch restarts, per kind and reason (expired, error, unauthorized)",
            m.watch_restarts.clone(),
        );
        r.register(
            "accessdrift_arm_requests",
            "ARM requests of the inventory, per listed part and outcome (ok, retried, throttled, unauthorized, forbidden, not_found, failed)",
            m.arm_requests.clone(),
        );
        r.register(
            "accessdrift_arm_retries",
            "ARM requests sent again after a 429, a 5xx or a connection failure, per reason",
            m.arm_retries.clone(),
        );
        r.register(
            "accessdrift_inventory_parts",
            "Inventory listings finished, per part and outcome (completed, failed)",
            m.inventory_parts.clone(),
        );
        r.register(
            "accessdrift_resource_log_records",
            "AKS resource-log records read from Event Hubs, per category (kube-audit, kube-audit-admin, guard, …; other) and outcome (kept, filtered, unknown_cluster, skipped)",
            m.resource_log_records.clone(),
        );
        r.register(
            "accessdrift_attributions",
            "Kubernetes changes joined to their audit record, per how (resource_version, time)",
            m.attributions.clone(),
        );
        r.register(
            "accessdrift_attribution_latency_seconds",
            "Wall-clock time from a Kubernetes change being stored to its audit record naming who made it, per how",
            m.attribution_latency.clone(),
        );
        r.register(
            "accessdrift_kubernetes_relists",
            "Kubernetes relists after the initial one, per kind",
            m.relists.clone(),
        );
        r.register(
            "accessdrift_trace_spans_exported",
            "Spans the OTLP exporter delivered to the collector",
            m.spans_exported.clone(),
        );
        r.register(
            "accessdrift_trace_spans_dropped",
            "Spans lost on the way to the collector, per reason (export_failed)",
            m.spans_dropped.clone(),
        );
        r.register(
            "accessdrift_errors",
            "Failures logged at error or warn level outside a source or a sink, per component (notifier, gauges, server; batches and deliveries have their own)",
            m.errors.clone(),
        );
        for c in ["notifier", "gauges", "server"] {
            let _ = m.errors.get_or_create(&l1("component", c));
        }
        Metrics { registry: r, ..m }
    }

    /// Exports `source`'s series at 0 before its first record (Prometheus `rate()` and
    /// absence alerts need the series to exist).
    pub fn declare_source(&self, source: &str) {
        let l = l1("source", source);
        let _ = self.records_read.get_or_create(&l);
        let _ = self.records_malformed.get_or_create(&l);
        let _ = self.batches_committed.get_or_create(&l);
        let _ = self.batches_failed.get_or_create(&l);
        let _ = self.batch_commit.get_or_create(&l);
        // The store's reasons apply to every source; a source's own appear with their first use.
        for reason in ["duplicate", "stale"] {
            let _ = self
                .records_skipped
                .get_or_create(&l2("source", source, "reason", reason));
        }
    }

    /// Exports a Kubernetes watch's restart and relist series at 0.
    pub fn declare_kube_kind(&self, kind: &str) {
        for r in WATCH_RESTART_REASONS {
            let _ = self
                .watch_restarts
                .get_or_create(&l2("kind", kind, "reason", r));
        }
        let _ = self.relists.get_or_create(&l1("kind", kind));
    }

    /// Exports a sink's alert series and its outbox gauges at 0, before any reading.
    pub fn declare_sink(&self, sink: &str) {
        let l = l1("sink", sink);
        let _ = self.alerts_queued.get_or_create(&l);
        let _ = self.alerts_delivered.get_or_create(&l);
        let _ = self.alerts_failed.get_or_create(&l);
        let _ = self.alerts_dead.get_or_create(&l);
        let _ = self.delivery.get_or_create(&l);
        self.declare_store_series(Some(sink));
    }

    /// One record of `source` skipped for `reason` (a stable snake_case name).
    pub fn record_skipped(&self, source: &str, reason: &str, n: u64) {
        self.records_skipped
            .get_or_create(&l2("source", source, "reason", reason))
            .inc_by(n);
    }

    /// `n` records read by `source`.
    pub fn records_read(&self, source: &str, n: u64) {
        self.records_read
            .get_or_create(&l1("source", source))
            .inc_by(n);
    }

    /// `n` malformed records of `source` (each also logged with its location).
    pub fn records_malformed(&self, source: &str, n: u64) {
        self.records_malformed
            .get_or_create(&l1("source", source))
            .inc_by(n);
    }

    /// A batch of `source` committed after `took`.
    pub fn batch_committed(&self, source: &str, took: Duration) {
        self.batches_committed
            .get_or_create(&l1("source", source))
            .inc();
        self.batch_commit
            .get_or_create(&l1("source", source))
            .observe(took.as_secs_f64());
    }

    /// A batch of `source` rolled back.
    pub fn batch_failed(&self, source: &str) {
        self.batches_failed
            .get_or_create(&l1("source", source))
            .inc();
    }

    /// `n` committed transitions of one kind (`opened`, `resolved`, …).
    pub fn transitions(&self, transition: &str, n: u64) {
        if n > 0 {
            self.transitions
                .get_or_create(&l1("transition", transition))
                .inc_by(n);
        }
    }

    /// `n` alerts queued for `sink`.
    pub fn alerts_queued(&self, sink: &str, n: u64) {
        self.alerts_queued
            .get_or_create(&l1("sink", sink))
            .inc_by(n);
    }

    /// `sink` accepted an alert after `took`.
    pub fn alert_delivered(&self, sink: &str, took: Duration) {
        self.alerts_delivered.get_or_create(&l1("sink", sink)).inc();
        self.delivery
            .get_or_create(&l1("sink", sink))
            .observe(took.as_secs_f64());
    }

    /// A delivery to `sink` failed after `took` and will be retried.
    pub fn alert_failed(&self, sink: &str, took: Duration) {
        self.alerts_failed.get_or_create(&l1("sink", sink)).inc();
        self.delivery
            .get_or_create(&l1("sink", sink))
            .observe(took.as_secs_f64());
    }

    /// An alert for `sink` was dead-lettered.
    pub fn alert_dead_lettered(&self, sink: &str) {
        self.alerts_dead.get_or_create(&l1("sink", sink)).inc();
    }

    /// A logged failure in `component` (notifier, gauges, server).
    pub fn error(&self, component: &str) {
        self.errors.get_or_create(&l1("component", component)).inc();
    }

    /// Readiness of `source` (set on every state change).
    pub fn source_ready(&self, source: &str, ready: bool) {
        self.source_ready
            .get_or_create(&l1("source", source))
            .set(i64::from(ready));
    }

    /// Event Hubs: events behind on `partition`, and the age of the last committed event.
    pub fn eventhubs_partition(&self, partition: &str, lag_events: i64, last_age: Duration) {
        self.eventhubs_lag
            .get_or_create(&l1("partition", partition))
            .set(lag_events);
        self.eventhubs_age
            .get_or_create(&l1("partition", partition))
            .set(last_age.as_secs_f64());
    }

    /// Exports a partition's lag and age series (at 0 until its first reading).
    pub fn declare_eventhubs_partition(&self, partition: &str) {
        let _ = self
            .eventhubs_lag
            .get_or_create(&l1("partition", partition));
        let _ = self
            .eventhubs_age
            .get_or_create(&l1("partition", partition));
    }

    /// A Kubernetes watch of `kind` restarted for `reason`.
    pub fn watch_restarted(&self, kind: &str, reason: &str) {
        self.watch_restarts
            .get_or_create(&l2("kind", kind, "reason", reason))
            .inc();
    }

    /// A Kubernetes watch of `kind` started a relist after its first.
    pub fn relisted(&self, kind: &str) {
        self.relists.get_or_create(&l1("kind", kind)).inc();
    }

    /// One ARM request of `part` ended with `outcome`.
    pub fn arm_request(&self, part: &str, outcome: &str) {
        self.arm_requests
            .get_or_create(&l2("part", part, "outcome", outcome))
            .inc();
    }

    /// An ARM request is sent again because of `reason` (`throttled`, `server_error`, `transport`).
    pub fn arm_retry(&self, reason: &str) {
        self.arm_retries.get_or_create(&l1("reason", reason)).inc();
    }

    /// The listing of an inventory `part` finished with `outcome` (`completed`, `failed`).
    pub fn inventory_part(&self, part: &str, outcome: &str) {
        self.inventory_parts
            .get_or_create(&l2("part", part, "outcome", outcome))
            .inc();
    }

    /// One AKS resource-log record of `category` had `outcome`.
    pub fn resource_log_record(&self, category: &str, outcome: &str) {
        self.resource_log_records
            .get_or_create(&l2("category", category, "outcome", outcome))
            .inc();
    }

    /// A change was attributed `how` (`resource_version`, `time`), `waited` after it was stored.
    pub fn attributed(&self, how: &str, waited: Option<Duration>) {
        self.attributions.get_or_create(&l1("how", how)).inc();
        if let Some(w) = waited {
            self.attribution_latency
                .get_or_create(&l1("how", how))
                .observe(w.as_secs_f64());
        }
    }

    /// `n` spans exported to the collector.
    pub fn spans_exported(&self, n: u64) {
        self.spans_exported.inc_by(n);
    }

    /// `n` spans dropped for `reason`.
    pub fn spans_dropped(&self, reason: &str, n: u64) {
        self.spans_dropped
            .get_or_create(&l1("reason", reason))
            .inc_by(n);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_total_and_labels_are_escaped_by_the_encoder() {
        let m = Metrics::new();
        m.records_read("k8s:aks:Role", 1);
        m.record_skipped("replay", "duplicate", 2);
        m.alert_delivered("webhook", Duration::from_millis(20));
        let text = m.encode();
        assert!(text.contains("accessdrift_source_records_read_total{source=\"k8s:aks:Role\"} 1"));
        assert!(text.contains(
            "accessdrift_source_records_skipped_total{source=\"replay\",reason=\"duplicate\"} 2"
        ));
        assert!(text.contains("# TYPE accessdrift_alert_delivery_duration_seconds histogram"));
        assert!(text.contains("accessdrift_build_info{version="));
        assert!(text.ends_with("# EOF\n"));
    }

    /// Before any store reading, a declared sink's outbox gauges and every fact kind, finding
    /// kind and severity read 0 (they used to appear only with the first reading).
    #[test]
    fn store_gauges_exist_at_zero_before_the_first_reading() {
        let m = Metrics::new();
        m.declare_sink("siem");
        let text = m.encode();
        for series in [
            "accessdrift_outbox_alerts{sink=\"siem\",state=\"pending\"} 0",
            "accessdrift_outbox_alerts{sink=\"siem\",state=\"dead\"} 0",
            "accessdrift_outbox_oldest_pending_age_seconds{sink=\"siem\"} 0",
            "accessdrift_facts{kind=\"role_assignment\"} 0",
            "accessdrift_findings_active{kind=\"drift\",severity=\"critical\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }

    /// A reading sets each series once; what a later reading lacks goes to 0, never away.
    #[test]
    fn a_series_missing_from_a_reading_reads_zero() {
        let m = Metrics::new();
        let dead = |n| StoreGauges {
            outbox: vec![OutboxGauge {
                sink: "old-sink".into(),
                state: "dead".into(),
                count: n,
                oldest_unix: Some(100),
            }],
            ..StoreGauges::default()
        };
        m.set_store_gauges(&dead(3), 200);
        assert!(m
            .encode()
            .contains("accessdrift_outbox_alerts{sink=\"old-sink\",state=\"dead\"} 3"));
        m.set_store_gauges(&StoreGauges::default(), 200);
        assert!(m
            .encode()
            .contains("accessdrift_outbox_alerts{sink=\"old-sink\",state=\"dead\"} 0"));
    }
}
