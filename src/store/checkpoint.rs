//! Per-source checkpoints, written in the same transaction as the batch's effects.

use super::{Result, Tx};
use crate::domain::EventTime;
use rusqlite::{params, OptionalExtension};

/// How far a source has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Next record index to read.
    pub position: u64,
    /// Identifies the input the position belongs to (for files: size and a content hash).
    pub fingerprint: String,
}

impl Tx<'_> {
    /// The checkpoint of a source.
    pub fn checkpoint(&self, source: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .query_one(
                "SELECT position, fingerprint FROM checkpoints WHERE source = ?1",
                [source],
                |r| {
                    Ok(Checkpoint {
                        position: r.get::<_, i64>(0)? as u64,
                        fingerprint: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Advances a source's checkpoint.
    pub fn set_checkpoint(&self, source: &str, cp: &Checkpoint, at: EventTime) -> Result<()> {
        self.exec(
            "INSERT INTO checkpoints (source, position, fingerprint, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET position = excluded.position, fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
            params![source, cp.position as i64, cp.fingerprint, at.0],
        )?;
        Ok(())
    }
}
