//! One sink's drain: lease due rows, group them into messages, send, settle each row.

use super::{Alert, Digest, DigestReason, DrainReport, Notifier, NotifyError, Sink, SinkError};
use crate::config::NotifyConfig;
use crate::store::{OutboxRow, OutboxState, Store, StoreError};
use std::time::Duration;
use tracing::Instrument;

/// Rows leased per round: a lease lasts long enough to send them all one by one.
const BATCH: usize = 16;
/// Rows a throttled digest may gather at most.
const DIGEST_MAX: usize = 500;
/// Lease rounds per drain: a bound, so a row that cannot be settled (its lease taken over
/// by another drainer between lease and settle) cannot keep one drain spinning.
const MAX_ROUNDS: usize = 256;

/// A sink with its own connection, backoff and throttle window.
pub(super) struct Worker {
    sink: Box<dyn Sink>,
    store: Store,
    /// Unix seconds before which this sink is not tried (it failed temporarily).
    paused_until: i64,
    /// Start of the current one-minute throttle window and messages sent in it.
    window: (i64, u32),
    rng: u64,
}

/// One message to send: a single alert or a digest, with the rows it settles.
struct Message {
    rows: Vec<OutboxRow>,
    body: Body,
}

enum Body {
    One(Box<Alert>),
    Many(Digest),
}

impl Worker {
    pub(super) fn new(sink: Box<dyn Sink>, store: Store) -> Worker {
        let mut seed = [0u8; 8];
        // Jitter only spreads retries; a failed random source just means none.
        let _ = getrandom::fill(&mut seed);
        Worker {
            sink,
            store,
            paused_until: 0,
            window: (0, 0),
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    pub(super) fn name(&self) -> &str {
        self.sink.name()
    }

    /// How long to sleep before the next look: the end of a pause, else the poll interval.
    pub(super) fn next_due(&self, now: i64, poll: Duration) -> Duration {
        if self.paused_until > now {
            poll.min(Duration::from_secs((self.paused_until - now) as u64))
        } else {
            poll
        }
    }

    fn jitter(&mut self) -> f64 {
        // xorshift64: enough to keep many daemons from retrying in lockstep.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1000) as f64 / 1000.0
    }

    /// Messages still allowed in the current minute (`None`: no limit).
    fn quota(&mut self, now: i64, policy: &NotifyConfig) -> Option<u32> {
        if policy.max_per_minute == 0 {
            return None;
        }
        if now - self.window.0 >= 60 {
            self.window = (now, 0);
        }
        Some(policy.max_per_minute.saturating_sub(self.window.1))
    }

    /// Sends one message (an alert or a digest) under its `notify` span, bounded by the sink's
    /// timeout, and emits the delivered / failed event.
    async fn send(&mut self, m: &Message) -> Result<super::Receipt, SinkError> {
        let limit = self.sink.timeout();
        // One `notify` span per delivery, a child of the batch trace that opened the
        // finding (its first alert's, for a digest). `.instrument`: no guard across await.
        let first = match &m.body {
            Body::One(a) => a,
            Body::Many(d) => &d.alerts[0],
        };
        let peer = self.sink.peer();
        let span = super::span::delivery(first, self.sink.name(), &peer);
        let started = std::time::Instant::now();
        let result = super::bounded(limit, async {
            match &m.body {
                Body::One(a) => self.sink.deliver(a).await,
                Body::Many(d) => self.sink.deliver_digest(d).await,
            }
        })
        .instrument(span.clone())
        .await;
        let took = started.elapsed();
        match &result {
            Ok(receipt) => crate::events::AlertsDelivered {
                sink: self.sink.name(),
                alerts: m.rows.len(),
                took,
                receipt: &receipt.0,
            }
            .emit(),
            Err(SinkError::Gone(_)) => {}
            Err(e) => {
                // An HTTP sink recorded its own (status code, timeout, …).
                let own = matches!(peer, super::Peer::Http { .. });
                crate::telemetry::record_error(&span, (!own).then(|| e.kind()));
                crate::events::AlertsFailed {
                    sink: self.sink.name(),
                    alerts: m.rows.len(),
                    took,
                }
                .emit();
            }
        }
        result
    }

    /// Sends everything of this sink that is due at `now`.
    pub(super) async fn drain(
        &mut self,
        now: i64,
        policy: &NotifyConfig,
    ) -> Result<DrainReport, NotifyError> {
        let mut report = DrainReport::default();
        if now < self.paused_until {
            return Ok(report);
        }
        let lease_secs = (self.sink.timeout().as_secs() as i64 + 1) * BATCH as i64 + 30;
        for _ in 0..MAX_ROUNDS {
            let quota = self.quota(now, policy);
            if quota == Some(0) {
                break;
            }
            let lease_until = now + lease_secs;
            // Near the limit, take enough rows for the digest of "the rest".
            let limit = if quota.is_some_and(|q| q <= 1) {
                DIGEST_MAX
            } else {
                BATCH
            };
            let rows = {
                let tx = self.store.tx()?;
                let rows = tx.lease(self.sink.name(), now, lease_until, limit)?;
                tx.commit()?;
                rows
            };
            if rows.is_empty() {
                break;
            }
            let messages = self.plan(rows, quota, &mut report, lease_until)?;
            // Accepted rows are deleted together at the end of the round (or before an early
            // return): one commit per round, not per alert. Until then the lease keeps them
            // from anyone else; a crash in between re-sends them with the same key.
            let mut accepted: Vec<i64> = Vec::new();
            let mut queue = messages.into_iter();
            while let Some(m) = queue.next() {
                let result = self.send(&m).await;
                match result {
                    Ok(_) => {
                        accepted.extend(m.rows.iter().map(|r| r.seq));
                        self.window.1 += 1;
                        report.delivered += m.rows.len() as u64;
                        report.messages += 1;
                    }
                    Err(SinkError::Permanent(why)) => {
                        self.fail_rows(
                            &m.rows,
                            lease_until,
                            &format!("permanent failure: {why}"),
                            now,
                            None,
                            &mut report,
                        )?;
                    }
                    Err(SinkError::Gone(why)) => {
                        // Nothing was attempted: every leased row is due again at once.
                        let rest: Vec<OutboxRow> = m
                            .rows
                            .into_iter()
                            .chain(queue.flat_map(|m| m.rows))
                            .collect();
                        self.settle_accepted(&mut accepted)?;
                        self.release(&rest, lease_until, now)?;
                        tracing::info!(sink = self.sink.name(), reason = %why, "sink gone; alerts stay queued");
                        report.gone = Some(why);
                        return Ok(report);
                    }
                    Err(e) => {
                        let wait = match &e {
                            SinkError::RetryAfter { after, .. } => after.as_secs() as i64,
                            _ => 0,
                        };
                        let attempts = m.rows.iter().map(|r| r.attempts + 1).max().unwrap_or(1);
                        let next =
                            now + Notifier::backoff_secs(policy, attempts, self.jitter()).max(wait);
                        self.fail_rows(
                            &m.rows,
                            lease_until,
                            &e.to_string(),
                            next,
                            Some(policy.max_attempts),
                            &mut report,
                        )?;
                        let dead = attempts >= policy.max_attempts;
                        // The sink is down, not the alert: everything behind it waits too, so
                        // the next try is one request, not one per queued alert. A dead-lettered
                        // row does not pause the others.
                        let rest: Vec<OutboxRow> = queue.flat_map(|m| m.rows).collect();
                        let resume = if dead { now } else { next };
                        self.release(&rest, lease_until, resume)?;
                        self.paused_until = resume;
                        if !dead {
                            self.settle_accepted(&mut accepted)?;
                            tracing::warn!(sink = self.sink.name(), retry_in_secs = next - now, error = %e, "sink failed; its alerts wait");
                            return Ok(report);
                        }
                        break;
                    }
                }
            }
            self.settle_accepted(&mut accepted)?;
            if self.paused_until > now {
                break;
            }
        }
        Ok(report)
    }

    /// Decodes leased rows and groups them into messages: bursts sharing a correlation id
    /// become one digest (for sinks read by people), and past the quota the rest is one digest.
    fn plan(
        &mut self,
        rows: Vec<OutboxRow>,
        quota: Option<u32>,
        report: &mut DrainReport,
        lease_until: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let mut decoded = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_str::<Alert>(&row.payload) {
                Ok(a) => decoded.push((row, a)),
                Err(e) => {
                    let why = format!("permanent failure: outbox payload does not decode: {e}");
                    self.fail_rows(&[row], lease_until, &why, 0, None, report)?;
                }
            }
        }
        let mut messages: Vec<Message> = Vec::new();
        let groups = self.sink.groups_bursts();
        for (row, alert) in decoded {
            let burst = alert.correlation_id.clone().filter(|_| groups);
            if let Some(c) = &burst {
                if let Some(m) = messages.iter_mut().find(|m| match &m.body {
                    Body::Many(d) => d.reason == DigestReason::Burst(c.clone()),
                    Body::One(a) => a.correlation_id.as_deref() == Some(c.as_str()),
                }) {
                    m.rows.push(row);
                    let first = match &m.body {
                        Body::One(a) => Some((**a).clone()),
                        Body::Many(_) => None,
                    };
                    if let Some(first) = first {
                        m.body = Body::Many(Digest {
                            key: String::new(),
                            reason: DigestReason::Burst(c.clone()),
                            alerts: vec![first],
                        });
                    }
                    if let Body::Many(d) = &mut m.body {
                        d.alerts.push(alert);
                    }
                    continue;
                }
            }
            messages.push(Message {
                rows: vec![row],
                body: Body::One(Box::new(alert)),
            });
        }
        if let Some(q) = quota {
            let q = q as usize;
            if messages.len() > q {
                let rest = messages.split_off(q.saturating_sub(1));
                let mut d = Digest {
                    key: String::new(),
                    reason: DigestReason::Throttled(0),
                    alerts: Vec::new(),
                };
                let mut rows = Vec::new();
                for m in rest {
                    rows.extend(m.rows);
                    match m.body {
                        Body::One(a) => d.alerts.push(*a),
                        Body::Many(x) => d.alerts.extend(x.alerts),
                    }
                }
                messages.push(Message {
                    rows,
                    body: Body::Many(d),
                });
            }
        }
        for m in &mut messages {
            if let Body::Many(d) = &mut m.body {
                d.key = format!(
                    "{}+{}",
                    d.alerts.first().map_or("", |a| a.idempotency_key.as_str()),
                    d.alerts.len()
                );
                if let DigestReason::Throttled(n) = &mut d.reason {
                    *n = quota.unwrap_or(0);
                }
            }
        }
        Ok(messages)
    }

    /// Deletes the rows their sink accepted, in one transaction.
    fn settle_accepted(&mut self, seqs: &mut Vec<i64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.store.tx()?;
        for seq in seqs.drain(..) {
            tx.delivered(seq)?;
        }
        tx.commit()
    }

    fn fail_rows(
        &mut self,
        rows: &[OutboxRow],
        lease_until: i64,
        why: &str,
        next: i64,
        max_attempts: Option<u32>,
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        let tx = self.store.tx()?;
        for r in rows {
            let attempts = r.attempts + 1;
            // `None`: a permanent failure, dead at once.
            let dead = max_attempts.is_none_or(|max| attempts >= max);
            let state = if dead {
                OutboxState::Dead
            } else {
                OutboxState::Pending
            };
            tx.lease_failed(r.seq, lease_until, why, next, state)?;
            if dead {
                report.dead_lettered += 1;
                crate::events::AlertDeadLettered {
                    sink: &r.sink,
                    key: &r.idempotency_key,
                    attempts,
                    error: why,
                }
                .emit();
            } else {
                report.retried += 1;
            }
        }
        tx.commit()
    }

    fn release(&mut self, rows: &[OutboxRow], lease_until: i64, at: i64) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.store.tx()?;
        for r in rows {
            tx.lease_release(r.seq, lease_until, at)?;
        }
        tx.commit()
    }
}
