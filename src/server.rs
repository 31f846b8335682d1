//! The daemon's HTTP server: `/healthz`, `/readyz` and `/metrics` (OpenMetrics text).

use crate::ingest::Health;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} ([server] listen): {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn reply((ok, body): (bool, Value)) -> (StatusCode, Json<Value>) {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// The routes, for the daemon and for tests.
pub fn router(health: Health) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(h): State<Health>| async move { reply(h.live()) }),
        )
        .route(
            "/readyz",
            get(|State(h): State<Health>| async move { reply(h.ready()) }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    crate::metrics::global().encode(),
                )
            }),
        )
        .with_state(health)
}

/// Binds `addr` (so a taken port fails start-up, not later) and returns the serving future,
/// which ends when `cancel` fires.
pub async fn bind(
    addr: &str,
    health: Health,
    cancel: CancellationToken,
) -> Result<(std::net::SocketAddr, impl std::future::Future<Output = ()>), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let serve = async move {
        let r = axum::serve(listener, router(health))
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = r {
            crate::metrics::global().error("server");
            tracing::error!(error = %e, "health server stopped");
        }
    };
    Ok((local, serve))
}
