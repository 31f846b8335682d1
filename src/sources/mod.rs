//! Sources turn raw input into observations at their edge; nothing past here sees raw formats.

pub mod activity_log;
pub mod canonical;
pub mod eventhubs;
pub mod frame;
pub mod kubernetes;
pub mod replay;

use crate::domain::Observation;

/// Why a source read a record and made nothing of it (what the store makes of a record is
/// `pipeline::SkipReason`). Stable snake_case names appear in summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// An Activity Log operation accessdrift does not watch (storage writes, sign-ins, health…).
    IrrelevantOperation,
    /// A record without any operation name (time-only or foreign records).
    NoOperation,
    /// A `resultType`/`status` that is not a phase (`Updated`, `0`, …).
    UnknownResult,
    /// Already applied by an earlier run (before the source checkpoint).
    BeforeCheckpoint,
    /// A Kubernetes kind accessdrift does not watch.
    IrrelevantKind,
    /// A watch BOOKMARK or ERROR event.
    WatchControl,
}

impl SkipReason {
    /// Stable name for summaries and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::IrrelevantOperation => "irrelevant_operation",
            SkipReason::NoOperation => "no_operation",
            SkipReason::UnknownResult => "unknown_result",
            SkipReason::BeforeCheckpoint => "before_checkpoint",
            SkipReason::IrrelevantKind => "irrelevant_kind",
            SkipReason::WatchControl => "watch_control",
        }
    }
}

/// What a source made of one record.
// Most records are skips; a box per observation would cost more than moving the bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Something for the pipeline.
    Observation(Observation),
    /// Read, understood, and not relevant.
    Skipped(SkipReason),
    /// Not understood; the message names the field and the problem.
    Malformed(String),
}
