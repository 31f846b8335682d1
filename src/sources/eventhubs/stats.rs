//! Per-partition progress, lag and counters of the Event Hubs source.
//!
//! Kept as plain numbers behind one lock so `/readyz` (and the metrics exporter, later) read
//! them without touching the source: [`EventHubsStats::snapshot`].

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// One partition's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionStats {
    /// Sequence number of the last event committed (with its effects).
    pub last_committed_sequence: Option<i64>,
    /// Enqueued time of that event, Unix seconds.
    pub last_committed_enqueued_at: Option<i64>,
    /// The hub's last enqueued sequence number, from the last properties poll.
    pub last_enqueued_sequence: Option<i64>,
    /// The hub's first retained sequence number, from the last properties poll.
    pub beginning_sequence: Option<i64>,
    /// Events waiting: last enqueued minus last committed.
    pub lag: Option<i64>,
    /// Seconds since the newest committed event was enqueued.
    pub newest_committed_age_seconds: Option<u64>,
    /// Events committed (redeliveries not counted).
    pub events: u64,
    /// Activity Log records read from them.
    pub records: u64,
    /// Malformed bodies or records skipped.
    pub malformed: u64,
    /// Redelivered events (at or before the committed sequence number) dropped.
    pub duplicates: u64,
    /// Records skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Events waiting and nothing committed for `stall_after`.
    pub stalled: bool,
    #[serde(skip)]
    waiting_since: Option<Instant>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventHubsStats {
    inner: Arc<Mutex<BTreeMap<String, PartitionStats>>>,
}

impl EventHubsStats {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PartitionStats>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every partition's figures.
    pub fn snapshot(&self) -> BTreeMap<String, PartitionStats> {
        self.lock().clone()
    }

    /// Applies `f` to one partition's figures.
    pub fn update<T>(&self, partition: &str, f: impl FnOnce(&mut PartitionStats) -> T) -> T {
        let mut all = self.lock();
        let p = all.entry(partition.to_string()).or_default();
        let out = f(p);
        // The lag and age gauges follow every change (`accessdrift_eventhubs_*`).
        crate::metrics::global().eventhubs_partition(
            partition,
            p.lag.unwrap_or(0),
            Duration::from_secs(p.newest_committed_age_seconds.unwrap_or(0)),
        );
        out
    }

    /// Records a commit up to `sequence`: progress, so any stall is over.
    pub fn committed(&self, partition: &str, sequence: i64, enqueued: Option<SystemTime>) {
        self.update(partition, |p| {
            p.last_committed_sequence = Some(sequence);
            if let Some(t) = enqueued.and_then(unix_seconds) {
                p.last_committed_enqueued_at = Some(t);
            }
            p.waiting_since = p.waiting_since.map(|_| Instant::now());
            refresh(p, Instant::now(), None);
        });
    }

    /// Records a properties poll and re-judges the stall against `stall_after`.
    pub fn polled(
        &self,
        partition: &str,
        beginning: i64,
        last_enqueued: i64,
        empty: bool,
        stall_after: Duration,
    ) {
        self.update(partition, |p| {
            p.beginning_sequence = Some(beginning);
            p.last_enqueued_sequence = (!empty).then_some(last_enqueued);
            refresh(p, Instant::now(), Some(stall_after));
        });
    }

    /// Partitions whose events have waited, with nothing committed, for at least `limit`.
    pub fn stalled_for(&self, limit: Duration) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, p)| {
                p.waiting_since
                    .is_some_and(|s| now.duration_since(s) >= limit)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Partitions currently stalled.
    pub fn stalled(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, p)| p.stalled)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn unix_seconds(t: SystemTime) -> Option<i64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// Recomputes lag, age and the stall flag.
fn refresh(p: &mut PartitionStats, now: Instant, stall_after: Option<Duration>) {
    p.lag = p.last_enqueued_sequence.map(|last| {
        let done = p
            .last_committed_sequence
            .or(p.beginning_sequence.map(|b| b - 1))
            .unwrap_or(-1);
        (last - done).max(0)
    });
    p.newest_committed_age_seconds = p.last_committed_enqueued_at.and_then(|t| {
        let now = unix_seconds(SystemTime::now())?;
        Some((now - t).max(0) as u64)
    });
    match p.lag {
        Some(l) if l > 0 => {
            let since = *p.waiting_since.get_or_insert(now);
            if let Some(after) = stall_after {
                p.stalled = now.duration_since(since) >= after;
            }
        }
        _ => {
            p.waiting_since = None;
            p.stalled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_and_stall_follow_polls_and_commits() {
        let s = EventHubsStats::default();
        s.polled("0", 0, 9, false, Duration::ZERO);
        let p = &s.snapshot()["0"];
        assert_eq!(
            p.lag,
            Some(10),
            "nothing committed: the whole partition waits"
        );
        assert!(p.stalled, "stall_after 0: waiting is a stall at once");
        s.committed("0", 9, None);
        let p = &s.snapshot()["0"];
        assert_eq!(p.lag, Some(0));
        assert!(!p.stalled);
        assert!(s.stalled().is_empty());
        s.polled("1", 0, 0, true, Duration::ZERO);
        assert_eq!(s.snapshot()["1"].lag, None, "an empty partition has no lag");
        // Waiting, but for less than stall_after: not a stall yet.
        s.polled("0", 0, 12, false, Duration::from_secs(60));
        assert_eq!(s.snapshot()["0"].lag, Some(3));
        assert!(!s.snapshot()["0"].stalled);
    }
}
