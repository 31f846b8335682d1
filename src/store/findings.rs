//! Findings: indexed columns for queries, the whole finding as JSON.

use super::{json_col, to_json, Result, StoreError, Tx};
use crate::engine::{Finding, Status};
use rusqlite::{params, OptionalExtension};

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

    /// Inserts or replaces a finding.
    pub fn put_finding(&self, f: &Finding) -> Result<()> {
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
                to_json(f)
            ])?;
        Ok(())
    }

    /// Resolves an id or a unique id prefix (at least 4 characters) to a finding.
    pub fn find_finding(&self, id_or_prefix: &str) -> Result<Finding> {
        let p = id_or_prefix.trim().to_ascii_lowercase();
        if let Some(f) = self.finding(&p)? {
            return Ok(f);
        }
        if p.len() < 4 {
            return Err(StoreError::NotFound(format!(
                "no finding with id {p:?}; give the full 12-character id from `accessdrift findings`"
            )));
        }
        let mut stmt = self
            .0
            .prepare("SELECT id FROM findings WHERE id LIKE ?1 || '%' LIMIT 2")?;
        let ids: Vec<String> = stmt
            .query_map([&p], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        match ids.as_slice() {
            [one] => self
                .finding(one)?
                .ok_or_else(|| StoreError::NotFound(format!("finding {one} vanished"))),
            [] => Err(StoreError::NotFound(format!(
                "no finding with id {p:?}; list them with `accessdrift findings --status all`"
            ))),
            _ => Err(StoreError::NotFound(format!(
                "id prefix {p:?} matches several findings; give more characters"
            ))),
        }
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
