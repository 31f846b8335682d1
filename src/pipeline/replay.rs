//! Replay: the daemon's pipeline on files, resumable from per-file checkpoints.
//!
//! A file's checkpoint is a byte offset on a record boundary plus a hash of every byte before
//! it (see `sources::replay::Position`): a file that grew is continued where the last replay
//! stopped, with record numbers and lines continuing too; a file whose bytes before the
//! checkpoint changed (rewritten, truncated) is replayed from the start, with a warning.

use super::writer::Writer;
use super::{Pipeline, PipelineError, Stats};
use crate::domain::{ChangeOp, EventTime, FactKind};
use crate::ingest::{
    ingest_span, Batcher, Limits, Position, RelistScope, Reset, SkipReason, Took, WriterError,
};
use crate::sources::kubernetes::LISTED_OPERATION;
use crate::sources::replay::{self as file_source, Content, ReplayError, ReplayFile, Resume};
use crate::sources::router::RecordRouter;
use std::collections::{BTreeMap, HashSet};
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
    /// A batch could not be committed (rolled back; a rerun reads it again).
    #[error(transparent)]
    Writer(#[from] WriterError),
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
    /// `--relist` was asked for but the file's Lists were not read whole: they only upserted.
    RelistNotApplied {
        /// Why.
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
            FileIssue::RelistNotApplied { .. } => "relist_not_applied",
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
            FileIssue::RelistNotApplied { reason } => write!(
                f,
                "{input}: --relist not applied ({reason}): its Lists only upserted, nothing was deleted; fix the file and replay it again"
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
    run_with(pipeline, paths, cluster, Mode::Upsert)
}

/// How `kind: List` dumps apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A List only upserts its items (the default).
    #[default]
    Upsert,
    /// A List is a relist of the kinds it holds within the cluster, as the live watch applies
    /// one: facts of those kinds that no List of the file holds are deleted, in the file's last
    /// transaction (`replay --relist`).
    Relist,
}

/// [`run`], choosing how `kind: List` dumps apply.
pub fn run_with(
    pipeline: &mut Pipeline<'_>,
    paths: &[PathBuf],
    cluster: &str,
    mode: Mode,
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
        replay_file(pipeline, file, cluster, mode, &mut summary)?;
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
const NOISE_PER_BATCH: usize = 32;

/// A file position as the writer commits it.
fn file_position(p: &file_source::Position) -> Position {
    Position::File {
        offset: p.offset,
        fingerprint: p.fingerprint(),
    }
}

/// Commits what the batcher holds through the writer (the daemon's path).
fn commit(
    writer: &mut Writer<'_, '_>,
    batcher: &mut Batcher,
    stats: &mut Stats,
) -> Result<(), WriterError> {
    if let Some(batch) = batcher.take(Vec::new()) {
        stats.merge(&writer.commit(batch)?);
    }
    Ok(())
}

fn replay_file(
    pipeline: &mut Pipeline<'_>,
    file: &ReplayFile,
    cluster: &str,
    mode: Mode,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayRunError> {
    let batch_size = pipeline.config.pipeline.batch_size;
    let router = RecordRouter::new(crate::sources::kube_audit::Clusters::from_config(
        &pipeline.config.clusters,
    ));
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
        Resume::Start => file_source::Position::default(),
        Resume::Continue(p) => p,
        Resume::Restart(why) => {
            let reason = why.to_string();
            warn(summary, file, FileIssue::Rewritten { reason });
            file_source::Position::default()
        }
    };
    let span = tracing::info_span!("replay_file", file = %file.display, offset = from.offset);
    let _g = span.enter();
    // A batch closes on changes, not on records: a hub capture is mostly noise, and a commit
    // per 2 000 records of it would cost more than the records. The record bound keeps the
    // checkpoint moving through long stretches of noise. Findings do not depend on where
    // batches are cut (tests/adversarial.rs).
    let mut batcher = Batcher::new(
        source.clone(),
        "replay",
        Limits {
            max_inputs: batch_size * NOISE_PER_BATCH,
            max_observations: batch_size,
            max_wait: None,
            commit_position_alone: true,
        },
    );
    let mut writer = Writer::new(pipeline);
    let mut file_stats = Stats::default();
    let malformed_before = summary.malformed.len();
    // With --relist: the keys each List held, per kind (a rerun of a half-read file must
    // list everything again, so no position is committed before the file's end).
    let mut listed: BTreeMap<FactKind, HashSet<String>> = BTreeMap::new();
    let relist = mode == Mode::Relist;
    let mut last: Option<file_source::Position> = None;
    let mut unflushed = false;
    let mut records = file.records_from(cluster, &router, from);
    while let Some(rec) = records.next() {
        summary.records += 1;
        batcher.span(|| ingest_span(&source));
        let took = batcher.push(rec.decoded, |o| {
            if relist && o.prov.operation.starts_with(LISTED_OPERATION) {
                if let Some(ChangeOp::Upsert(f)) = &o.candidate {
                    listed.entry(f.kind).or_default().insert(f.key.clone());
                }
            }
        });
        match took {
            Took::Observation => {}
            Took::Skipped(r) => file_stats.skip(r),
            Took::Malformed(problem) => {
                crate::events::RecordMalformed {
                    source: "replay",
                    input: &file.display,
                    record: rec.index,
                    line: Some(rec.line),
                    event: None,
                    problem: &problem,
                }
                .emit();
                summary.malformed.push(MalformedRecord {
                    input: file.display.clone(),
                    index: rec.index,
                    line: rec.line,
                    problem,
                });
            }
        }
        // The position is made (a hash's hex) only when a batch commits, not per record.
        last = Some(rec.after);
        unflushed = true;
        batcher.input_done(None);
        if batcher.is_full() {
            // Until a JSON value was seen the input may be a binary: its garbage is not
            // checkpointed. With --relist, only the file's end is (a rerun lists it whole).
            if records.saw_values() && !relist {
                batcher.set_position(last.as_ref().map(file_position));
            }
            commit(&mut writer, &mut batcher, &mut file_stats)?;
            unflushed = false;
        }
    }
    let content = records.content();
    // Only what was read since the last commit needs one (a batch that ended exactly on the
    // last record was committed with its position already).
    if content == Content::Values && (unflushed || relist) {
        batcher.set_position(last.as_ref().map(file_position));
    }
    let malformed_here = summary.malformed.len() - malformed_before;
    let resets = if listed.is_empty() {
        Vec::new()
    } else if malformed_here > 0 || records.skipped_before_checkpoint() > 0 {
        // A malformed item has no key, and a file read from a checkpoint is read in part:
        // either way the List seen is not the whole List, and must not delete anything.
        let reason = if malformed_here > 0 {
            format!("{malformed_here} malformed record(s)")
        } else {
            "it was read from a checkpoint, not whole".to_string()
        };
        warn(summary, file, FileIssue::RelistNotApplied { reason });
        Vec::new()
    } else {
        let at = EventTime::now();
        listed
            .into_iter()
            .map(|(kind, seen)| {
                Reset::Relist(RelistScope {
                    kind,
                    key_prefix: format!("{cluster}/"),
                    owner_input: None,
                    input: file.display.clone(),
                    seen,
                    at,
                })
            })
            .collect()
    };
    if let Some(batch) = batcher.take(resets) {
        file_stats.merge(&writer.commit(batch)?);
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
