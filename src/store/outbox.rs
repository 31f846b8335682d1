//! The outbox: one row per (finding transition, sink), deleted only once the sink accepted it.

use super::{Result, StoreError, Tx};
use crate::domain::EventTime;
use rusqlite::{params, OptionalExtension};

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

/// An alert as the outbox stores it, for every sink it is queued for.
#[derive(Debug, Clone, Copy)]
pub struct NewAlert<'a> {
    /// `installation:finding:transition`.
    pub idempotency_key: &'a str,
    /// The finding it announces.
    pub finding_id: &'a str,
    /// `opened`, `resolved`, ….
    pub transition: &'a str,
    /// Severity after the transition.
    pub severity: &'a str,
    /// The alert as JSON.
    pub payload: &'a str,
    /// When the transition happened (event time).
    pub at: EventTime,
    /// Held until this wall-clock time (unix seconds) for its actor: a Kubernetes change
    /// whose audit record has not come yet (`[notify] attribution_wait`).
    pub hold_until: Option<i64>,
}

impl Tx<'_> {
    /// Queues an alert for a sink; a second enqueue of the same key and sink is a no-op.
    pub fn enqueue(&self, alert: &NewAlert<'_>, sink: &str) -> Result<bool> {
        let NewAlert {
            idempotency_key,
            finding_id,
            transition,
            severity,
            payload,
            at,
            hold_until,
        } = *alert;
        let n = self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox (idempotency_key, sink, finding_id, transition, severity, payload, created_at, held, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                idempotency_key,
                sink,
                finding_id,
                transition,
                severity,
                payload,
                at.0,
                hold_until.is_some(),
                hold_until.unwrap_or(0)
            ])?;
        Ok(n > 0)
    }

    /// Rewrites the payload of every alert of `finding_id` still held for its actor (`edit`
    /// gets the stored JSON) and makes them due now; returns the sinks they were for. Alerts
    /// already leased or sent are not touched: those get an `attributed` follow-up.
    pub fn release_held(
        &self,
        finding_id: &str,
        mut edit: impl FnMut(&str) -> String,
    ) -> Result<Vec<String>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, sink, payload FROM outbox WHERE finding_id = ?1 AND held = 1 AND state = 'pending'",
        )?;
        let rows = stmt
            .query_map(params![finding_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut update = self.0.prepare_cached(
            "UPDATE outbox SET payload = ?2, held = 0, next_attempt_at = 0 WHERE seq = ?1 AND held = 1",
        )?;
        let mut sinks = Vec::new();
        for (seq, sink, payload) in rows {
            update.execute(params![seq, edit(&payload)])?;
            sinks.push(sink);
        }
        sinks.sort();
        sinks.dedup();
        Ok(sinks)
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
            row_of,
        )?;
        rows.map(|row| {
            let (text, mut row) = row?;
            let seq = row.seq;
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
        self.exec("DELETE FROM outbox WHERE seq = ?1", [seq])?;
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
        self.exec(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, state = ?4 WHERE seq = ?1",
            params![seq, error, next_at, state.as_str()],
        )?;
        Ok(())
    }

    /// Pending and dead row counts.
    pub fn outbox_counts(&self) -> Result<(u64, u64)> {
        Ok(self.query_one(
            "SELECT COALESCE(SUM(state = ?1), 0), COALESCE(SUM(state = ?2), 0) FROM outbox",
            [OutboxState::Pending.as_str(), OutboxState::Dead.as_str()],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}

/// The `meta` key of the installation id.
const INSTALLATION_KEY: &str = "installation_id";

/// Columns of [`OutboxRow`], in the order [`row_of`] reads them.
const ROW_COLUMNS: &str = "seq, idempotency_key, sink, finding_id, transition, severity, payload, created_at, state, attempts, last_error";

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, OutboxRow)> {
    Ok((
        r.get(8)?,
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
}

fn with_state(seq_state: (String, OutboxRow)) -> Result<OutboxRow> {
    let (text, mut row) = seq_state;
    row.state = OutboxState::parse(&text).ok_or_else(|| StoreError::Corrupt {
        table: "outbox",
        key: row.seq.to_string(),
        problem: format!("state {text:?} is neither pending nor dead"),
    })?;
    Ok(row)
}

impl Tx<'_> {
    /// The id of this database's installation, created in this transaction on first use:
    /// random, so alert keys of a rebuilt database never repeat an old one's.
    pub fn installation_id(&self) -> Result<String> {
        if let Some(id) = self.meta(INSTALLATION_KEY)? {
            return Ok(id);
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::NotFound(format!(
                "cannot create the installation id: the system random source failed: {e}"
            ))
        })?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.set_meta(INSTALLATION_KEY, &id)?;
        Ok(id)
    }

    /// Remembers (`Some`) or forgets (`None`) the key of the alert that opened `finding_id`'s
    /// current episode, so follow-up mails thread under it.
    pub fn set_thread(&self, finding_id: &str, key: Option<&str>) -> Result<()> {
        let meta_key = format!("thread:{finding_id}");
        match key {
            Some(k) => self.set_meta(&meta_key, k),
            None => {
                self.exec("DELETE FROM meta WHERE key = ?1", [&meta_key])?;
                Ok(())
            }
        }
    }

    /// The key of the alert that opened `finding_id`'s current episode.
    pub fn thread(&self, finding_id: &str) -> Result<Option<String>> {
        self.meta(&format!("thread:{finding_id}"))
    }

    /// Leases up to `limit` due rows of `sink` until `lease_until` (unix seconds) and returns
    /// them oldest first. A row is due only when no older row of the same finding and sink is
    /// still pending, so one finding's transitions go out in order; a leased row is not due
    /// for anyone else until the lease ends (then it is sent again, with the same key). The
    /// walk is the sink's pending rows in order (`outbox_pending`), each candidate checked
    /// against its finding's older rows (`outbox_pending_by_finding`): it stops after
    /// `limit` due rows, whatever the backlog behind them.
    pub fn lease(
        &self,
        sink: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "UPDATE outbox SET next_attempt_at = ?3, held = 0
             WHERE seq IN (
                SELECT o.seq FROM outbox o INDEXED BY outbox_pending
                WHERE o.sink = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                  AND NOT EXISTS (
                    SELECT 1 FROM outbox p INDEXED BY outbox_pending_by_finding
                    WHERE p.sink = ?1 AND p.finding_id = o.finding_id AND p.state = 'pending'
                      AND p.seq < o.seq)
                ORDER BY o.seq LIMIT ?4)
             RETURNING {ROW_COLUMNS}"
        ))?;
        let rows = stmt.query_map(params![sink, now, lease_until, limit as i64], row_of)?;
        let mut rows = rows.map(|r| with_state(r?)).collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }

    /// A failed attempt on a leased row; no-op when the lease was lost (another drainer owns
    /// the row now). `Pending` retries at `next_at`, `Dead` dead-letters it.
    pub fn lease_failed(
        &self,
        seq: i64,
        lease_until: i64,
        error: &str,
        next_at: i64,
        state: OutboxState,
    ) -> Result<()> {
        self.exec(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4, state = ?5
             WHERE seq = ?1 AND next_attempt_at = ?2 AND state = 'pending'",
            params![seq, lease_until, error, next_at, state.as_str()],
        )?;
        Ok(())
    }

    /// Gives leased rows back unattempted, due again at `next_at` (the sink is backing off).
    pub fn lease_release(&self, seq: i64, lease_until: i64, next_at: i64) -> Result<()> {
        self.exec(
            "UPDATE outbox SET next_attempt_at = ?3 WHERE seq = ?1 AND next_attempt_at = ?2 AND state = 'pending'",
            params![seq, lease_until, next_at],
        )?;
        Ok(())
    }

    /// Dead-letters pending rows whose sink is not in `sinks` (it was removed from the
    /// config): kept for people to see and retry, not retried for ever. Returns the count.
    pub fn dead_letter_unknown_sinks(&self, sinks: &[String]) -> Result<u64> {
        // One index probe per distinct sink (it runs on every poll tick): a DISTINCT would
        // read every pending row.
        let mut present: Vec<String> = Vec::new();
        loop {
            let next: Option<String> = self
                .query_one(
                    "SELECT sink FROM outbox INDEXED BY outbox_pending
                     WHERE state = 'pending' AND sink > ?1 ORDER BY sink LIMIT 1",
                    [present.last().map_or("", String::as_str)],
                    |r| r.get(0),
                )
                .optional()?;
            match next {
                Some(s) => present.push(s),
                None => break,
            }
        }
        let mut n = 0;
        for sink in present.iter().filter(|s| !sinks.contains(s)) {
            n += self.exec(
                "UPDATE outbox SET state = 'dead', last_error = ?2 WHERE sink = ?1 AND state = 'pending'",
                params![sink, format!("sink {sink:?} is not in the configuration (removed or renamed?): add it back and run `accessdrift outbox retry --all-dead`")],
            )? as u64;
        }
        Ok(n)
    }

    /// Every row (both states), oldest first; `state` narrows it.
    pub fn outbox_all(&self, state: Option<OutboxState>) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([state.map(OutboxState::as_str)], row_of)?;
        rows.map(|r| with_state(r?)).collect()
    }

    /// Puts dead-lettered rows back in the queue, due now, with their attempts reset.
    /// `seqs = None`: every dead row. Returns the rows requeued.
    pub fn requeue(&self, seqs: Option<&[i64]>) -> Result<u64> {
        let n = match seqs {
            None => self.exec(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE state = 'dead'",
                [],
            )?,
            Some(seqs) => {
                let mut n = 0;
                for seq in seqs {
                    n += self.exec(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE seq = ?1 AND state = 'dead'",
                        [seq],
                    )?;
                }
                n
            }
        };
        Ok(n as u64)
    }

    /// One row by its sequence number.
    pub fn outbox_row(&self, seq: i64) -> Result<Option<OutboxRow>> {
        use rusqlite::OptionalExtension;
        let row = self
            .query_one(
                &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE seq = ?1"),
                [seq],
                row_of,
            )
            .optional()?;
        row.map(with_state).transpose()
    }
}
