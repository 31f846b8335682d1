//! Notification: drains the outbox into sinks (stdout, SMTP, webhooks) with leases, per-sink
//! backoff, per-finding order, throttling with digests, and a dead-letter state.
//!
//! Each sink drains on its own database connection and its own future, so a slow or dead
//! sink never holds up another. [`Notifier::run`] is the daemon's loop (woken by commits);
//! [`Notifier::drain_once`] is `accessdrift notify --once`.

mod alert;
mod build;
mod render;
pub mod route;
mod smtp;
mod span;
mod stdout;
mod webhook;
mod worker;

pub use alert::{Alert, AlertTransition};
pub use build::build_sink;
pub use smtp::SmtpSink;
pub use stdout::StdoutSink;
pub use webhook::{WebhookSink, RETRY_AFTER_CAP};

use crate::config::{Config, NotifyConfig};
use crate::store::{Store, StoreError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use worker::Worker;

/// A sink could not take an alert.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (network, 4xx SMTP replies, HTTP 5xx, timeouts).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Temporary, and the receiver said when to come back (HTTP `Retry-After`).
    #[error("temporary failure: {reason} (receiver asks to retry after {}s)", after.as_secs())]
    RetryAfter {
        /// What the receiver answered.
        reason: String,
        /// How long it asked us to wait.
        after: Duration,
    },
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
            SinkError::Temporary(_) | SinkError::RetryAfter { .. } => "temporary",
            SinkError::Permanent(_) => "permanent",
            SinkError::Gone(_) => "gone",
        }
    }
}

/// What the receiver answered when it accepted a message (`HTTP 202 Accepted`,
/// `250 2.0.0 Ok: queued as 1234`), for `notify --test` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt(pub String);

/// Several alerts sent as one message: a burst sharing a correlation id, or what is beyond
/// the per-minute limit.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Idempotency key of the digest (derived from its first alert's key and its size).
    pub key: String,
    /// Why the alerts were grouped.
    pub reason: DigestReason,
    /// The alerts, oldest first.
    pub alerts: Vec<Alert>,
}

/// Why a digest was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestReason {
    /// One operation (correlation id) caused all of them.
    Burst(String),
    /// The sink's `[notify] max_per_minute` was reached.
    Throttled(u32),
}

/// The future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, SinkError>> + Send + 'a>>;

/// Somewhere alerts go.
pub trait Sink: Send {
    /// The sink's name, as used in outbox rows and `[[sinks]] name`.
    fn name(&self) -> &str;
    /// Delivers one alert; `Ok` means the receiver accepted it.
    fn deliver<'a>(&'a mut self, alert: &'a Alert) -> SinkFuture<'a>;
    /// Delivers several alerts as one message.
    fn deliver_digest<'a>(&'a mut self, digest: &'a Digest) -> SinkFuture<'a>;
    /// Whether alerts of one operation go as one digest (people) or one by one (machines).
    fn groups_bursts(&self) -> bool {
        true
    }
    /// The longest one attempt may take: leases are sized from it.
    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }
    /// Where deliveries go, for the `notify` span (never a secret).
    fn peer(&self) -> Peer {
        Peer::Local
    }
}

/// The receiver of a sink's deliveries as OpenTelemetry client spans describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Nothing on the network (the stdout sink).
    Local,
    /// An HTTP endpoint.
    Http {
        /// `http.request.method`.
        method: &'static str,
        /// `server.address`: the URL's host.
        address: String,
        /// `server.port`.
        port: u16,
        /// `url.full`, with user info, query values and (for a credential URL) the path redacted.
        url: String,
    },
    /// An SMTP relay.
    Smtp {
        /// `server.address`.
        address: String,
        /// `server.port`.
        port: u16,
    },
}

/// Queues the alert of a notifying transition, in the caller's transaction, for every sink
/// whose routing (`[[sinks]]`) takes it; returns those sinks. Keys carry the installation id;
/// mail threads follow the alert that opened the finding's current episode.
pub fn queue(
    tx: &crate::store::Tx<'_>,
    config: &Config,
    t: &crate::engine::Transition,
    sinks: &[String],
) -> Result<Vec<String>, StoreError> {
    use crate::engine::TransitionKind;
    let Some(mut alert) = Alert::from_transition(t) else {
        return Ok(Vec::new());
    };
    alert.idempotency_key = format!("{}:{}", tx.installation_id()?, alert.idempotency_key);
    alert.clusters = route::clusters_of(config, alert.fact_kind, &alert.fact_key);
    alert.thread = match t.kind {
        TransitionKind::Opened | TransitionKind::Reopened => {
            tx.set_thread(&alert.finding_id, Some(&alert.idempotency_key))?;
            Some(alert.idempotency_key.clone())
        }
        TransitionKind::Resolved => {
            let thread = tx.thread(&alert.finding_id)?;
            tx.set_thread(&alert.finding_id, None)?;
            thread
        }
        _ => tx.thread(&alert.finding_id)?,
    };
    let payload = serde_json::to_string(&alert).unwrap_or_default();
    let at = t.finding.resolved_at.unwrap_or(t.finding.last_seen);
    let hold_until = hold_for_actor(tx, config, t)?;
    let row = crate::store::NewAlert {
        idempotency_key: &alert.idempotency_key,
        finding_id: &alert.finding_id,
        transition: alert.transition.as_str(),
        severity: alert.severity.as_str(),
        payload: &payload,
        at,
        hold_until,
    };
    let mut queued = Vec::new();
    for sink in sinks.iter().filter(|s| route::wants(config, s, &alert)) {
        if tx.enqueue(&row, sink)? {
            queued.push(sink.clone());
        }
    }
    Ok(queued)
}

/// How long a Kubernetes cluster counts as sending audit records after its last one.
pub const AUDIT_ARRIVING: Duration = Duration::from_secs(3600);

/// Until when (unix seconds) an alert waits for its actor: only an alert of a Kubernetes
/// finding that names nobody yet, of a cluster whose audit records arrive (one stored within
/// [`AUDIT_ARRIVING`]), and only with `[notify] attribution_wait` above zero.
fn hold_for_actor(
    tx: &crate::store::Tx<'_>,
    config: &Config,
    t: &crate::engine::Transition,
) -> Result<Option<i64>, StoreError> {
    let wait = config.notify.attribution_wait;
    let f = &t.finding;
    if wait.is_zero()
        || !f.actor.is_empty()
        || f.fact_kind.plane() != crate::domain::Plane::Kubernetes
        || matches!(t.kind, crate::engine::TransitionKind::Attributed)
    {
        return Ok(None);
    }
    let cluster = f.fact_key.split('/').next().unwrap_or_default();
    let Some(seen) = tx.audit_seen(cluster)? else {
        return Ok(None);
    };
    let now = crate::domain::EventTime::now();
    let since = now.0.saturating_sub(seen.0);
    if since > i64::try_from(AUDIT_ARRIVING.as_nanos()).unwrap_or(i64::MAX) {
        return Ok(None);
    }
    Ok(Some(
        now.unix_seconds() + i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2),
    ))
}

/// Failures of the notifier itself (not of a delivery: those stay in the outbox).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A configured sink cannot be set up (secret, CA file, URL).
    #[error("sink {sink:?}: {problem}")]
    Sink {
        /// `[[sinks]] name`.
        sink: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// `notify --test --sink NAME` named no configured sink.
    #[error("no sink named {name:?} in the configuration (configured: {known})")]
    UnknownSink {
        /// The name asked for.
        name: String,
        /// Names that exist.
        known: String,
    },
    /// The async runtime could not be started.
    #[error("cannot start the notifier's runtime: {0}")]
    Runtime(String),
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Alerts accepted by their sink (removed from the outbox).
    pub delivered: u64,
    /// Messages sent (a digest is one message for several alerts).
    pub messages: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Alerts moved to the dead-letter state (including those for sinks no longer configured).
    pub dead_lettered: u64,
    /// Why the drain stopped early: a sink reported [`SinkError::Gone`].
    pub gone: Option<String>,
}

impl DrainReport {
    fn merge(&mut self, o: &DrainReport) {
        self.delivered += o.delivered;
        self.messages += o.messages;
        self.retried += o.retried;
        self.dead_lettered += o.dead_lettered;
        if self.gone.is_none() {
            self.gone.clone_from(&o.gone);
        }
    }
}

/// Drains the outbox of one database into its sinks.
pub struct Notifier {
    workers: Vec<Worker>,
    policy: NotifyConfig,
    db_path: PathBuf,
    /// A connection for housekeeping (rows of removed sinks).
    store: Store,
    /// Whether rows for sinks this notifier does not have are dead-lettered (they were
    /// removed from the config), or left for another notifier (the stdout debugging mode).
    owns_outbox: bool,
}

impl Notifier {
    /// The notifier for the sinks in `config` (the built-in `stdout` sink when none are
    /// configured) on the database at `db_path`. Secrets and CA files are read now.
    pub fn new(config: &Config, db_path: &Path) -> Result<Notifier, NotifyError> {
        let sinks = if config.sinks.is_empty() {
            vec![Box::new(StdoutSink::new(std::io::stdout(), false)) as Box<dyn Sink>]
        } else {
            config
                .sinks
                .iter()
                .map(build_sink)
                .collect::<Result<Vec<_>, _>>()?
        };
        Notifier::with_sinks(sinks, config.notify.clone(), db_path)
    }

    /// A notifier for these sinks with this policy (tests, `notify --json`).
    pub fn with_sinks(
        sinks: Vec<Box<dyn Sink>>,
        policy: NotifyConfig,
        db_path: &Path,
    ) -> Result<Notifier, NotifyError> {
        let workers = sinks
            .into_iter()
            .map(|s| Ok(Worker::new(s, Store::open(db_path)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Notifier {
            workers,
            policy,
            db_path: db_path.to_path_buf(),
            store: Store::open(db_path)?,
            owns_outbox: true,
        })
    }

    /// Leaves rows of other sinks alone instead of dead-lettering them: for a notifier that
    /// is not the configured one (`accessdrift notify` printing to stdout, the demo), which
    /// must not dead-letter what the daemon's sinks still have to send.
    pub fn leave_other_sinks(mut self) -> Self {
        self.owns_outbox = false;
        self
    }

    /// The database this notifier drains.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Retry delay after `attempts` failed attempts: exponential, capped, with up to 20%
    /// jitter added by the caller's `jitter` fraction (0.0..1.0).
    pub fn backoff_secs(policy: &NotifyConfig, attempts: u32, jitter: f64) -> i64 {
        let base = policy.initial_backoff.as_secs_f64().max(0.001);
        let d = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let d = d.min(policy.max_backoff.as_secs_f64());
        (d * (1.0 + 0.2 * jitter.clamp(0.0, 1.0))).ceil() as i64
    }

    /// Delivers what is due at `now_unix` once, every sink concurrently.
    pub async fn drain(&mut self, now_unix: i64) -> Result<DrainReport, NotifyError> {
        // `.instrument`, not `span.enter()`: a guard held across `.await` would mark every
        // task this thread polls meanwhile as inside the span.
        let span = tracing::info_span!("notify");
        self.drain_inner(now_unix).instrument(span).await
    }

    async fn drain_inner(&mut self, now_unix: i64) -> Result<DrainReport, NotifyError> {
        let mut report = DrainReport {
            dead_lettered: if self.owns_outbox {
                self.dead_letter_unknown()?
            } else {
                0
            },
            ..DrainReport::default()
        };
        let policy = &self.policy;
        let results = futures_util::future::join_all(
            self.workers.iter_mut().map(|w| w.drain(now_unix, policy)),
        )
        .await;
        for r in results {
            report.merge(&r?);
        }
        Ok(report)
    }

    /// [`Notifier::drain`] for synchronous callers (`notify --once`); not from async code.
    pub fn drain_once(&mut self) -> Result<DrainReport, NotifyError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NotifyError::Runtime(e.to_string()))?;
        rt.block_on(self.drain(unix_now()))
    }

    /// Runs until `cancel`: each sink drains on its own task, woken by `wake` (a commit
    /// queued alerts), by its own retry time, or every `[notify] poll_interval`.
    pub async fn run(
        self,
        wake: Arc<tokio::sync::Notify>,
        cancel: CancellationToken,
    ) -> Result<(), NotifyError> {
        let Notifier {
            workers,
            policy,
            mut store,
            owns_outbox,
            ..
        } = self;
        let sink_names: Vec<String> = workers.iter().map(|w| w.name().to_string()).collect();
        let mut bells = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for mut w in workers {
            let bell = Arc::new(tokio::sync::Notify::new());
            bells.push(bell.clone());
            let (policy, cancel) = (policy.clone(), cancel.clone());
            tasks.spawn(async move {
                loop {
                    let report = w.drain(unix_now(), &policy).await?;
                    if report.gone.is_some() {
                        return Ok::<_, NotifyError>(());
                    }
                    let sleep = w.next_due(unix_now(), policy.poll_interval);
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = bell.notified() => {}
                        _ = tokio::time::sleep(sleep) => {}
                    }
                }
            });
        }
        // One waiter on the shared bell, fanned out to every sink: `notify_one` from the
        // writer wakes exactly one waiter, which must not be a single sink.
        // Housekeeping at start and on poll ticks, not on every commit: it takes the write lock.
        let mut housekeeping = owns_outbox;
        loop {
            if housekeeping {
                let removed = store.tx().and_then(|tx| {
                    let n = tx.dead_letter_unknown_sinks(&sink_names)?;
                    tx.commit()?;
                    Ok(n)
                })?;
                if removed > 0 {
                    tracing::error!(
                        alerts = removed,
                        "dead-lettered alerts queued for sinks no longer configured"
                    );
                }
            }
            housekeeping = false;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => bells.iter().for_each(|b| b.notify_one()),
                _ = tokio::time::sleep(policy.poll_interval) => housekeeping = owns_outbox,
                Some(done) = tasks.join_next() => {
                    if let Ok(Err(e)) = done {
                        cancel.cancel();
                        return Err(e);
                    }
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                return Err(e);
            }
        }
        Ok(())
    }

    fn dead_letter_unknown(&mut self) -> Result<u64, StoreError> {
        let names: Vec<String> = self.workers.iter().map(|w| w.name().to_string()).collect();
        let tx = self.store.tx()?;
        let n = tx.dead_letter_unknown_sinks(&names)?;
        tx.commit()?;
        if n > 0 {
            tracing::error!(
                alerts = n,
                "dead-lettered alerts queued for sinks no longer configured"
            );
        }
        Ok(n)
    }
}

/// Sends a synthetic alert through the sink named `name` now, bypassing the outbox, and
/// returns what the receiver answered (`notify --test`).
pub async fn send_test(config: &Config, name: &str) -> Result<Receipt, NotifyError> {
    let Some(cfg) = config.sinks.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
        return Err(NotifyError::UnknownSink {
            name: name.to_string(),
            known: if known.is_empty() {
                "none: add a [[sinks]] entry".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let mut sink = build_sink(cfg)?;
    let alert = Alert::test(name);
    let limit = sink.timeout();
    bounded(limit, sink.deliver(&alert))
        .await
        .map_err(|e| NotifyError::Sink {
            sink: name.to_string(),
            problem: format!("the test alert was not accepted: {e}"),
        })
}

/// Runs one delivery attempt for at most `limit` (plus a second of grace, so the sink's own
/// timeout error wins when it has one): a peer that stops answering mid-conversation (an
/// SMTP relay silent after AUTH) must not hold its sink for ever.
async fn bounded(
    limit: Duration,
    attempt: impl Future<Output = Result<Receipt, SinkError>>,
) -> Result<Receipt, SinkError> {
    match tokio::time::timeout(limit + Duration::from_secs(1), attempt).await {
        Ok(r) => r,
        Err(_) => Err(SinkError::Temporary(format!(
            "no answer within {}s (the sink's timeout)",
            limit.as_secs()
        ))),
    }
}

/// Wall-clock unix seconds.
pub fn unix_now() -> i64 {
    crate::domain::EventTime::now().unix_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_upwards() {
        let p = NotifyConfig::default();
        let got: Vec<i64> = (1..=10)
            .map(|a| Notifier::backoff_secs(&p, a, 0.0))
            .collect();
        assert_eq!(got, vec![5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(Notifier::backoff_secs(&p, 2, 1.0), 12);
    }
}
