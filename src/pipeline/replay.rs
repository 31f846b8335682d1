//! Replay: the daemon's pipeline on files, resumable from per-file checkpoints.

use super::{Pipeline, PipelineError, Stats};
use crate::domain::Observation;
use crate::sources::activity_log::Prefilter;
use crate::sources::replay::{ReplayError, ReplayFile};
use crate::sources::{Decoded, SkipReason};
use crate::store::Checkpoint;
use std::path::PathBuf;

/// Replay failures: unreadable input or a store failure. Bad records are not errors.
#[derive(Debug, thiserror::Error)]
pub enum ReplayRunError {
    /// An input file could not be read; nothing from any file was applied.
    #[error(transparent)]
    Input(#[from] ReplayError),
    /// The store failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// A record that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord {
    /// Input file as given.
    pub input: String,
    /// Record index in the file (0-based).
    pub index: u64,
    /// Line where it starts (1-based).
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// What a replay did, for people and scripts.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Files replayed.
    pub files: Vec<PathBuf>,
    /// Records found in the files.
    pub records: u64,
    /// Batch counts.
    pub stats: Stats,
    /// Malformed records (all of them; printing may cap).
    pub malformed: Vec<MalformedRecord>,
    /// Operations still waiting for a partner phase after the run.
    pub pending_operations: u64,
}

/// Replays files in order. Every file is opened before anything is applied, so an unreadable
/// file leaves the store untouched.
pub fn run(
    pipeline: &mut Pipeline<'_>,
    paths: &[PathBuf],
    cluster: &str,
) -> Result<ReplaySummary, ReplayRunError> {
    let files = paths
        .iter()
        .map(|p| ReplayFile::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let batch_size = pipeline.config.pipeline.batch_size as u64;
    let prefilter = Prefilter::default();
    let mut summary = ReplaySummary {
        files: paths.to_vec(),
        ..Default::default()
    };
    for file in &files {
        let source = format!("replay:{}", file.canonical.display());
        let fingerprint = file.fingerprint.clone();
        let start = {
            let tx = pipeline.store().read().map_err(PipelineError::from)?;
            match tx.checkpoint(&source).map_err(PipelineError::from)? {
                Some(cp) if cp.fingerprint == fingerprint => cp.position,
                Some(_) => {
                    tracing::warn!(file = %file.display, "file content changed since its checkpoint: replaying it from the start");
                    0
                }
                None => 0,
            }
        };
        let span = tracing::info_span!("replay_file", file = %file.display);
        let _g = span.enter();
        let mut batch: Vec<Observation> = Vec::new();
        let mut consumed = 0u64;
        let mut flushed = start;
        let mut file_stats = Stats::default();
        let mut records = file.records(cluster, &prefilter);
        for rec in records.by_ref() {
            summary.records += 1;
            consumed = rec.index + 1;
            if rec.index < start {
                file_stats.skip(SkipReason::BeforeCheckpoint);
                continue;
            }
            match rec.decoded {
                Decoded::Observation(o) => batch.push(o),
                Decoded::Skipped(r) => file_stats.skip(r),
                Decoded::Malformed(problem) => {
                    tracing::warn!(file = %file.display, record = rec.index, line = rec.line, %problem, "skipped malformed record");
                    summary.malformed.push(MalformedRecord {
                        input: file.display.clone(),
                        index: rec.index,
                        line: rec.line,
                        problem,
                    });
                }
            }
            // Batches are fixed windows of record indexes, not of observations: a run resumed
            // from a checkpoint then cuts exactly the batches an uninterrupted run cuts, so
            // the findings (evaluated per batch) come out identical.
            if consumed.is_multiple_of(batch_size) {
                let cp = Checkpoint {
                    position: consumed,
                    fingerprint: fingerprint.clone(),
                };
                let s = pipeline.apply_batch(std::mem::take(&mut batch), Some((&source, &cp)))?;
                file_stats.merge(&s);
                flushed = consumed;
            }
        }
        if consumed > flushed {
            let cp = Checkpoint {
                position: consumed,
                fingerprint: fingerprint.clone(),
            };
            let s = pipeline.apply_batch(std::mem::take(&mut batch), Some((&source, &cp)))?;
            file_stats.merge(&s);
        }
        if let Some(e) = records.take_error() {
            // What was read is committed with its checkpoint; a rerun continues from there.
            return Err(e.into());
        }
        tracing::info!(
            file = %file.display,
            applied = file_stats.applied,
            opened = file_stats.opened,
            resolved = file_stats.resolved,
            "replayed file"
        );
        summary.stats.merge(&file_stats);
    }
    let tx = pipeline.store().read().map_err(PipelineError::from)?;
    summary.pending_operations = tx.pending_count().map_err(PipelineError::from)?;
    Ok(summary)
}
