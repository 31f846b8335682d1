//! The exported baseline file, and the plan an import of it makes against the current baseline.

use super::{BaselineError, EntryError, Result};
use crate::domain::{EventTime, FactKind};
use crate::sources::canonical::{canonical_key, canonicalise, CanonicalError};
use crate::store::BaselineEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Format tag of exported baseline files.
pub const EXPORT_FORMAT: &str = "accessdrift-baseline/v1";

/// The exported file: stable, sorted JSON to review and keep in git.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Approved facts by kind and key.
    pub entries: Vec<ExportEntry>,
}

/// One approved fact in the exported file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEntry {
    /// Fact kind (`role_assignment`, …).
    pub kind: String,
    /// Fact key.
    pub key: String,
    /// Canonical value.
    pub value: Value,
    /// Who approved it; informational, an import records the importing user instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<EventTime>,
    /// The finding it was approved from; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_finding: Option<String>,
}

impl ExportFile {
    /// The file for these entries.
    pub fn from_entries(entries: &[BaselineEntry]) -> ExportFile {
        ExportFile {
            format: EXPORT_FORMAT.to_string(),
            entries: entries
                .iter()
                .map(|e| ExportEntry {
                    kind: e.kind.as_str().to_string(),
                    key: e.key.clone(),
                    value: e.value.clone(),
                    approved_by: Some(e.approved_by.clone()),
                    approved_at: Some(e.approved_at),
                    from_finding: e.from_finding.clone(),
                })
                .collect(),
        }
    }
}

/// Parses, validates and canonicalises a file; entries come out approved by `by` at `at`
/// (what the file says about approvers is history, not authority).
pub(super) fn parse(file: &str, text: &str, by: &str, at: EventTime) -> Result<Vec<BaselineEntry>> {
    let bad = |problem: String| BaselineError::BadFile {
        file: file.to_string(),
        problem,
    };
    let parsed: ExportFile = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "not a baseline export ({e}); expected {{\"format\": \"{EXPORT_FORMAT}\", \"entries\": […]}} as written by `accessdrift baseline export`"
        ))
    })?;
    if parsed.format != EXPORT_FORMAT {
        return Err(bad(format!(
            "field `format` is {:?}; this accessdrift reads {EXPORT_FORMAT:?}",
            parsed.format
        )));
    }
    let entry_err = |index: usize, e: &ExportEntry, field: &str, problem: String| {
        BaselineError::BadEntry(Box::new(EntryError {
            file: file.to_string(),
            index,
            field: field.to_string(),
            kind: e.kind.clone(),
            key: e.key.clone(),
            problem,
        }))
    };
    // Kinds first, across the file: an unknown kind (a file from a newer accessdrift, or a
    // typo) says more about the file than the value problems it would otherwise hide behind.
    let mut kinds = Vec::with_capacity(parsed.entries.len());
    for (index, e) in parsed.entries.iter().enumerate() {
        let kind: FactKind = e
            .kind
            .parse()
            .map_err(|err: crate::domain::UnknownFactKind| {
                entry_err(index, e, "kind", err.to_string())
            })?;
        kinds.push(kind);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(parsed.entries.len());
    for (index, (e, kind)) in parsed.entries.iter().zip(kinds).enumerate() {
        let entry_err = |field: &str, problem: String| entry_err(index, e, field, problem);
        let canon_err = |err: CanonicalError| {
            let field = match err.field.as_str() {
                "key" | "value" => err.field.clone(),
                f => format!("value.{f}"),
            };
            entry_err(&field, err.problem)
        };
        let value = canonicalise(kind, &e.value).map_err(canon_err)?;
        let key = canonical_key(kind, &e.key, &value).map_err(canon_err)?;
        if !seen.insert((kind, key.clone())) {
            return Err(entry_err(
                "key",
                format!(
                    "{kind} {key:?} appears twice (keys are compared canonically: ids lower-cased)"
                ),
            ));
        }
        out.push(BaselineEntry {
            kind,
            key,
            value,
            version: 0,
            approved_by: by.to_string(),
            approved_at: at,
            from_finding: None,
        });
    }
    Ok(out)
}

/// An approved value an import replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// The entry approved now.
    pub old: BaselineEntry,
    /// The entry from the file.
    pub new: BaselineEntry,
}

/// What an import changes, by kind and key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportPlan {
    /// Entries the baseline lacks.
    pub adds: Vec<BaselineEntry>,
    /// Entries whose approved value changes.
    pub replaces: Vec<Replacement>,
    /// Entries the file lacks.
    pub removes: Vec<BaselineEntry>,
    /// Entries the file leaves as they are.
    pub unchanged: usize,
    /// Entries approved before the import.
    pub current: usize,
}

impl ImportPlan {
    /// Compares the file's entries with the current baseline.
    pub fn new(current: &[BaselineEntry], file: Vec<BaselineEntry>) -> ImportPlan {
        let mut now: BTreeMap<(FactKind, String), &BaselineEntry> = current
            .iter()
            .map(|e| ((e.kind, e.key.clone()), e))
            .collect();
        let mut plan = ImportPlan {
            current: current.len(),
            ..ImportPlan::default()
        };
        let mut file = file;
        file.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        for e in file {
            match now.remove(&(e.kind, e.key.clone())) {
                None => plan.adds.push(e),
                Some(old) if old.value == e.value => plan.unchanged += 1,
                Some(old) => plan.replaces.push(Replacement {
                    old: old.clone(),
                    new: e,
                }),
            }
        }
        plan.removes = now.into_values().cloned().collect();
        plan
    }

    /// True when the import changes nothing.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.replaces.is_empty() && self.removes.is_empty()
    }
}
