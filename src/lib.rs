//! accessdrift: detects drift of AKS identity and RBAC state from an approved baseline.
//!
//! Data flow (docs/architecture.md): `sources` → `domain::Observation` → `pipeline` (one `store`
//! transaction per batch, `engine` decides finding transitions) → outbox → `notify`.

#![warn(missing_docs)]

pub mod baseline;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod engine;
pub(crate) mod events;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub(crate) mod server;
pub mod sources;
pub mod store;
pub(crate) mod telemetry;
