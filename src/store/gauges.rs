//! Counts the metrics sampler reads: facts by kind, active findings, the outbox.

use super::{Result, Tx};
use crate::metrics::{OutboxGauge, StoreGauges};

impl Tx<'_> {
    /// Counts for the metrics gauges; grouped queries over indexed columns, cheap to poll.
    pub fn gauges(&self) -> Result<StoreGauges> {
        let mut g = StoreGauges::default();
        let mut stmt = self
            .0
            .prepare("SELECT kind, COUNT(*) FROM facts WHERE value IS NOT NULL GROUP BY kind")?;
        for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            g.facts.push(r?);
        }
        let mut stmt = self.0.prepare(
            "SELECT kind, severity, COUNT(*) FROM findings
             WHERE status IN ('open', 'acknowledged') GROUP BY kind, severity",
        )?;
        for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            g.findings_active.push(r?);
        }
        let mut stmt = self.0.prepare(
            "SELECT sink, state, COUNT(*), MIN(created_at) FROM outbox GROUP BY sink, state",
        )?;
        for r in stmt.query_map([], |r| {
            Ok(OutboxGauge {
                sink: r.get(0)?,
                state: r.get(1)?,
                count: r.get(2)?,
                oldest_unix: r
                    .get::<_, Option<i64>>(3)?
                    .map(|t| crate::domain::EventTime(t).unix_seconds()),
            })
        })? {
            g.outbox.push(r?);
        }
        Ok(g)
    }
}
