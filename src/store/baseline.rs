//! The baseline: approved facts, versioned, with who approved what and when.

use super::{json_col, Result, Tx};
use crate::domain::{EventTime, FactKind};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

/// One approved fact.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineEntry {
    /// Kind.
    pub kind: FactKind,
    /// Key.
    pub key: String,
    /// Approved canonical value.
    pub value: Value,
    /// Version that last set it.
    pub version: i64,
    /// Who approved it.
    pub approved_by: String,
    /// When (wall clock).
    pub approved_at: EventTime,
    /// The finding it was approved from, if any.
    pub from_finding: Option<String>,
}

/// One version of the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineVersion {
    /// Increasing number.
    pub version: i64,
    /// When.
    pub created_at: EventTime,
    /// Who.
    pub actor: String,
    /// `capture`, `approve`, `import`, `rollback`.
    pub action: String,
    /// Free text.
    pub note: String,
}

impl Tx<'_> {
    /// The approved value of a fact.
    pub fn baseline_value(&self, kind: FactKind, key: &str) -> Result<Option<Value>> {
        self.0
            .prepare_cached("SELECT value FROM baseline WHERE kind = ?1 AND key = ?2")?
            .query_row(params![kind.as_str(), key], |r| r.get::<_, String>(0))
            .optional()?
            .map(|v| json_col("baseline", key, &v))
            .transpose()
    }

    /// Every approved fact, by kind and key.
    pub fn baseline(&self) -> Result<Vec<BaselineEntry>> {
        let mut stmt = self.0.prepare(
            "SELECT kind, key, value, version, approved_by, approved_at, from_finding FROM baseline ORDER BY kind, key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, key, value, version, by, at, from) = r?;
            let kind = kind.parse().map_err(|e: crate::domain::UnknownFactKind| {
                super::StoreError::Corrupt {
                    table: "baseline",
                    key: key.clone(),
                    problem: e.to_string(),
                }
            })?;
            out.push(BaselineEntry {
                kind,
                value: json_col("baseline", &key, &value)?,
                key,
                version,
                approved_by: by,
                approved_at: EventTime(at),
                from_finding: from,
            });
        }
        Ok(out)
    }

    /// The newest baseline version, `None` before the first capture or import.
    pub fn baseline_version(&self) -> Result<Option<BaselineVersion>> {
        Ok(self.query_one(
                "SELECT version, created_at, actor, action, note FROM baseline_versions ORDER BY version DESC LIMIT 1",
                [],
                version_row,
            )
            .optional()?)
    }

    /// Every baseline version, oldest first: what `rollback` can return to.
    pub fn baseline_versions(&self) -> Result<Vec<BaselineVersion>> {
        let mut stmt = self.0.prepare(
            "SELECT version, created_at, actor, action, note FROM baseline_versions ORDER BY version",
        )?;
        let rows = stmt.query_map([], version_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// One baseline version, `None` when it never existed.
    pub fn baseline_version_info(&self, version: i64) -> Result<Option<BaselineVersion>> {
        Ok(self.query_one(
                "SELECT version, created_at, actor, action, note FROM baseline_versions WHERE version = ?1",
                [version],
                version_row,
            )
            .optional()?)
    }

    /// The approved values as they were right after `version` was written, by kind and key,
    /// rebuilt from the history: per fact, the last add/replace/remove at or before it.
    pub fn baseline_at(&self, version: i64) -> Result<Vec<(FactKind, String, Value)>> {
        let mut stmt = self.0.prepare(
            "SELECT kind, key, op, value FROM baseline_history WHERE version <= ?1 ORDER BY version, rowid",
        )?;
        let rows = stmt.query_map([version], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut state: std::collections::BTreeMap<(FactKind, String), Value> =
            std::collections::BTreeMap::new();
        for r in rows {
            let (kind, key, op, value) = r?;
            let kind: FactKind = kind.parse().map_err(|e: crate::domain::UnknownFactKind| {
                super::StoreError::Corrupt {
                    table: "baseline_history",
                    key: key.clone(),
                    problem: e.to_string(),
                }
            })?;
            match (op.as_str(), value) {
                ("remove", _) => {
                    state.remove(&(kind, key));
                }
                (_, Some(v)) => {
                    let v = json_col("baseline_history", &key, &v)?;
                    state.insert((kind, key), v);
                }
                (op, None) => {
                    return Err(super::StoreError::Corrupt {
                        table: "baseline_history",
                        key,
                        problem: format!("`{op}` row without a value"),
                    })
                }
            }
        }
        Ok(state.into_iter().map(|((k, key), v)| (k, key, v)).collect())
    }

    /// Opens a new baseline version; changes made with it are recorded in the history.
    pub fn new_baseline_version(
        &self,
        actor: &str,
        action: &str,
        note: &str,
        at: EventTime,
    ) -> Result<i64> {
        let next = self.baseline_version()?.map_or(1, |v| v.version + 1);
        self.exec(
            "INSERT INTO baseline_versions (version, created_at, actor, action, note) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![next, at.0, actor, action, note],
        )?;
        Ok(next)
    }

    /// Approves a value (or replaces the approved one). Returns false when it was already approved.
    pub fn approve(&self, version: i64, entry: &BaselineEntry) -> Result<bool> {
        let text = entry.value.to_string();
        let old: Option<String> = self
            .query_one(
                "SELECT value FROM baseline WHERE kind = ?1 AND key = ?2",
                params![entry.kind.as_str(), entry.key],
                |r| r.get(0),
            )
            .optional()?;
        if old.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        self.exec(
            "INSERT INTO baseline (kind, key, value, version, approved_by, approved_at, from_finding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                approved_by = excluded.approved_by, approved_at = excluded.approved_at, from_finding = excluded.from_finding",
            params![entry.kind.as_str(), entry.key, text, version, entry.approved_by, entry.approved_at.0, entry.from_finding],
        )?;
        self.exec(
            "INSERT INTO baseline_history (version, kind, key, op, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version, entry.kind.as_str(), entry.key, if old.is_some() { "replace" } else { "add" }, text],
        )?;
        Ok(true)
    }

    /// Removes a fact from the baseline (approving its absence). Returns whether it was there.
    pub fn unapprove(&self, version: i64, kind: FactKind, key: &str) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM baseline WHERE kind = ?1 AND key = ?2",
            params![kind.as_str(), key],
        )?;
        if n > 0 {
            self.exec(
                "INSERT INTO baseline_history (version, kind, key, op, value) VALUES (?1, ?2, ?3, 'remove', NULL)",
                params![version, kind.as_str(), key],
            )?;
        }
        Ok(n > 0)
    }
}

/// Reads `version, created_at, actor, action, note` of a `baseline_versions` row.
fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BaselineVersion> {
    Ok(BaselineVersion {
        version: r.get(0)?,
        created_at: EventTime(r.get(1)?),
        actor: r.get(2)?,
        action: r.get(3)?,
        note: r.get(4)?,
    })
}
