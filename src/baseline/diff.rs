//! Observed state against the baseline, fact by fact, with the finding that tracks each difference.

use crate::domain::FactKind;
use crate::engine::diff::diff;
use crate::engine::{drift, DiffEntry, DriftChange, Status};
use crate::store::{StoreError, Tx};
use serde::Serialize;
use serde_json::Value;

/// One fact whose observed state differs from its approved one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Unapproved, missing or changed.
    pub change: DriftChange,
    /// Fact kind.
    pub kind: FactKind,
    /// Fact key.
    pub key: String,
    /// Id of the drift finding for this fact (`approve` takes it).
    pub finding_id: String,
    /// That finding's status, `None` when none was opened (e.g. before the first baseline).
    pub finding_status: Option<Status>,
    /// Approved value.
    pub expected: Option<Value>,
    /// Observed value.
    pub actual: Option<Value>,
    /// Field-level differences (changed facts).
    pub diff: Vec<DiffEntry>,
}

/// Every difference, by kind and key. Facts never observed are not "missing": their
/// absence is not known (as the engine judges it).
pub(super) fn differences(tx: &Tx<'_>) -> Result<Vec<Difference>, StoreError> {
    let mut out = Vec::new();
    for f in tx.facts()?.into_iter().filter(|f| f.kind.is_baselined()) {
        let base = tx.baseline_value(f.kind, &f.key)?;
        let (change, d) = match (&f.value, &base) {
            (Some(_), None) => (DriftChange::Unapproved, Vec::new()),
            (None, Some(_)) => (DriftChange::Missing, Vec::new()),
            (Some(o), Some(b)) if o != b => (DriftChange::Changed, diff(b, o)),
            _ => continue,
        };
        let finding_id = drift::finding_id(f.kind, &f.key);
        let finding_status = tx.finding(&finding_id)?.map(|x| x.status);
        out.push(Difference {
            change,
            kind: f.kind,
            key: f.key,
            finding_id,
            finding_status,
            expected: base,
            actual: f.value,
            diff: d,
        });
    }
    Ok(out)
}
