//! Replay: the daemon's pipeline on files, resumable from per-file checkpoints.
//!
//! A file's checkpoint is a byte offset on a record boundary plus a hash of every byte before
//! it (see `sources::replay::Position`): a file that grew is continued where the last replay
//! stopped, with record numbers and lines continuing too; a file whose bytes before the
//! checkpoint changed (rewritten, truncated) is replayed from the start, with a warning.

use super::{Pipeline, PipelineError, Stats};
use crate::domain::Observation;
use crate::sources::activity_log::Prefilter;
use crate::sources::replay::{Content, Position, ReplayError, ReplayFile, Resume};
use crate::sources::{Decoded, SkipReason};
use crate::store::Checkpoint;
use std::fmt;
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

/// Something about a whole file that its reader should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileIssue {
    /// The file holds nothing but white space.
    Empty,
    /// The file holds bytes but no JSON value or YAML document (a binary, another format).
    /// It is not checkpointed, so content written there later is replayed.
    NotJson,
    /// The last bytes start a record the writer has not finished; they are read next time.
    Unfinished {
        /// How many bytes.
        bytes: u64,
    },
    /// The file no longer matches its checkpoint; it was replayed from the start.
    Rewritten {
        /// Why it does not match.
        reason: String,
    },
}

/// A file-level warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWarning {
    /// Input file as given.
    pub input: String,
    /// What is wrong.
    pub issue: FileIssue,
}

impl FileWarning {
    /// Short name for scripts: `empty`, `not_json`, `unfinished`, `rewritten`.
    pub fn kind(&self) -> &'static str {
        match self.issue {
            FileIssue::Empty => "empty",
            FileIssue::NotJson => "not_json",
            FileIssue::Unfinished { .. } => "unfinished",
            FileIssue::Rewritten { .. } => "rewritten",
        }
    }

    /// Whether `replay --strict` fails on it: input that was not all read as good records.
    /// A rewritten file is not: it was replayed in full.
    pub fn fails_strict(&self) -> bool {
        !matches!(self.issue, FileIssue::Rewritten { .. })
    }
}

impl fmt::Display for FileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match &self.issue {
            FileIssue::Empty => write!(f, "{input} is empty: nothing to replay"),
            FileIssue::NotJson => write!(
                f,
                "{input} holds no JSON or YAML records (a binary or another format?): nothing replayed, and it is not marked as read"
            ),
            FileIssue::Unfinished { bytes } => write!(
                f,
                "{bytes} bytes at the end of {input} look unfinished; replay again when the writer is done"
            ),
            FileIssue::Rewritten { reason } => write!(
                f,
                "{input} changed since its last replay ({reason}): replayed it from the start"
            ),
        }
    }
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
    /// File-level warnings, in file order.
    pub warnings: Vec<FileWarning>,
}

impl ReplaySummary {
    /// Problems `replay --strict` fails on: malformed records, empty or non-JSON files and
    /// unfinished tails.
    pub fn strict_problems(&self) -> usize {
        self.malformed.len() + self.warnings.iter().filter(|w| w.fails_strict()).count()
    }
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
    let mut summary = ReplaySummary {
        files: paths.to_vec(),
        ..Default::default()
    };
    for file in &files {
        replay_file(pipeline, file, cluster, &mut summary)?;
    }
    let tx = pipeline.store().read().map_err(PipelineError::from)?;
    summary.pending_operations = tx.pending_count().map_err(PipelineError::from)?;
    Ok(summary)
}

fn warn(summary: &mut ReplaySummary, file: &ReplayFile, issue: FileIssue) {
    let w = FileWarning {
        input: file.display.clone(),
        issue,
    };
    tracing::warn!(file = %file.display, "{w}");
    summary.warnings.push(w);
}

/// Records read per batch, in units of `batch_size`, when few of them change anything.
const NOISE_PER_BATCH: u64 = 32;

/// Applies one batch; its checkpoint (when there is one) commits with its effects.
fn flush(
    pipeline: &mut Pipeline<'_>,
    source: &str,
    batch: &mut Vec<Observation>,
    checkpoint: Option<&Position>,
    stats: &mut Stats,
) -> Result<(), PipelineError> {
    if batch.is_empty() && checkpoint.is_none() {
        return Ok(());
    }
    let cp = checkpoint.map(|p| Checkpoint {
        position: p.offset,
        fingerprint: p.fingerprint(),
    });
    let s = pipeline.apply_batch(std::mem::take(batch), cp.as_ref().map(|c| (source, c)))?;
    stats.merge(&s);
    Ok(())
}

fn replay_file(
    pipeline: &mut Pipeline<'_>,
    file: &ReplayFile,
    cluster: &str,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayRunError> {
    let batch_size = pipeline.config.pipeline.batch_size as u64;
    let prefilter = Prefilter::default();
    let source = format!("replay:{}", file.canonical.display());
    let stored = {
        let tx = pipeline.store().read().map_err(PipelineError::from)?;
        tx.checkpoint(&source).map_err(PipelineError::from)?
    };
    let from = match file.resume(
        stored
            .as_ref()
            .map(|c| (c.position, c.fingerprint.as_str())),
    )? {
        Resume::Start => Position::default(),
        Resume::Continue(p) => p,
        Resume::Restart(why) => {
            let reason = why.to_string();
            warn(summary, file, FileIssue::Rewritten { reason });
            Position::default()
        }
    };
    let span = tracing::info_span!("replay_file", file = %file.display, offset = from.offset);
    let _g = span.enter();
    let mut batch: Vec<Observation> = Vec::new();
    let mut last: Option<Position> = None;
    let mut unflushed = false;
    let mut file_stats = Stats::default();
    let malformed_before = summary.malformed.len();
    let mut read_in_batch = 0u64;
    let mut records = file.records_from(cluster, &prefilter, from);
    while let Some(rec) = records.next() {
        summary.records += 1;
        last = Some(rec.after);
        unflushed = true;
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
        // A batch closes on changes, not on records: a hub capture is mostly noise, and a
        // commit per 2 000 records of it would cost more than the records. The record bound
        // keeps the checkpoint moving through long stretches of noise. Findings do not
        // depend on where batches are cut (tests/adversarial.rs). Until a JSON value was
        // seen the input may be a binary: its garbage is not checkpointed.
        read_in_batch += 1;
        if batch.len() as u64 >= batch_size || read_in_batch >= batch_size * NOISE_PER_BATCH {
            read_in_batch = 0;
            let cp = last.filter(|_| records.saw_values());
            flush(pipeline, &source, &mut batch, cp.as_ref(), &mut file_stats)?;
            unflushed = false;
        }
    }
    let content = records.content();
    if unflushed {
        let cp = last.filter(|_| content == Content::Values);
        flush(pipeline, &source, &mut batch, cp.as_ref(), &mut file_stats)?;
    }
    if let Some(e) = records.take_error() {
        // What was read is committed with its checkpoint; a rerun continues from there.
        return Err(e.into());
    }
    let skipped = records.skipped_before_checkpoint();
    if skipped > 0 {
        summary.records += skipped;
        *file_stats
            .skipped
            .entry(SkipReason::BeforeCheckpoint)
            .or_default() += skipped;
    }
    match content {
        Content::Values => {}
        Content::Empty => warn(summary, file, FileIssue::Empty),
        Content::NotJson => {
            // One file-level warning says it better than a malformed record per stretch.
            summary.malformed.truncate(malformed_before);
            warn(summary, file, FileIssue::NotJson);
        }
    }
    let bytes = records.unfinished_bytes();
    if bytes > 0 {
        warn(summary, file, FileIssue::Unfinished { bytes });
    }
    tracing::info!(
        file = %file.display,
        applied = file_stats.applied,
        opened = file_stats.opened,
        resolved = file_stats.resolved,
        "replayed file"
    );
    summary.stats.merge(&file_stats);
    Ok(())
}
