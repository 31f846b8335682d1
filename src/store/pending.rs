//! Phases of Azure operations that wait for their partner, and applied/failed markers.

use super::{json_col, to_json, Result, Tx};
use crate::domain::{ChangeOp, EventTime, Provenance};
use rusqlite::params;

/// A stored phase or marker.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    /// `start`, `accept`, `success`, `applied` or `failed`.
    pub phase: String,
    /// The change the record implied, if it carried a body.
    pub candidate: Option<ChangeOp>,
    /// The record's provenance.
    pub prov: Provenance,
}

impl Tx<'_> {
    /// All rows of one operation.
    pub fn pending(&self, operation_id: &str) -> Result<Vec<PendingRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT phase, candidate, provenance FROM pending_ops WHERE operation_id = ?1",
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
            out.push(PendingRow {
                phase,
                candidate: cand
                    .map(|c| json_col("pending_ops", operation_id, &c))
                    .transpose()?,
                prov: json_col("pending_ops", operation_id, &prov)?,
            });
        }
        Ok(out)
    }

    /// Records a phase; the first record of a phase wins (duplicates are ignored).
    pub fn put_pending(
        &self,
        operation_id: &str,
        phase: &str,
        candidate: Option<&ChangeOp>,
        prov: &Provenance,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT OR IGNORE INTO pending_ops (operation_id, phase, candidate, provenance, event_time) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![operation_id, phase, candidate.map(to_json), to_json(prov), prov.event_time.0])?;
        Ok(())
    }

    /// Forgets an operation.
    pub fn clear_pending(&self, operation_id: &str) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM pending_ops WHERE operation_id = ?1")?
            .execute([operation_id])?;
        Ok(())
    }

    /// Replaces every row of an operation by one terminal marker (`applied` or `failed`).
    pub fn settle_pending(
        &self,
        operation_id: &str,
        marker: &str,
        prov: &Provenance,
    ) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM pending_ops WHERE operation_id = ?1")?
            .execute([operation_id])?;
        self.put_pending(operation_id, marker, None, prov)
    }

    /// Drops phases and markers older than `cutoff` (event time). Returns how many.
    pub fn expire_pending(&self, cutoff: EventTime) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM pending_ops WHERE event_time < ?1")?
            .execute([cutoff.0])?)
    }

    /// Number of operations still waiting for a partner phase.
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self.0.query_row(
            "SELECT COUNT(DISTINCT operation_id) FROM pending_ops WHERE phase NOT IN ('applied', 'failed')",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
