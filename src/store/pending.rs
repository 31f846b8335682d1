//! Phases of Azure operations that wait for their partner, and applied/failed markers.

use super::{json_col, to_json, Result, StoreError, Tx};
use crate::domain::{ChangeOp, EventTime, Phase, Provenance};
use rusqlite::params;

/// What a `pending_ops` row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// A phase waiting for its partner.
    Phase(Phase),
    /// The operation was applied: later records of it are duplicates.
    Applied,
    /// The operation failed: later records of it change nothing.
    Failed,
}

impl PendingKind {
    /// The store's column value.
    pub fn as_str(self) -> &'static str {
        match self {
            PendingKind::Phase(p) => p.as_str(),
            PendingKind::Applied => "applied",
            PendingKind::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<PendingKind> {
        Some(match s {
            "start" => PendingKind::Phase(Phase::Start),
            "accept" => PendingKind::Phase(Phase::Accept),
            "success" => PendingKind::Phase(Phase::Success),
            "failure" => PendingKind::Phase(Phase::Failure),
            "applied" => PendingKind::Applied,
            "failed" => PendingKind::Failed,
            _ => return None,
        })
    }

    /// A terminal marker rather than a waiting phase.
    pub fn is_marker(self) -> bool {
        matches!(self, PendingKind::Applied | PendingKind::Failed)
    }
}

/// A stored phase or marker.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    /// Phase or marker.
    pub kind: PendingKind,
    /// The change the record implied, if it carried a body.
    pub candidate: Option<ChangeOp>,
    /// The record's provenance (its event time orders phases of one resource).
    pub prov: Provenance,
}

impl Tx<'_> {
    /// All rows of one operation, oldest event first.
    pub fn pending(&self, operation_id: &str) -> Result<Vec<PendingRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT phase, candidate, provenance FROM pending_ops WHERE operation_id = ?1 ORDER BY event_time, phase",
        )?;
        let rows = stmt.query_map([operation_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (phase, cand, prov) = r?;
            let kind = PendingKind::parse(&phase).ok_or_else(|| StoreError::Corrupt {
                table: "pending_ops",
                key: operation_id.to_string(),
                problem: format!("unknown phase {phase:?}"),
            })?;
            out.push(PendingRow {
                kind,
                candidate: cand
                    .map(|c| json_col("pending_ops", operation_id, &c))
                    .transpose()?,
                prov: json_col("pending_ops", operation_id, &prov)?,
            });
        }
        Ok(out)
    }

    /// Records a phase or marker at its event time; an identical record (a redelivery) is
    /// ignored. `now` is the ingest time that expiry counts from.
    pub fn put_pending(
        &self,
        operation_id: &str,
        kind: PendingKind,
        candidate: Option<&ChangeOp>,
        prov: &Provenance,
        now: EventTime,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT OR IGNORE INTO pending_ops (operation_id, phase, event_time, candidate, provenance, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                operation_id,
                kind.as_str(),
                prov.event_time.0,
                candidate.map(to_json),
                to_json(prov),
                now.0
            ])?;
        Ok(())
    }

    /// Forgets every row of an operation.
    pub fn clear_pending(&self, operation_id: &str) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM pending_ops WHERE operation_id = ?1")?
            .execute([operation_id])?;
        Ok(())
    }

    /// Forgets the phases of an operation up to and including `until` (event time): for
    /// records without a correlation id, those are the phases of the operation that just
    /// completed; later ones belong to the next operation on the same resource.
    pub fn clear_pending_until(&self, operation_id: &str, until: EventTime) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM pending_ops WHERE operation_id = ?1 AND event_time <= ?2")?
            .execute(params![operation_id, until.0])?;
        Ok(())
    }

    /// Replaces every row of an operation by one terminal marker.
    pub fn settle_pending(
        &self,
        operation_id: &str,
        marker: PendingKind,
        prov: &Provenance,
        now: EventTime,
    ) -> Result<()> {
        self.clear_pending(operation_id)?;
        self.put_pending(operation_id, marker, None, prov, now)
    }

    /// Drops waiting phases ingested before `phases_cutoff` and markers ingested before
    /// `markers_cutoff` (both wall-clock ingest times). Returns how many rows went.
    pub fn expire_pending(
        &self,
        phases_cutoff: EventTime,
        markers_cutoff: EventTime,
    ) -> Result<usize> {
        // Two range deletes on (phase, ingested_at): one predicate over both TTLs would scan
        // every row on every batch.
        let phases = self.exec(
            "DELETE FROM pending_ops WHERE phase IN ('start', 'accept', 'success', 'failure') AND ingested_at < ?1",
            [phases_cutoff.0],
        )?;
        let markers = self.exec(
            "DELETE FROM pending_ops WHERE phase IN ('applied', 'failed') AND ingested_at < ?1",
            [markers_cutoff.0],
        )?;
        Ok(phases + markers)
    }

    /// Number of operations still waiting for a partner phase.
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self.query_one(
            "SELECT COUNT(DISTINCT operation_id) FROM pending_ops WHERE phase NOT IN ('applied', 'failed')",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn every_phase_and_marker_expires_by_its_own_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let tx = store.tx().unwrap();
        // Exhaustive on purpose: a new phase fails to compile here until expire_pending's
        // list names it too, or it would never expire.
        let phases = [Phase::Start, Phase::Accept, Phase::Success, Phase::Failure].map(|p| {
            match p {
                Phase::Start | Phase::Accept | Phase::Success | Phase::Failure => {}
            }
            PendingKind::Phase(p)
        });
        let kinds: Vec<PendingKind> = phases
            .into_iter()
            .chain([PendingKind::Applied, PendingKind::Failed])
            .collect();
        let prov = Provenance {
            event_time: EventTime(5),
            ..Provenance::default()
        };
        for (i, k) in kinds.iter().enumerate() {
            tx.put_pending(&format!("op{i}"), *k, None, &prov, EventTime(100))
                .unwrap();
        }
        let left = |tx: &Tx<'_>| {
            (0..kinds.len())
                .filter(|i| !tx.pending(&format!("op{i}")).unwrap().is_empty())
                .count()
        };
        // Phases' TTL passed, markers' not: only the four phases go.
        assert_eq!(tx.expire_pending(EventTime(101), EventTime(50)).unwrap(), 4);
        assert_eq!(left(&tx), 2);
        assert!(kinds[4..].iter().enumerate().all(|(i, k)| tx
            .pending(&format!("op{}", i + 4))
            .unwrap()[0]
            .kind
            == *k));
        assert_eq!(
            tx.expire_pending(EventTime(101), EventTime(101)).unwrap(),
            2
        );
        assert_eq!(left(&tx), 0);
    }
}
