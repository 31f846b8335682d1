//! The outbox: one row per (finding transition, sink), deleted only once the sink accepted it.

use super::{Result, StoreError, Tx};
use crate::domain::EventTime;
use rusqlite::params;

/// Where an outbox row stands. Delivered rows are deleted, so there is no "delivered" state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Waiting for its first or next attempt.
    Pending,
    /// Dead-lettered: a permanent failure, or out of attempts. Kept for people to look at.
    Dead,
}

impl OutboxState {
    /// The value in the `state` column (its CHECK constraint allows exactly these).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Dead => "dead",
        }
    }

    /// Reads the `state` column.
    pub fn parse(s: &str) -> Option<OutboxState> {
        match s {
            "pending" => Some(OutboxState::Pending),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

/// An alert waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Insertion order.
    pub seq: i64,
    /// `finding_id:transition`: identical across retries, so sinks can drop duplicates.
    pub idempotency_key: String,
    /// Which sink this row is for.
    pub sink: String,
    /// The finding.
    pub finding_id: String,
    /// `opened`, `resolved`, …
    pub transition: String,
    /// Severity at the transition.
    pub severity: String,
    /// The alert as JSON (see `notify::Alert`).
    pub payload: String,
    /// Event time of the transition.
    pub created_at: EventTime,
    /// Pending or dead-lettered.
    pub state: OutboxState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Last delivery error.
    pub last_error: Option<String>,
}

impl Tx<'_> {
    /// Queues an alert for a sink; a second enqueue of the same key and sink is a no-op.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &self,
        idempotency_key: &str,
        sink: &str,
        finding_id: &str,
        transition: &str,
        severity: &str,
        payload: &str,
        at: EventTime,
    ) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox (idempotency_key, sink, finding_id, transition, severity, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![idempotency_key, sink, finding_id, transition, severity, payload, at.0])?;
        Ok(n > 0)
    }

    /// Rows in `state` due at `due_at` (wall-clock seconds; `None`: all), oldest first.
    pub fn outbox(
        &self,
        state: OutboxState,
        due_at: Option<i64>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.0.prepare(
            "SELECT seq, idempotency_key, sink, finding_id, transition, severity, payload, created_at, state, attempts, last_error
             FROM outbox WHERE state = ?1 AND next_attempt_at <= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![state.as_str(), due_at.unwrap_or(i64::MAX), limit as i64],
            |r| {
                let seq: i64 = r.get(0)?;
                let state: String = r.get(8)?;
                Ok((
                    seq,
                    state,
                    OutboxRow {
                        seq: r.get(0)?,
                        idempotency_key: r.get(1)?,
                        sink: r.get(2)?,
                        finding_id: r.get(3)?,
                        transition: r.get(4)?,
                        severity: r.get(5)?,
                        payload: r.get(6)?,
                        created_at: EventTime(r.get(7)?),
                        state: OutboxState::Pending,
                        attempts: r.get::<_, i64>(9)? as u32,
                        last_error: r.get(10)?,
                    },
                ))
            },
        )?;
        rows.map(|row| {
            let (seq, text, mut row) = row?;
            row.state = OutboxState::parse(&text).ok_or_else(|| StoreError::Corrupt {
                table: "outbox",
                key: seq.to_string(),
                problem: format!("state {text:?} is neither pending nor dead"),
            })?;
            Ok(row)
        })
        .collect()
    }

    /// The sink accepted the alert: it leaves the outbox.
    pub fn delivered(&self, seq: i64) -> Result<()> {
        self.0.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// A failed attempt: `Pending` retries at `next_at` (unix seconds), `Dead` dead-letters it.
    pub fn delivery_failed(
        &self,
        seq: i64,
        error: &str,
        next_at: i64,
        state: OutboxState,
    ) -> Result<()> {
        self.0.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, state = ?4 WHERE seq = ?1",
            params![seq, error, next_at, state.as_str()],
        )?;
        Ok(())
    }

    /// Pending and dead row counts.
    pub fn outbox_counts(&self) -> Result<(u64, u64)> {
        Ok(self.0.query_row(
            "SELECT COALESCE(SUM(state = ?1), 0), COALESCE(SUM(state = ?2), 0) FROM outbox",
            [OutboxState::Pending.as_str(), OutboxState::Dead.as_str()],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}
