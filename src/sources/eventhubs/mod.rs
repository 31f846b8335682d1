//! The live Azure Activity Log source: an Event Hub that a diagnostic setting streams to,
//! consumed with the SDK's `EventProcessor` (all partitions, ownership in our store).
//!
//! Exactly-once effects: each partition's checkpoint is committed by the store-writer in the
//! transaction that applies the events up to it (`eventhubs:NS/HUB/CG/PARTITION` rows of
//! `checkpoints`, see `store::EventHubsPosition`). The SDK only reads checkpoints (to choose
//! where a partition resumes, exclusive of the committed event), and events at or before the
//! committed sequence number that the service sends again are dropped as redeliveries.

mod checkpoint_store;
mod partition;
mod stats;

use crate::config::{EventHubsAuth, EventHubsConfig, EventHubsStart, SecretError};
use crate::domain::error_chain;
use crate::ingest::SourceContext;
use crate::ingest::SourceState;
use crate::sources::kube_audit::Clusters;
use crate::store::{EventHubsPartition, StoreError};
use azure_messaging_eventhubs::models::StartPositions;
use azure_messaging_eventhubs::{ConsumerClient, EventProcessor, StartLocation, StartPosition};
use checkpoint_store::SqliteCheckpointStore;
use partition::{PartitionEnd, PartitionRun};
use stats::EventHubsStats;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest a link or connection close may take at shutdown or reconnect.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Receivers of one partition that end in a row without delivering anything before the
/// whole connection is rebuilt.
const DEAD_LINK_LIMIT: u32 = 3;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a session with the hub ended (logged and retried; never fatal to the daemon).
#[derive(Debug, thiserror::Error)]
pub enum EventHubsSourceError {
    /// The connection string secret could not be read.
    #[error("[eventhubs] connection_string: {0}")]
    Secret(#[from] SecretError),
    /// The credential for the auth mode could not be built (missing AZURE_* variables…).
    #[error("[eventhubs] auth = \"{auth}\": cannot build the credential: {}", error_chain(source.as_ref()))]
    Credential {
        /// The auth mode.
        auth: &'static str,
        /// What the SDK said.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// Connecting, authenticating or reading the hub failed.
    #[error("Event Hub {eventhub} in namespace {namespace} (consumer group {consumer_group}, auth = \"{auth}\"): {what}: {}", error_chain(source.as_ref()))]
    Hub {
        /// The namespace.
        namespace: String,
        /// The hub.
        eventhub: String,
        /// The consumer group.
        consumer_group: String,
        /// The auth mode.
        auth: &'static str,
        /// The step that failed.
        what: &'static str,
        /// What the SDK said (never a secret: the SDK does not put tokens in errors).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the service refused the credentials or the permission, read from the
        /// error's types when it was built.
        refused: bool,
    },
    /// The checkpoint store could not be opened.
    #[error("Event Hubs checkpoint store: {0}")]
    Store(#[from] StoreError),
}

impl EventHubsSourceError {
    /// The service refused the credentials or the permission.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            EventHubsSourceError::Hub { refused, .. } => *refused,
            EventHubsSourceError::Credential { .. } | EventHubsSourceError::Secret(_) => true,
            EventHubsSourceError::Store(_) => false,
        }
    }
}

/// Whether an SDK error says the credentials or the permission were refused, from the error
/// types along its source chain (a 401/403 HTTP or CBS status, a credential failure, AMQP
/// `unauthorized-access`), never from its message text.
pub(crate) fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    use azure_core::error::ErrorKind;
    use azure_core_amqp::error::{AmqpErrorCondition, AmqpErrorKind};
    let denied = |s: azure_core::http::StatusCode| matches!(u16::from(s), 401 | 403);
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(a) = err.downcast_ref::<azure_core::Error>() {
            match a.kind() {
                ErrorKind::Credential => return true,
                ErrorKind::HttpResponse { status, .. } if denied(*status) => return true,
                _ => {}
            }
        }
        if let Some(a) = err.downcast_ref::<azure_core_amqp::AmqpError>() {
            match a.kind() {
                AmqpErrorKind::ManagementStatusCode(s, _) if denied(*s) => return true,
                AmqpErrorKind::AmqpDescribedError(d)
                    if d.condition == AmqpErrorCondition::UnauthorizedAccess =>
                {
                    return true
                }
                _ => {}
            }
        }
        cur = err.source();
    }
    false
}

/// The Event Hubs source as the daemon runs it.
pub struct EventHubsSource {
    cfg: EventHubsConfig,
    db: PathBuf,
    stats: EventHubsStats,
    clusters: Clusters,
}

impl EventHubsSource {
    /// A source reading the hub of `cfg` into the database at `db`; audit records are
    /// mapped to `clusters` by resource id.
    pub fn new(cfg: EventHubsConfig, db: &Path, clusters: Clusters) -> Self {
        EventHubsSource {
            cfg,
            db: db.to_path_buf(),
            stats: EventHubsStats::default(),
            clusters,
        }
    }

    /// Its figures (lag per partition, counters), for `/readyz` and metrics.
    pub fn stats(&self) -> EventHubsStats {
        self.stats.clone()
    }
}

impl crate::ingest::Source for EventHubsSource {
    fn name(&self) -> String {
        format!(
            "eventhubs:{}/{}/{}",
            self.cfg.namespace, self.cfg.eventhub, self.cfg.consumer_group
        )
    }

    /// The SDK's partition event streams are not `Send`, so the source runs on a thread of
    /// its own with a single-threaded runtime; the returned future waits for that thread.
    fn run(self: Box<Self>, ctx: SourceContext) -> futures::future::BoxFuture<'static, ()> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let readiness = ctx.readiness.clone();
        let spawned = std::thread::Builder::new()
            .name("accessdrift-eventhubs".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        ctx.readiness.set(SourceState::Error(format!(
                            "starting the Event Hubs runtime: {e}"
                        )));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, run(ctx, self.cfg, self.db, self.stats, self.clusters));
                let _ = done_tx.send(());
            });
        Box::pin(async move {
            match spawned {
                Ok(_) => {
                    let _ = done_rx.await;
                }
                Err(e) => readiness.set(SourceState::Error(format!(
                    "starting the Event Hubs thread: {e}"
                ))),
            }
        })
    }
}

/// The processor's owner id: stable across restarts of one pod (or host), so a restarted
/// daemon takes its partitions back at once instead of waiting for its old claims to expire.
fn owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    format!("accessdrift-{host}")
}

/// Opens a client with the configured auth; `what` names the step in errors.
pub async fn open_client(cfg: &EventHubsConfig) -> Result<ConsumerClient, EventHubsSourceError> {
    let hub_err = |what, e| hub_error(cfg, what, e);
    let cred_err = |e: azure_core::Error| EventHubsSourceError::Credential {
        auth: cfg.auth.as_str(),
        source: Box::new(e),
    };
    let mut b = ConsumerClient::builder()
        .with_consumer_group(cfg.consumer_group.clone())
        .with_application_id(owner_id());
    if let Some(ep) = &cfg.custom_endpoint {
        b = b.with_custom_endpoint(ep.clone());
    }
    let opened = match cfg.auth {
        EventHubsAuth::WorkloadIdentity => {
            let cred = azure_identity::WorkloadIdentityCredential::new(None).map_err(cred_err)?;
            b.open(&cfg.namespace, cfg.eventhub.clone(), cred).await
        }
        EventHubsAuth::ManagedIdentity => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: cfg
                    .client_id
                    .clone()
                    .map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            };
            let cred =
                azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(cred_err)?;
            b.open(&cfg.namespace, cfg.eventhub.clone(), cred).await
        }
        EventHubsAuth::ConnectionString => {
            let secret = cfg
                .connection_string
                .as_ref()
                .ok_or(SecretError::Empty {
                    reference: "[eventhubs] connection_string".into(),
                })?
                .expose()?;
            b.open_with_connection_string(&secret, Some(&cfg.eventhub))
                .await
        }
    };
    opened.map_err(|e| hub_err("connecting and authenticating", Box::new(e)))
}

async fn run(
    ctx: SourceContext,
    cfg: EventHubsConfig,
    db: PathBuf,
    stats: EventHubsStats,
    clusters: Clusters,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        ctx.readiness.set(SourceState::Connecting);
        let started = std::time::Instant::now();
        let outcome = session(&ctx, &cfg, &db, &stats, &clusters).await;
        // A session that ran for a while was healthy: the next failure starts the backoff over.
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        match outcome {
            Ok(()) => break,
            Err(e) => {
                let state = if e.is_unauthorized() {
                    SourceState::Unauthorized(format!("{e}; retrying in {backoff:?}"))
                } else {
                    SourceState::Error(format!("{e}; retrying in {backoff:?}"))
                };
                ctx.readiness.set(state);
            }
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    ctx.readiness.set(SourceState::Stopped);
}

/// The error of one step of a session with the hub; `refused` is read from the error's types.
fn hub_error(
    cfg: &EventHubsConfig,
    what: &'static str,
    e: Box<dyn std::error::Error + Send + Sync>,
) -> EventHubsSourceError {
    EventHubsSourceError::Hub {
        namespace: cfg.namespace.clone(),
        eventhub: cfg.eventhub.clone(),
        consumer_group: cfg.consumer_group.clone(),
        auth: cfg.auth.as_str(),
        what,
        refused: refused(e.as_ref()),
        source: e,
    }
}

/// Connects twice (the processor's client and a monitor for partition properties), reads the
/// hub's properties and builds the SDK's event processor over our checkpoint store.
async fn start_processor(
    cfg: &EventHubsConfig,
    store: Arc<SqliteCheckpointStore>,
) -> Result<
    (
        ConsumerClient,
        azure_messaging_eventhubs::models::EventHubProperties,
        Arc<EventProcessor>,
    ),
    EventHubsSourceError,
> {
    let hub_err = |what, e| hub_error(cfg, what, e);
    let consumer = open_client(cfg).await?;
    let monitor = open_client(cfg).await?;
    let props = monitor
        .get_eventhub_properties()
        .await
        .map_err(|e| hub_err("reading the hub's properties", Box::new(e)))?;
    let interval = azure_core::time::Duration::try_from(cfg.rebalance_interval)
        .unwrap_or(azure_core::time::Duration::seconds(10));
    let location = match cfg.start {
        EventHubsStart::Earliest => StartLocation::Earliest,
        EventHubsStart::Latest => StartLocation::Latest,
    };
    let processor = EventProcessor::builder()
        .with_update_interval(interval)
        // Several update intervals: a live owner renews well before its claim expires.
        .with_partition_expiration_duration(interval * 6)
        .with_prefetch((cfg.max_batch as u32).saturating_mul(2).max(10))
        .with_start_positions(StartPositions {
            per_partition: Default::default(),
            // Exclusive: a checkpoint names the last event applied, so resume after it.
            default: StartPosition {
                location,
                inclusive: false,
            },
        })
        .build(consumer, store.clone())
        .await
        .map_err(|e| hub_err("starting the event processor", Box::new(e)))?;
    Ok((monitor, props, processor))
}

/// Starts reading one partition the processor handed us, from its committed checkpoint, as a
/// task of `partitions` that returns how the partition ended.
async fn open_partition(
    ctx: &SourceContext,
    cfg: &EventHubsConfig,
    store: &SqliteCheckpointStore,
    (stats, clusters): (&EventHubsStats, &Clusters),
    pc: Arc<azure_messaging_eventhubs::processor::PartitionClient>,
    partitions: &mut tokio::task::JoinSet<(String, PartitionEnd)>,
) -> Result<(), EventHubsSourceError> {
    let hub_err = |what, e| hub_error(cfg, what, e);
    let part = EventHubsPartition {
        namespace: cfg.namespace.clone(),
        eventhub: cfg.eventhub.clone(),
        consumer_group: cfg.consumer_group.clone(),
        partition_id: pc.get_partition_id().to_string(),
    };
    let committed = store
        .positions()
        .await
        .map_err(|e| hub_err("reading checkpoints", Box::new(e)))?
        .into_iter()
        .find(|(p, _)| *p == part.partition_id)
        .map(|(_, pos)| pos.sequence_number);
    tracing::info!(partition = %part.partition_id, committed = ?committed, "partition opened");
    let run = PartitionRun {
        partition: part,
        max_batch: cfg.max_batch,
        max_wait: cfg.max_wait,
        committed,
        stats: stats.clone(),
        received: 0,
        clusters: clusters.clone(),
    };
    let ctx = ctx.clone();
    partitions.spawn_local(async move {
        let id = run.partition.partition_id.clone();
        let end = {
            let events = Box::pin(pc.stream_events());
            run.run(&ctx, events).await
        };
        // Closing removes it from the processor, which reopens it at its next
        // balancing round from the committed checkpoint.
        if let Ok(pc) = Arc::try_unwrap(pc) {
            let _ = tokio::time::timeout(CLOSE_GRACE, pc.close()).await;
        }
        (id, end)
    });
    Ok(())
}

/// One connected session: the processor, its partitions and the lag poller, until shutdown
/// (Ok) or a failure that needs a new connection (Err).
async fn session(
    ctx: &SourceContext,
    cfg: &EventHubsConfig,
    db: &Path,
    stats: &EventHubsStats,
    clusters: &Clusters,
) -> Result<(), EventHubsSourceError> {
    let hub_err = |what, e| hub_error(cfg, what, e);
    let store = Arc::new(SqliteCheckpointStore::open(
        db,
        &cfg.namespace,
        &cfg.eventhub,
        &cfg.consumer_group,
    )?);
    for (pid, pos) in store
        .positions()
        .await
        .map_err(|e| hub_err("reading checkpoints", Box::new(e)))?
    {
        stats.update(&pid, |p| {
            p.last_committed_sequence = Some(pos.sequence_number)
        });
    }
    // Connecting may take the SDK's whole retry budget: shutdown must not wait for it.
    let setup = start_processor(cfg, store.clone());
    let (monitor, props, processor) = tokio::select! {
        _ = ctx.cancel.cancelled() => return Ok(()),
        r = setup => r?,
    };
    tracing::info!(
        namespace = %cfg.namespace,
        eventhub = %cfg.eventhub,
        consumer_group = %cfg.consumer_group,
        partitions = %props.partition_ids.join(","),
        "Event Hubs processor started"
    );
    // Every partition's series from now on, before its first lag reading.
    for pid in &props.partition_ids {
        crate::metrics::global().declare_eventhubs_partition(pid);
    }
    ctx.readiness.set(SourceState::Synced);

    let runner = processor.clone();
    let mut dispatch = tokio::task::spawn_local(async move { runner.run().await });
    let mut partitions = tokio::task::JoinSet::new();
    let mut dead_links: std::collections::HashMap<String, u32> = Default::default();
    let session_started = std::time::Instant::now();
    let mut poll = tokio::time::interval(cfg.lag_poll);
    let result = loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break Ok(()),
            r = &mut dispatch => {
                let why: Box<dyn std::error::Error + Send + Sync> = match r {
                    Ok(Ok(())) => "the processor stopped".into(),
                    Ok(Err(e)) => Box::new(e),
                    Err(e) => Box::new(e),
                };
                break Err(hub_err("balancing and opening partitions", why));
            }
            pc = processor.next_partition_client() => {
                let pc = pc.map_err(|e| hub_err("taking the next partition", Box::new(e)))?;
                open_partition(ctx, cfg, &store, (stats, clusters), pc, &mut partitions).await?;
            }
            Some(done) = partitions.join_next() => match done {
                Ok((id, PartitionEnd::Cancelled)) => tracing::debug!(partition = %id, "partition stopped"),
                Ok((id, PartitionEnd::Disconnected { why, received })) => {
                    tracing::warn!(partition = %id, reason = %why, "partition receiver ended; the processor reopens it from the last commit");
                    // A receiver that fails before delivering anything, again and again, sits
                    // on a connection the SDK will not repair (a session that died with the
                    // socket): only a new connection helps.
                    let n = dead_links.entry(id.clone()).or_insert(0u32);
                    *n = if received == 0 { *n + 1 } else { 0 };
                    if *n >= DEAD_LINK_LIMIT {
                        let e: Box<dyn std::error::Error + Send + Sync> = format!(
                            "partition {id} failed {n} times in a row without delivering an event ({why}); reconnecting"
                        )
                        .into();
                        break Err(hub_err("reopening a partition", e));
                    }
                }
                Ok((id, PartitionEnd::WriterFailed(why))) => tracing::error!(partition = %id, error = %why, "batch not committed; the partition resumes from the last commit"),
                // A panicked partition task would leave its partition owned and unread for
                // good: end the session, so every partition reopens from its last commit
                // (and `/readyz` names the failure while it lasts).
                Err(e) => {
                    crate::metrics::global().error("eventhubs");
                    break Err(hub_err("a partition task", Box::new(e)));
                }
            },
            _ = poll.tick() => {
                // An unanswered properties read must not hold up partitions or shutdown.
                let limit = cfg.lag_poll.max(Duration::from_secs(5));
                if tokio::time::timeout(limit, poll_lag(ctx, cfg, &monitor, &props.partition_ids, stats)).await.is_err() {
                    tracing::warn!(eventhub = %cfg.eventhub, "reading partition properties for lag timed out");
                }
                // After a dropped connection the SDK can leave a receiver that neither
                // delivers nor ends. Long after the stall is reported (3 × stall_after, in
                // this session), only a new connection helps: reopen every partition from
                // its last commit.
                let dead = cfg.stall_after * 3;
                let stuck = stats.stalled_for(dead);
                if session_started.elapsed() >= dead && !stuck.is_empty() {
                    let e: Box<dyn std::error::Error + Send + Sync> = format!(
                        "partition(s) {} had events waiting and received nothing for {}; reconnecting",
                        stuck.join(", "),
                        humantime_serde::re::humantime::format_duration(dead)
                    )
                    .into();
                    break Err(hub_err("receiving", e));
                }
            }
        }
    };
    let _ = processor.shutdown().await;
    // Partitions see the cancellation (or the shutdown) and commit what they hold.
    if result.is_err() {
        partitions.abort_all();
    }
    while partitions.join_next().await.is_some() {}
    dispatch.abort();
    // A peer that never answers the close must not hold up shutdown.
    let _ = tokio::time::timeout(CLOSE_GRACE, monitor.close()).await;
    result
}

/// Reads each partition's last enqueued sequence number and publishes lag and stalls.
async fn poll_lag(
    ctx: &SourceContext,
    cfg: &EventHubsConfig,
    monitor: &ConsumerClient,
    partition_ids: &[String],
    stats: &EventHubsStats,
) {
    for pid in partition_ids {
        match monitor.get_partition_properties(pid).await {
            Ok(p) => stats.polled(
                pid,
                p.beginning_sequence_number,
                p.last_enqueued_sequence_number,
                p.is_empty,
                cfg.stall_after,
            ),
            Err(e) => {
                tracing::warn!(partition = %pid, error = %e, "reading partition properties for lag failed")
            }
        }
    }
    let stalled = stats.stalled();
    ctx.readiness.set_degraded((!stalled.is_empty()).then(|| {
        format!(
            "partition(s) {} of {} have events waiting and committed nothing for {}",
            stalled.join(", "),
            cfg.eventhub,
            humantime_serde::re::humantime::format_duration(cfg.stall_after)
        )
    }));
    ctx.readiness
        .set_details(serde_json::json!({ "partitions": stats.snapshot() }));
}
