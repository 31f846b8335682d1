//! Notification: drains the outbox into sinks with retries, backoff and a dead-letter state.
//! Email and webhook sinks plug in here through [`Sink`].

mod alert;
mod stdout;

pub use alert::Alert;
pub use stdout::StdoutSink;

use crate::config::NotifyConfig;
use crate::store::{OutboxState, Store, StoreError};
use std::collections::BTreeMap;

/// A sink could not take an alert.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (network, 5xx, timeouts).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will never succeed for this alert (rejected content): dead-letter it at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The sink is gone for the rest of this process (its stdout was closed): the alert was
    /// not attempted, so it stays queued without an attempt counted, and the drain stops.
    /// Counting it would dead-letter every alert after a few `notify --once | head` runs.
    #[error("sink gone: {0}")]
    Gone(String),
}

impl SinkError {
    /// A stable name for `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::Temporary(_) => "temporary",
            SinkError::Permanent(_) => "permanent",
            SinkError::Gone(_) => "gone",
        }
    }
}

/// Somewhere alerts go.
pub trait Sink {
    /// The sink's name, as used in outbox rows (`stdout`, `email`, `webhook`).
    fn name(&self) -> &str;
    /// Delivers one alert; `Ok` means the receiver accepted it.
    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError>;
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Alerts accepted by their sink (removed from the outbox).
    pub delivered: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Alerts moved to the dead-letter state.
    pub dead_lettered: u64,
    /// Rows for sinks not configured in this process (left in place).
    pub no_sink: BTreeMap<String, u64>,
    /// Why the drain stopped early: a sink reported [`SinkError::Gone`].
    pub gone: Option<String>,
}

/// Drains the outbox.
pub struct Notifier {
    sinks: Vec<Box<dyn Sink>>,
    policy: NotifyConfig,
}

impl Notifier {
    /// A notifier for these sinks with this retry policy.
    pub fn new(sinks: Vec<Box<dyn Sink>>, policy: NotifyConfig) -> Self {
        Notifier { sinks, policy }
    }

    /// Retry delay after `attempts` failed attempts: exponential, capped.
    pub fn backoff_secs(&self, attempts: u32) -> i64 {
        let base = self.policy.initial_backoff.as_secs_f64().max(0.001);
        let d = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        d.min(self.policy.max_backoff.as_secs_f64()).ceil() as i64
    }

    /// Delivers every due alert once; each row is settled in its own transaction, so a crash
    /// mid-drain re-sends at most the alert in flight (sinks dedupe by idempotency key).
    pub fn drain(&mut self, store: &mut Store, now_unix: i64) -> Result<DrainReport, StoreError> {
        // Trace level: a drain every poll must not be a trace of its own; each delivery is.
        let span = tracing::trace_span!("notify_drain");
        let _g = span.enter();
        let metrics = crate::metrics::global();
        let mut report = DrainReport::default();
        let rows = store
            .read()?
            .outbox(OutboxState::Pending, Some(now_unix), 10_000)?;
        for row in rows {
            let Some(sink) = self.sinks.iter_mut().find(|s| s.name() == row.sink) else {
                *report.no_sink.entry(row.sink.clone()).or_default() += 1;
                continue;
            };
            let started = std::time::Instant::now();
            let result = serde_json::from_str::<Alert>(&row.payload)
                .map_err(|e| SinkError::Permanent(format!("outbox payload does not decode: {e}")))
                .and_then(|alert| {
                    let span = crate::telemetry::delivery_span(&alert, &row.sink);
                    let r = span.in_scope(|| sink.deliver(&alert));
                    if let Err(e) = &r {
                        crate::telemetry::record_error(&span, e.kind());
                    }
                    r
                });
            let took = started.elapsed();
            if let Err(SinkError::Gone(why)) = result {
                tracing::info!(sink = %row.sink, reason = %why, "sink gone; alerts stay queued");
                report.gone = Some(why);
                break;
            }
            let tx = store.tx()?;
            match result {
                Ok(()) => {
                    tx.delivered(row.seq)?;
                    report.delivered += 1;
                    metrics.alert_delivered(&row.sink, took);
                }
                Err(e) => {
                    let attempts = row.attempts + 1;
                    let dead = matches!(e, SinkError::Permanent(_))
                        || attempts >= self.policy.max_attempts;
                    let next = now_unix + self.backoff_secs(attempts);
                    let state = if dead {
                        OutboxState::Dead
                    } else {
                        OutboxState::Pending
                    };
                    tx.delivery_failed(row.seq, &e.to_string(), next, state)?;
                    metrics.alert_failed(&row.sink, took);
                    if dead {
                        metrics.alert_dead_lettered(&row.sink);
                    }
                    if dead {
                        report.dead_lettered += 1;
                        tracing::error!(sink = %row.sink, key = %row.idempotency_key, attempts, error = %e, "alert dead-lettered");
                    } else {
                        report.retried += 1;
                        tracing::warn!(sink = %row.sink, key = %row.idempotency_key, attempts, retry_in_secs = next - now_unix, error = %e, "alert delivery failed; will retry");
                    }
                }
            }
            tx.commit()?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let n = Notifier::new(Vec::new(), NotifyConfig::default());
        let got: Vec<i64> = (1..=10).map(|a| n.backoff_secs(a)).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }
}
