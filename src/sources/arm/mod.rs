//! The Azure inventory: what Azure Resource Manager says exists now (role assignments, custom
//! role definitions, the watched clusters' access settings, user-assigned identities and their
//! federated credentials), read as a snapshot that merges with Activity Log events by time.
//!
//! A snapshot is as of the moment its listing started (T). Each listed object is an
//! observation at T; each completed listing of one kind in one subscription is a
//! [`crate::ingest::Reset::Snapshot`]: facts of that kind and subscription it did not list, last
//! written before T, are deleted as of T. A listing that failed deletes nothing.

pub mod client;
mod credential;
pub mod hints;
pub mod inventory;
pub mod pim;
mod report;
mod sink;
mod source;

pub use client::{ArmClient, IdentityLabel, Limits};
pub use credential::credential;
pub use inventory::{Inventory, Part, PartOutcome, PartReport, SnapshotReport};
pub use source::ArmSource;

pub use crate::domain::{
    INVENTORY_OPERATION_PREFIX as OPERATION_PREFIX, INVENTORY_SOURCE as SOURCE,
};

/// The inventory `[azure]` and `[[clusters]]` describe, with its credential and client.
pub fn inventory(cfg: &crate::config::Config) -> Result<Inventory, ArmError> {
    let a = &cfg.azure;
    let (cred, label) = credential(a)?;
    let client = ArmClient::new(
        &a.arm_endpoint,
        cred,
        a.token_scope(),
        label,
        Limits {
            max_attempts: a.max_attempts,
            initial_backoff: std::time::Duration::from_secs(1),
            request_timeout: a.request_timeout,
        },
    )?;
    let clusters = cfg
        .clusters
        .iter()
        .map(|c| inventory::ClusterTarget {
            name: c.name.clone(),
            resource_id: crate::domain::canonical_id(&c.resource_id),
        })
        .collect();
    Ok(Inventory::new(client, cfg.azure_subscriptions(), clusters))
}

/// Failures talking to ARM. Messages name the request and the fix, never a token.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// `arm_endpoint` is not usable.
    #[error("[azure] arm_endpoint {endpoint:?}: {problem}")]
    Endpoint {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        problem: String,
    },
    /// The credential could not be built (missing AZURE_* variables, no `az`).
    #[error("[azure] auth = \"{auth}\": cannot build the credential: {source}")]
    Credential {
        /// The auth mode.
        auth: &'static str,
        /// The SDK's error.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// No token could be had for ARM.
    #[error("getting an ARM token ({scope}) as {identity}: {source}")]
    Token {
        /// Who we tried to be.
        identity: String,
        /// The scope asked for.
        scope: &'static str,
        /// The SDK's error.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// 401: the token was refused.
    #[error("ARM at {endpoint} refused the token of {identity} (401 Unauthorized): {message}; check that the identity exists in the subscriptions' tenant and that [azure] auth and client_id name it")]
    Unauthorized {
        /// The ARM endpoint.
        endpoint: String,
        /// Who the token was for (client and object id when known).
        identity: String,
        /// ARM's words.
        message: String,
    },
    /// 403: the identity lacks a permission.
    #[error("{identity} may not {} over {} (403 {}): grant it Reader on the subscription (deploy/azure) — request {url}", action.as_deref().unwrap_or("read this"), scope.as_deref().unwrap_or("this scope"), code.as_deref().unwrap_or("Forbidden"))]
    Forbidden {
        /// The request.
        url: String,
        /// Who we are.
        identity: String,
        /// ARM's error code (`AuthorizationFailed`).
        code: Option<String>,
        /// The action refused, from ARM's message.
        action: Option<String>,
        /// The scope it was refused over.
        scope: Option<String>,
    },
    /// 404.
    #[error("{url}: 404 Not Found")]
    NotFound {
        /// The request.
        url: String,
    },
    /// Another non-retryable status.
    #[error("{url}: HTTP {status} {}: {message}", code.as_deref().unwrap_or(""))]
    Status {
        /// The request.
        url: String,
        /// The status.
        status: u16,
        /// ARM's error code.
        code: Option<String>,
        /// ARM's message.
        message: String,
    },
    /// Retries exhausted (429, 5xx), or ARM asked to wait longer than we will.
    #[error("{url}: gave up after {attempts} attempts ({reason}, last Retry-After {}s)", retry_after.as_secs())]
    GaveUp {
        /// The request.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// `throttled` or `server_error`.
        reason: &'static str,
        /// The last wait asked for.
        retry_after: std::time::Duration,
    },
    /// The connection failed or timed out on every attempt.
    #[error("{url}: no answer after {attempts} attempts")]
    Transport {
        /// The request.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: reqwest::Error,
    },
    /// The response is not what ARM sends.
    #[error("{url}: unexpected response: {problem}")]
    Shape {
        /// The request.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A page of a list failed: the listing is incomplete.
    #[error("page {page}: {source}")]
    Page {
        /// 1-based page number.
        page: usize,
        /// Why.
        #[source]
        source: Box<ArmError>,
    },
    /// Shutdown interrupted the request.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl ArmError {
    /// The metric outcome of a request that ended with this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            ArmError::Unauthorized { .. }
            | ArmError::Token { .. }
            | ArmError::Credential { .. } => "unauthorized",
            ArmError::Forbidden { .. } => "forbidden",
            ArmError::NotFound { .. } => "not_found",
            ArmError::Page { source, .. } => source.outcome(),
            ArmError::Cancelled => "cancelled",
            _ => "failed",
        }
    }

    /// Whether the credentials or a permission were refused (readiness: unauthorized).
    pub fn refused(&self) -> bool {
        matches!(self.outcome(), "unauthorized" | "forbidden")
    }

    /// The same error, said to be on page `page` of a listing (first pages stay plain).
    fn at_page(self, page: usize) -> ArmError {
        match self {
            ArmError::Cancelled => ArmError::Cancelled,
            e if page > 1 => ArmError::Page {
                page,
                source: Box::new(e),
            },
            e => e,
        }
    }

    /// Whether the token was refused (401) or could not be had: nothing else will work.
    pub fn token_refused(&self) -> bool {
        match self {
            ArmError::Unauthorized { .. }
            | ArmError::Token { .. }
            | ArmError::Credential { .. } => true,
            ArmError::Page { source, .. } => source.token_refused(),
            _ => false,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ArmError::NotFound { .. })
    }
}
