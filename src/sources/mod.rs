//! Sources turn raw input into observations at their edge; nothing past here sees raw formats.

pub mod activity_log;
pub mod arm;
pub mod canonical;
pub mod eventhubs;
pub(crate) mod frame;
pub mod kube_audit;
pub mod kubernetes;
pub mod replay;
pub mod router;

pub use crate::ingest::{Decoded, SkipReason};
