//! The store gauges (facts, active findings, the outbox): a reading from the store, and how it
//! is set so that no series vanishes or passes through 0 between scrapes.

use super::{l1, l2, Metrics, FINDING_KINDS, SEVERITIES};
use std::collections::{BTreeMap, BTreeSet};

/// A store reading, as the metrics sampler sets it (the store fills it in).
/// One (sink, state) group of outbox rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxGauge {
    /// Sink name.
    pub sink: String,
    /// `pending` or `dead`.
    pub state: String,
    /// Rows.
    pub count: i64,
    /// Creation time (unix seconds) of the oldest row.
    pub oldest_unix: Option<i64>,
}

/// A reading of the store for gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Live (non-tombstone) facts per kind.
    pub facts: Vec<(String, i64)>,
    /// Open or acknowledged findings per (finding kind, severity).
    pub findings_active: Vec<(String, String, i64)>,
    /// The outbox per sink and state.
    pub outbox: Vec<OutboxGauge>,
}

/// The labels of every store-gauge series exported so far: each stays, at 0 when a reading
/// lacks it, so no series disappears between scrapes.
#[derive(Debug, Default)]
pub(super) struct SeenSeries {
    facts: BTreeSet<String>,
    findings: BTreeSet<(String, String)>,
    outbox: BTreeSet<(String, String)>,
    oldest: BTreeSet<String>,
}

impl Metrics {
    /// Replaces the sampled store gauges with a fresh reading. Each series is set once to its
    /// new value: never cleared first, so a scrape during an update sees no series vanish and
    /// no value pass through 0. A series the reading no longer has (a sink whose dead letters
    /// were requeued) reads 0.
    pub fn set_store_gauges(&self, g: &StoreGauges, now_unix: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let seen = &mut *seen;
        let mut facts: BTreeMap<String, i64> = seen.facts.iter().map(|k| (k.clone(), 0)).collect();
        facts.extend(g.facts.iter().cloned());
        for (kind, n) in &facts {
            self.facts.get_or_create(&l1("kind", kind)).set(*n);
        }
        seen.facts = facts.into_keys().collect();

        let mut findings: BTreeMap<(String, String), i64> =
            seen.findings.iter().map(|k| (k.clone(), 0)).collect();
        findings.extend(
            g.findings_active
                .iter()
                .map(|(k, s, n)| ((k.clone(), s.clone()), *n)),
        );
        for ((kind, severity), n) in &findings {
            self.findings_active
                .get_or_create(&l2("kind", kind, "severity", severity))
                .set(*n);
        }
        seen.findings = findings.into_keys().collect();

        let mut depth: BTreeMap<(String, String), i64> =
            seen.outbox.iter().map(|k| (k.clone(), 0)).collect();
        let mut oldest: BTreeMap<String, f64> =
            seen.oldest.iter().map(|k| (k.clone(), 0.0)).collect();
        for o in &g.outbox {
            depth.insert((o.sink.clone(), o.state.clone()), o.count);
            if o.state == "pending" {
                let age = o.oldest_unix.map_or(0, |t| (now_unix - t).max(0));
                oldest.insert(o.sink.clone(), age as f64);
            }
        }
        for ((sink, state), n) in &depth {
            self.outbox_depth
                .get_or_create(&l2("sink", sink, "state", state))
                .set(*n);
        }
        for (sink, age) in &oldest {
            self.outbox_oldest
                .get_or_create(&l1("sink", sink))
                .set(*age);
        }
        seen.outbox = depth.into_keys().collect();
        seen.oldest = oldest.into_keys().collect();
    }

    /// Creates the zero series of the store gauges that need no reading: every fact kind,
    /// every finding kind and severity, and the outbox of `sink` when given.
    pub(super) fn declare_store_series(&self, sink: Option<&str>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for k in crate::domain::FactKind::ALL {
            if seen.facts.insert(k.as_str().to_string()) {
                let _ = self.facts.get_or_create(&l1("kind", k.as_str()));
            }
        }
        for kind in FINDING_KINDS {
            for severity in SEVERITIES {
                if seen
                    .findings
                    .insert((kind.to_string(), severity.to_string()))
                {
                    let _ = self
                        .findings_active
                        .get_or_create(&l2("kind", kind, "severity", severity));
                }
            }
        }
        if let Some(sink) = sink {
            for state in ["pending", "dead"] {
                if seen.outbox.insert((sink.to_string(), state.to_string())) {
                    let _ = self
                        .outbox_depth
                        .get_or_create(&l2("sink", sink, "state", state));
                }
            }
            if seen.oldest.insert(sink.to_string()) {
                let _ = self.outbox_oldest.get_or_create(&l1("sink", sink));
            }
        }
    }
}
