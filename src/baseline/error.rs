//! Baseline service errors: each names the input and what to do.

use super::MIN_PREFIX;
use crate::store::StoreError;

/// A finding an ambiguous prefix matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Full id.
    pub id: String,
    /// Its title.
    pub title: String,
}

fn candidate_list(c: &[Candidate], more: bool) -> String {
    let mut s: String = c
        .iter()
        .map(|c| format!("\n  {}  {}", c.id, c.title))
        .collect();
    if more {
        s.push_str("\n  … and more");
    }
    s
}

/// Baseline service failures; each message names the input and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No finding has this id or id prefix.
    #[error("no finding with id {0:?}: list them with `accessdrift findings --status all`")]
    NotFound(String),
    /// The prefix is too short to name a finding deliberately.
    #[error("id prefix {0:?} is too short: give at least {MIN_PREFIX} characters of the id shown by `accessdrift findings`")]
    PrefixTooShort(String),
    /// The prefix matches several findings.
    #[error("id prefix {prefix:?} matches several findings; give more characters:{}", candidate_list(.candidates, *.more))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// Up to [`super::MAX_CANDIDATES`] of the matches.
        candidates: Vec<Candidate>,
        /// Whether there were more matches than listed.
        more: bool,
    },
    /// Only drift findings can be approved.
    #[error("finding {id} is a {kind} finding: approve changes the baseline, which only drift findings are about; acknowledge it with `accessdrift ack {id}`")]
    NotDrift {
        /// Finding id.
        id: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The finding is closed: there is nothing to act on.
    #[error("finding {id} is {status}, not open: nothing to {action}")]
    NotActive {
        /// Finding id.
        id: String,
        /// Its status.
        status: &'static str,
        /// `approve` or `acknowledge`.
        action: &'static str,
    },
    /// `--revision` was given with several ids.
    #[error("--revision pins one finding: give exactly one ID with it (got {0})")]
    RevisionNeedsOneId(usize),
    /// The finding changed since the revision the caller saw.
    #[error("finding {id} is at revision {current}, not {pinned}: it changed since you looked (now: {title}); review it with `accessdrift findings --json` and approve again")]
    RevisionMismatch {
        /// Finding id.
        id: String,
        /// Revision the caller pinned.
        pinned: u64,
        /// Revision stored.
        current: u64,
        /// Current title.
        title: String,
    },
    /// The observed fact no longer holds the value the finding shows.
    #[error("finding {id} shows {shown} but the observed fact is now {now}: it changed after the finding was written; review it with `accessdrift baseline diff` and approve again")]
    FactChanged {
        /// Finding id.
        id: String,
        /// The value the finding shows (`actual`).
        shown: String,
        /// The value observed now.
        now: String,
    },
    /// Nothing to export.
    #[error("the database has no baseline to export: create one with `accessdrift baseline capture` or `accessdrift baseline import FILE`")]
    NoBaseline,
    /// The file is not a baseline export.
    #[error("baseline file {file}: {problem}")]
    BadFile {
        /// The file as named by the caller.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// One entry of the file is invalid (boxed: the error type stays small on the happy path).
    #[error(transparent)]
    BadEntry(Box<EntryError>),
    /// The import would drop most of the baseline, which is more often a mistake than a plan.
    #[error("baseline file {file}: importing it would remove {removes} of the {current} approved entries (more than half); preview with `--dry-run` and pass `--force` if that is intended")]
    WouldRemoveMost {
        /// The file.
        file: String,
        /// Entries it would remove.
        removes: usize,
        /// Entries approved now.
        current: usize,
    },
    /// Rollback to a version that does not exist.
    #[error("baseline version {version} does not exist{}", match .latest { Some(l) => format!(" (versions are 1 to {l})"), None => " (there is no baseline yet)".to_string() })]
    UnknownVersion {
        /// The version asked for.
        version: i64,
        /// The newest version.
        latest: Option<i64>,
    },
    /// Rollback to the version in force.
    #[error("baseline version {0} is the current one: nothing to roll back")]
    AlreadyCurrent(i64),
}

/// An invalid entry of a baseline file, naming the entry, its kind and key, and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("baseline file {file}: entries[{index}].{field} ({kind} {key:?}): {problem}")]
pub struct EntryError {
    /// The file.
    pub file: String,
    /// 0-based index in `entries`.
    pub index: usize,
    /// Path of the field in the entry (`kind`, `key`, `value.subjects[0].name`).
    pub field: String,
    /// The entry's kind as written.
    pub kind: String,
    /// The entry's key as written.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}
