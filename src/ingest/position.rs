//! Where a source is: one typed [`Position`] per kind of input, turned into the store's
//! checkpoint row (a number and a fingerprint) only at the store edge.

use crate::domain::EventTime;
use crate::store::{Checkpoint, EventHubsPosition};

/// A source's position after a batch, committed in the transaction of the batch's effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A replayed file: the byte offset after the last record and a fingerprint (size and
    /// hash) of every byte before it.
    File {
        /// Byte offset of the next record.
        offset: u64,
        /// Identifies the bytes before `offset`.
        fingerprint: String,
    },
    /// A Kubernetes watch: the last resourceVersion seen. Opaque: never parsed as a number.
    Watch {
        /// `metadata.resourceVersion` of the last object or bookmark.
        resource_version: String,
    },
    /// An Event Hubs partition: the last event applied.
    Partition(EventHubsPosition),
    /// A snapshot (a listing of current state) as of the time it started.
    Snapshot {
        /// When the listing started.
        at: EventTime,
    },
}

impl Position {
    /// The `checkpoints` row this position is stored as.
    pub fn to_checkpoint(&self) -> Checkpoint {
        match self {
            Position::File {
                offset,
                fingerprint,
            } => Checkpoint {
                position: *offset,
                fingerprint: fingerprint.clone(),
            },
            Position::Watch { resource_version } => Checkpoint {
                position: 0,
                fingerprint: format!("resourceVersion={resource_version}"),
            },
            Position::Partition(p) => p.to_checkpoint(),
            Position::Snapshot { at } => Checkpoint {
                position: at.unix_seconds().max(0) as u64,
                fingerprint: format!("snapshot={at}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_version_is_kept_as_written_never_as_a_number() {
        for rv in ["12345", "0a1b-opaque", "", "18446744073709551616"] {
            let cp = Position::Watch {
                resource_version: rv.to_string(),
            }
            .to_checkpoint();
            assert_eq!(cp.fingerprint, format!("resourceVersion={rv}"));
            assert_eq!(cp.position, 0, "{rv}: not parsed");
        }
    }
}
