//! The one batcher every source cuts its input with: decoded records in, [`Batch`]es out.
//!
//! A source reads its inputs (a file's records, watch events, Event Hubs events), decodes each
//! into [`Decoded`]s and hands them here; the batcher keeps the observations, counts what was
//! read, skipped and malformed (the same counters for every source), carries the position of
//! the last input, and says when the batch is full or due. Findings never depend on where
//! batches are cut, so each source only chooses the limits.

use super::{ingest_span, Decoded, Position, Reset, SkipReason};
use crate::domain::Observation;
use std::time::Duration;
use tokio::time::Instant;

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many inputs (records, watch events, hub events) per batch.
    pub max_inputs: usize,
    /// At most this many observations (records that may change something) per batch.
    pub max_observations: usize,
    /// Longest the first input of a batch waits for the batch to fill (live sources).
    pub max_wait: Option<Duration>,
    /// Whether a batch holding only a position is worth a commit (the position moves through
    /// inputs that change nothing: a hub's foreign categories, a file's noise). A watch's
    /// resourceVersion is not: it is read again at the next change anyway.
    pub commit_position_alone: bool,
}

/// One unit of work for the store-writer: observations, the position after them and the
/// reset a completed listing implies, under the batch's `ingest` span.
#[derive(Debug)]
pub struct Batch {
    /// The sending source (its checkpoint name).
    pub source: String,
    /// Changes, in order.
    pub observations: Vec<Observation>,
    /// The source's position after these observations, committed with them.
    pub position: Option<Position>,
    /// Set on the batch that ends a listing: missing facts of each scope are deleted in it.
    pub resets: Vec<Reset>,
    /// Inputs the batch was cut from (`messaging.batch.message_count`).
    pub inputs: u64,
    /// The batch's root span (`ingest`): the writer's `apply` span is its child, so a batch is
    /// one trace from the source to the findings it opens.
    pub span: tracing::Span,
}

/// What one decoded record became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Took {
    /// An observation, kept for the batch.
    Observation,
    /// Understood and irrelevant; counted.
    Skipped(SkipReason),
    /// Not understood; counted. The caller logs it with its location
    /// ([`crate::events::RecordMalformed`]).
    Malformed(String),
}

/// Gathers one source's decoded records into batches.
#[derive(Debug)]
pub struct Batcher {
    source: String,
    metrics_source: String,
    limits: Limits,
    observations: Vec<Observation>,
    position: Option<Position>,
    inputs: u64,
    span: Option<tracing::Span>,
    deadline: Option<Instant>,
    /// Records read, skipped (by reason) and malformed since the counters were last moved:
    /// counted here and added to the metrics once per batch, not once per record (a label
    /// lookup per record costs more than decoding a skipped one).
    read: u64,
    skipped: [u64; SKIP_REASONS],
    malformed: u64,
}

/// How many [`SkipReason`]s there are (the counters are indexed by discriminant).
const SKIP_REASONS: usize = SkipReason::ALL.len();

impl Batcher {
    /// A batcher for `source` (checkpoint name) whose records are counted under
    /// `metrics_source` (the low-cardinality `source` label).
    pub fn new(
        source: impl Into<String>,
        metrics_source: impl Into<String>,
        limits: Limits,
    ) -> Self {
        Batcher {
            source: source.into(),
            metrics_source: metrics_source.into(),
            limits,
            observations: Vec::new(),
            position: None,
            inputs: 0,
            span: None,
            deadline: None,
            read: 0,
            skipped: [0; SKIP_REASONS],
            malformed: 0,
        }
    }

    /// The checkpoint name of the source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `ingest` span of the batch being gathered, opened by `open` with its first input.
    pub fn span(&mut self, open: impl FnOnce() -> tracing::Span) -> &tracing::Span {
        self.span.get_or_insert_with(open)
    }

    /// Ends the trace of a batch that holds nothing to commit (a skipped object's trace is
    /// its normalisation alone).
    pub fn end_empty_trace(&mut self) {
        // Nothing may come to commit for a while: the counters move now.
        self.count();
        if self.observations.is_empty() {
            self.span = None;
        }
    }

    /// Takes one decoded record; `fix` adjusts an observation (its location, its time).
    pub fn push(&mut self, d: Decoded, fix: impl FnOnce(&mut Observation)) -> Took {
        self.read += 1;
        match d {
            Decoded::Observation(mut o) => {
                fix(&mut o);
                self.observations.push(o);
                Took::Observation
            }
            Decoded::Skipped(r) => {
                self.skipped[r as usize] += 1;
                Took::Skipped(r)
            }
            Decoded::Malformed(problem) => {
                self.malformed += 1;
                Took::Malformed(problem)
            }
        }
    }

    /// Adds what was read, skipped and malformed since the last call to the metrics.
    fn count(&mut self) {
        if self.read == 0 {
            return;
        }
        let m = crate::metrics::global();
        let source = &self.metrics_source;
        m.records_read(source, std::mem::take(&mut self.read));
        for (i, n) in self.skipped.iter_mut().enumerate() {
            if *n > 0 {
                m.record_skipped(source, SkipReason::ALL[i].as_str(), std::mem::take(n));
            }
        }
        if self.malformed > 0 {
            m.records_malformed(source, std::mem::take(&mut self.malformed));
        }
    }

    /// One input is consumed; `position` is where the source stands after it.
    pub fn input_done(&mut self, position: Option<Position>) {
        self.inputs += 1;
        if position.is_some() {
            self.position = position;
        }
        if self.deadline.is_none() && self.worth_a_commit(false) {
            self.deadline = self.limits.max_wait.map(|w| Instant::now() + w);
        }
    }

    /// Sets (or, with `None`, forgets) the position the next batch commits: for a source that
    /// makes its position only when it commits (a file's hash), or that must not checkpoint
    /// what it read yet (a file that may be a binary).
    pub fn set_position(&mut self, position: Option<Position>) {
        self.position = position;
    }

    /// Observations held.
    pub fn len(&self) -> usize {
        self.observations.len()
    }

    /// Whether no observation is held.
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    /// Whether the batch has reached a limit.
    pub fn is_full(&self) -> bool {
        self.observations.len() >= self.limits.max_observations
            || self.inputs >= self.limits.max_inputs as u64
    }

    /// When the batch is due (live sources), if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn worth_a_commit(&self, reset: bool) -> bool {
        reset
            || !self.observations.is_empty()
            || (self.limits.commit_position_alone && self.position.is_some())
    }

    /// The batch to submit, or `None` when it holds nothing worth a commit; the batcher starts
    /// afresh either way.
    pub fn take(&mut self, resets: Vec<Reset>) -> Option<Batch> {
        self.count();
        self.deadline = None;
        let worth = self.worth_a_commit(!resets.is_empty());
        let span = self.span.take();
        let inputs = std::mem::take(&mut self.inputs);
        if !worth {
            self.position = None;
            return None;
        }
        let span = span.unwrap_or_else(|| ingest_span(&self.source));
        span.record("messaging.batch.message_count", inputs);
        Some(Batch {
            source: self.source.clone(),
            observations: std::mem::take(&mut self.observations),
            position: self.position.take(),
            resets,
            inputs,
            span,
        })
    }

    /// Drops everything held (a stream being rebuilt reads it again).
    pub fn clear(&mut self) {
        self.count();
        self.observations.clear();
        self.position = None;
        self.inputs = 0;
        self.span = None;
        self.deadline = None;
    }
}
