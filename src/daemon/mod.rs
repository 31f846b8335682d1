//! `accessdrift run`: the long-lived process. This module only wires the parts together:
//! sources (each a task implementing [`crate::ingest::Source`]), the pipeline's store-writer,
//! the notifier and the HTTP server.
//!
//! One tokio runtime; each source a task with a cancellation token; ONE store-writer thread
//! owning the read-write connection, fed by a bounded channel; the outbox notifier (one task
//! per sink, each with its own connection), woken by commits; an HTTP server for `/healthz`,
//! `/readyz` and `/metrics`; a thread sampling the store's gauges for `/metrics`.

use crate::config::Config;
use crate::ingest::{Health, Source, SourceContext};
use crate::notify::{route, Notifier, NotifyError};
use crate::sources::kubernetes::client::{self, KubeSourceError};
use crate::sources::kubernetes::spec::WatchSpec;
use crate::sources::kubernetes::watch;
use crate::store::{Store, StoreError};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Batches that may wait for the writer before sources block (back-pressure).
const WRITER_QUEUE: usize = 64;
/// How often the store gauges of `/metrics` are read.
const GAUGE_INTERVAL: Duration = Duration::from_secs(2);
/// Resources named without a body that may wait for their ARM read.
const HINT_QUEUE: usize = 1024;
/// How long shutdown waits for sources to hand over what they hold.
const SOURCE_STOP_GRACE: Duration = Duration::from_secs(8);

/// Daemon start-up failures (once running, failures are logged and retried, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error("opening the store at {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    /// A sink could not be set up (a secret, a CA file, a client).
    #[error("setting up the alert sinks: {0}")]
    Notify(NotifyError),
    /// The health server could not bind.
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    /// The Kubernetes client could not be built.
    #[error(transparent)]
    Kubernetes(#[from] KubeSourceError),
    /// The Azure inventory could not be set up (credential, endpoint).
    #[error(transparent)]
    Arm(#[from] crate::sources::arm::ArmError),
    /// No source is enabled: the daemon would never be ready.
    #[error("no source is enabled: add a [kubernetes], an [eventhubs] or an [azure] table to the config")]
    NoSource,
    /// A signal handler could not be installed.
    #[error("installing the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
}

struct KubeWatch {
    client: kube::Client,
    cfg: crate::config::KubernetesConfig,
    spec: WatchSpec,
}

impl Source for KubeWatch {
    fn name(&self) -> String {
        self.spec.source_name(&self.cfg.cluster)
    }
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(watch::run(ctx, self.client, self.cfg, self.spec))
    }
}

/// Marks a task dead in the health registry when its thread ends, panics included.
struct DeathNotice(Health, &'static str);

impl Drop for DeathNotice {
    fn drop(&mut self) {
        self.0.task_died(self.1);
    }
}

/// Runs the daemon until SIGTERM / SIGINT; returns after a clean shutdown.
pub fn run(config: Config, db: &Path) -> Result<(), DaemonError> {
    if config.enabled_sources().is_empty() {
        return Err(DaemonError::NoSource);
    }
    let store = Store::open(db).map_err(|source| DaemonError::Store {
        path: db.to_path_buf(),
        source,
    })?;
    // Sinks are built (secrets read, CA files loaded) before anything runs: a bad sink is a
    // start-up error, not an alert lost later. Each sink gets its own connection.
    let notifier = Notifier::new(&config, db).map_err(DaemonError::Notify)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("accessdrift-rt")
        .build()
        .map_err(DaemonError::Runtime)?;
    let config = Arc::new(config);
    let (stop_gauges, gauges_stop) = std_mpsc::channel::<()>();
    let gauges = {
        let db = db.to_path_buf();
        std::thread::Builder::new()
            .name("accessdrift-gauges".into())
            .spawn(move || gauge_loop(&db, gauges_stop))
            .map_err(DaemonError::Runtime)?
    };
    let r = rt.block_on(run_async(config, store, notifier, db));
    drop(stop_gauges);
    let _ = gauges.join();
    r
}

/// Reads the store's gauges (facts, active findings, outbox depth and age) for `/metrics`
/// every [`GAUGE_INTERVAL`] (less often when a reading is slow) on a read-only connection
/// of its own: never in the writer's way.
fn gauge_loop(db: &Path, stop: std_mpsc::Receiver<()>) {
    let mut store: Option<Store> = None;
    loop {
        if store.is_none() {
            store = Store::open_read_only(db)
                .map_err(|e| {
                    crate::metrics::global().error("gauges");
                    tracing::warn!(error = %e, "metrics: cannot open the store to read gauges; retrying")
                })
                .ok();
        }
        let started = std::time::Instant::now();
        if let Some(s) = store.as_mut() {
            match s.read().and_then(|tx| tx.gauges()) {
                Ok(g) => crate::metrics::global()
                    .set_store_gauges(&g, crate::domain::EventTime::now().unix_seconds()),
                Err(e) => {
                    crate::metrics::global().error("gauges");
                    tracing::warn!(error = %e, "metrics: reading gauges failed; reopening the store");
                    store = None;
                }
            }
        }
        // The counts grow with the store: on a large one, read less often rather than take
        // more than ~5% of a core from the pipeline.
        let wait = GAUGE_INTERVAL.max(started.elapsed() * 20);
        match stop.recv_timeout(wait) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

async fn run_async(
    config: Arc<Config>,
    store: Store,
    notifier: Notifier,
    db: &Path,
) -> Result<(), DaemonError> {
    let health = Health::new(WRITER_QUEUE);
    let cancel = CancellationToken::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DaemonError::Signal("SIGTERM", e))?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| DaemonError::Signal("SIGINT", e))?;

    let (addr, serve) =
        crate::server::bind(&config.server.listen, health.clone(), cancel.clone()).await?;
    tracing::info!(listen = %addr, "health server listening (/healthz, /readyz, /metrics)");

    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if config.kubernetes.enabled {
        let client = client::client(&config.kubernetes).await?;
        for spec in WatchSpec::all(&config.kubernetes) {
            crate::metrics::global().declare_kube_kind(spec.kind.kind);
            sources.push(Box::new(KubeWatch {
                client: client.clone(),
                cfg: config.kubernetes.clone(),
                spec,
            }));
        }
    }
    if config.eventhubs.enabled {
        // One source per hub (`[eventhubs]` and each `[[eventhubs.hubs]]`); every hub's
        // records are routed by category, so any of them may carry Activity Log or audit.
        let clusters = crate::sources::kube_audit::Clusters::from_config(&config.clusters);
        for hub in config.eventhubs.all_hubs() {
            sources.push(Box::new(crate::sources::eventhubs::EventHubsSource::new(
                hub,
                db,
                clusters.clone(),
            )));
        }
    }

    // Activity Log records without a body become targeted ARM reads; without the inventory
    // they stay skipped (counted as `no_body`).
    let mut hint_tx = None;
    if config.azure.enabled {
        let a = &config.azure;
        let (tx, rx) = tokio::sync::mpsc::channel(HINT_QUEUE);
        if config.eventhubs.enabled {
            hint_tx = Some(tx);
        }
        let limits = crate::sources::arm::hints::HintLimits {
            concurrency: a.hint_concurrency,
            debounce: a.hint_debounce,
        };
        sources.push(Box::new(crate::sources::arm::ArmSource::new(
            crate::sources::arm::inventory(&config)?,
            a.snapshot_interval,
            Some((rx, limits)),
        )));
    }

    let sinks = route::queue_sinks(&config);
    for s in &sinks {
        crate::metrics::global().declare_sink(s);
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    // The notifier stops on its own token, after the writer: alerts the last commits queued
    // are not waited for (they stay in the outbox for the next start), and a delivery in
    // flight finishes before its task returns.
    let notifier_cancel = CancellationToken::new();
    let notifier = {
        let (wake, cancel, health) = (wake.clone(), notifier_cancel.clone(), health.clone());
        tokio::spawn(async move {
            let _alive = DeathNotice(health, "notifier");
            if let Err(e) = notifier.run(wake, cancel).await {
                tracing::error!(error = %e, "notifier stopped");
            }
        })
    };
    let (writer, rx) = crate::ingest::channel(WRITER_QUEUE, health.backlog());
    let writer_thread = {
        let config = config.clone();
        let health = health.clone();
        let backlog = health.backlog();
        let wake = wake.clone();
        std::thread::Builder::new()
            .name("accessdrift-writer".into())
            .spawn(move || {
                let _alive = DeathNotice(health, "store writer");
                crate::pipeline::writer::run(store, &config, sinks, rx, &backlog, |stats| {
                    if stats.notifications > 0 {
                        wake.notify_one();
                    }
                    if let Some(tx) = &hint_tx {
                        for h in &stats.hints {
                            // Full: the snapshot reads it later; never block the writer.
                            if tx.try_send(h.clone()).is_err() {
                                crate::metrics::global().arm_request("hint", "dropped");
                            }
                        }
                    }
                });
            })
            .map_err(DaemonError::Runtime)?
    };

    // Every source is registered before the server answers: never "ready" with none known.
    let registered: Vec<_> = sources
        .into_iter()
        .map(|s| {
            let readiness = health.register(&s.name());
            (s, readiness)
        })
        .collect();
    let server = tokio::spawn(serve);
    let mut tasks = tokio::task::JoinSet::new();
    for (s, readiness) in registered {
        let ctx = SourceContext {
            writer: writer.clone(),
            cancel: cancel.clone(),
            readiness,
        };
        tasks.spawn(s.run(ctx));
    }
    drop(writer);
    tracing::info!(sources = tasks.len(), "accessdrift running");

    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "shutting down: stopping sources, committing what they hold"
    );
    cancel.cancel();
    // A second signal means "now": uncommitted batches roll back and are read again next start.
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {},
            _ = sigint.recv() => {},
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    let drained = tokio::time::timeout(SOURCE_STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("sources did not stop within {SOURCE_STOP_GRACE:?}; abandoning them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let _ = server.await;
    // Every WriterHandle is gone now: the writer commits what it holds and returns.
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    notifier_cancel.cancel();
    let _ = notifier.await;
    tracing::info!("stopped");
    Ok(())
}
