//! Findings: indexed columns for queries, the whole finding as JSON.

use super::{json_col, to_json, Result, StoreError, Tx};
use crate::engine::{Finding, Status};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::Value;

/// The part of a stored finding that decides its revision; the rest of the JSON is skipped.
#[derive(Deserialize)]
struct RevisionView {
    #[serde(default)]
    revision: u64,
    status: Status,
    expected: Option<Value>,
    actual: Option<Value>,
}

impl Tx<'_> {
    /// One finding by id.
    pub fn finding(&self, id: &str) -> Result<Option<Finding>> {
        self.0
            .prepare_cached("SELECT data FROM findings WHERE id = ?1")?
            .query_row([id], |r| r.get::<_, String>(0))
            .optional()?
            .map(|d| json_col("findings", id, &d))
            .transpose()
    }

    /// Findings, most severe and most recent first; `active_only` keeps open and acknowledged.
    pub fn findings(&self, active_only: bool) -> Result<Vec<Finding>> {
        let sql = if active_only {
            "SELECT id, data FROM findings WHERE status IN ('open', 'acknowledged')"
        } else {
            "SELECT id, data FROM findings"
        };
        let mut stmt = self.0.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: Vec<Finding> = Vec::new();
        for r in rows {
            let (id, data) = r?;
            out.push(json_col("findings", &id, &data)?);
        }
        out.sort_by(|a, b| {
            b.status
                .is_active()
                .cmp(&a.status.is_active())
                .then(b.severity.cmp(&a.severity))
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Inserts or replaces a finding and returns its revision: the stored one, plus one when
    /// expected, actual or status differ from what was stored (1 for a new finding). The
    /// revision in `f` is ignored, so no caller (the engine included) has to maintain it.
    pub fn put_finding(&self, f: &Finding) -> Result<u64> {
        let stored: Option<RevisionView> = self
            .0
            .prepare_cached("SELECT data FROM findings WHERE id = ?1")?
            .query_row([&f.id], |r| r.get::<_, String>(0))
            .optional()?
            .map(|d| json_col("findings", &f.id, &d))
            .transpose()?;
        let revision = match stored {
            None => 1,
            Some(s) if s.status == f.status && s.expected == f.expected && s.actual == f.actual => {
                s.revision
            }
            Some(s) => s.revision + 1,
        };
        let data = if revision == f.revision {
            to_json(f)
        } else {
            to_json(&Finding {
                revision,
                ..f.clone()
            })
        };
        self.0
            .prepare_cached(
                "INSERT INTO findings (id, kind, rule, severity, status, fact_kind, fact_key, first_seen, last_seen, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, rule = excluded.rule, severity = excluded.severity,
                    status = excluded.status, fact_kind = excluded.fact_kind, fact_key = excluded.fact_key,
                    first_seen = excluded.first_seen, last_seen = excluded.last_seen, data = excluded.data",
            )?
            .execute(params![
                f.id,
                f.kind.as_str(),
                f.rule,
                f.severity.as_str(),
                f.status.as_str(),
                f.fact_kind.as_str(),
                f.fact_key,
                f.first_seen.0,
                f.last_seen.0,
                data
            ])?;
        Ok(revision)
    }

    /// Findings whose id starts with `prefix`, by id, at most `limit`. The prefix is compared
    /// literally (`substr`), so `%` and `_` match only themselves, never "anything".
    pub fn findings_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Finding>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, data FROM findings WHERE substr(id, 1, ?1) = ?2 ORDER BY id LIMIT ?3",
        )?;
        let len = prefix.chars().count() as i64;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![len, prefix, limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, data) = r?;
            out.push(json_col("findings", &id, &data)?);
        }
        Ok(out)
    }

    /// Number of findings per status.
    pub fn finding_counts(&self) -> Result<Vec<(Status, u64)>> {
        let mut stmt = self
            .0
            .prepare("SELECT status, COUNT(*) FROM findings GROUP BY status ORDER BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (s, n) = r?;
            let status = Status::parse(&s).ok_or_else(|| StoreError::Corrupt {
                table: "findings",
                key: s.clone(),
                problem: "unknown status".into(),
            })?;
            out.push((status, n as u64));
        }
        Ok(out)
    }
}
