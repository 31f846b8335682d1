//! The two halves of a Kubernetes attribution: audit records that wait for the watch's
//! change, and changes (with the findings they moved) that wait for their audit record.
//! Either may come first, across batches and restarts; both expire by ingest time.

use super::{json_col, to_json, Result, Tx};
use crate::domain::{EventTime, FactKind, Provenance};
use rusqlite::params;

/// An audit record of a watched object.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// `auditID`.
    pub audit_id: String,
    /// Kind of the object.
    pub kind: FactKind,
    /// Its key, or for `deletecollection` the prefix of the keys it deleted (ends in `/`).
    pub key: String,
    /// A delete (matches the watch's delete).
    pub is_delete: bool,
    /// `resourceVersion` of the response object (RequestResponse level), if logged.
    pub resource_version: Option<String>,
    /// When the API server completed the request.
    pub event_time: EventTime,
    /// The record: actor, operation, location.
    pub prov: Provenance,
}

/// A change the watch saw that moved findings and waits for who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// Row id.
    pub seq: i64,
    /// Kind of the object.
    pub kind: FactKind,
    /// Its key.
    pub key: String,
    /// A delete.
    pub is_delete: bool,
    /// `metadata.resourceVersion` the watch saw.
    pub resource_version: Option<String>,
    /// When the watch saw it.
    pub event_time: EventTime,
    /// The findings it opened, changed or resolved.
    pub findings: Vec<String>,
    /// Wall-clock time it was stored (for the attribution latency).
    pub ingested_at: EventTime,
}

impl Tx<'_> {
    /// Stores an audit record; false when its audit id is stored already (a redelivery).
    pub fn put_audit(&self, row: &AuditRow, now: EventTime) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO audit_writes (audit_id, kind, fact_key, is_delete, resource_version, event_time, provenance, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.audit_id,
                row.kind.as_str(),
                row.key,
                row.is_delete,
                row.resource_version,
                row.event_time.0,
                to_json(&row.prov),
                now.0
            ])?;
        Ok(n > 0)
    }

    /// Audit records of `kind`/`key` (or of a `deletecollection` over its namespace or
    /// cluster) that no change took yet, oldest first.
    pub fn unmatched_audits(&self, kind: FactKind, key: &str) -> Result<Vec<AuditRow>> {
        let mut prefixes: Vec<&str> = vec![key];
        let mut at = 0;
        while let Some(i) = key[at..].find('/') {
            prefixes.push(&key[..at + i + 1]);
            at += i + 1;
        }
        let mut out = Vec::new();
        let mut stmt = self.0.prepare_cached(
            "SELECT audit_id, fact_key, is_delete, resource_version, event_time, provenance
             FROM audit_writes WHERE kind = ?1 AND fact_key = ?2 AND matched = 0 ORDER BY event_time",
        )?;
        for p in prefixes {
            let rows = stmt.query_map(params![kind.as_str(), p], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            for row in rows {
                let (audit_id, key, is_delete, rv, t, prov) = row?;
                // A prefix row is a deletecollection: only deletes under it.
                if key.ends_with('/') && !is_delete {
                    continue;
                }
                let prov: Provenance = json_col("audit_writes", &audit_id, &prov)?;
                out.push(AuditRow {
                    audit_id,
                    kind,
                    key,
                    is_delete,
                    resource_version: rv,
                    event_time: EventTime(t),
                    prov,
                });
            }
        }
        out.sort_by_key(|a| a.event_time);
        Ok(out)
    }

    /// True when some audit record waits for its change.
    pub fn audits_waiting(&self) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM audit_writes WHERE matched = 0)")?
            .query_row([], |r| r.get(0))?)
    }

    /// The audit record took a change (a `deletecollection` stays open for its others).
    pub fn set_audit_matched(&self, audit_id: &str) -> Result<()> {
        self.0
            .prepare_cached("UPDATE audit_writes SET matched = 1 WHERE audit_id = ?1")?
            .execute(params![audit_id])?;
        Ok(())
    }

    /// Stores a change: waiting for its audit record, or (`audit_id`) attributed already.
    pub fn put_change(
        &self,
        row: &ChangeRow,
        audit_id: Option<&str>,
        now: EventTime,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO k8s_changes (kind, fact_key, is_delete, resource_version, event_time, findings, audit_id, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.kind.as_str(),
                row.key,
                row.is_delete,
                row.resource_version,
                row.event_time.0,
                to_json(&row.findings),
                audit_id,
                now.0
            ])?;
        Ok(())
    }

    /// True when a change of `kind`/`key` later than `after` is attributed already: its
    /// author, not an earlier one, made the state the findings describe.
    pub fn later_change_attributed(
        &self,
        kind: FactKind,
        key: &str,
        after: EventTime,
    ) -> Result<bool> {
        let n: i64 = self
            .0
            .prepare_cached(
                "SELECT count(*) FROM k8s_changes WHERE kind = ?1 AND fact_key = ?2 AND event_time > ?3 AND audit_id IS NOT NULL",
            )?
            .query_row(params![kind.as_str(), key, after.0], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Changes of `kind` whose key is `key` (or, with `prefix`, starts with it) that no
    /// audit record attributed yet, oldest first.
    pub fn unattributed_changes(
        &self,
        kind: FactKind,
        key: &str,
        prefix: bool,
    ) -> Result<Vec<ChangeRow>> {
        // Keys are compared as bytes: `key\0` is the first key after `key` itself, and
        // `key` followed by the highest code point bounds every key that starts with it.
        let hi = if prefix {
            format!("{key}\u{10FFFF}")
        } else {
            format!("{key}\0")
        };
        let sql = "SELECT seq, fact_key, is_delete, resource_version, event_time, findings, ingested_at
             FROM k8s_changes WHERE kind = ?1 AND fact_key >= ?2 AND fact_key < ?3 AND audit_id IS NULL
             ORDER BY event_time, seq";
        let mut stmt = self.0.prepare_cached(sql)?;
        let rows = stmt.query_map(params![kind.as_str(), key, hi], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, key, is_delete, rv, t, findings, ingested) = row?;
            Ok(ChangeRow {
                seq,
                kind,
                findings: json_col("k8s_changes", &key, &findings)?,
                key,
                is_delete,
                resource_version: rv,
                event_time: EventTime(t),
                ingested_at: EventTime(ingested),
            })
        })
        .collect()
    }

    /// The change is attributed to `audit_id`.
    pub fn set_change_attributed(&self, seq: i64, audit_id: &str) -> Result<()> {
        self.0
            .prepare_cached("UPDATE k8s_changes SET audit_id = ?2 WHERE seq = ?1")?
            .execute(params![seq, audit_id])?;
        Ok(())
    }

    /// Forgets both halves stored before `before` (ingest time): past the attribution
    /// window, neither can be joined any more.
    pub fn expire_attribution(&self, before: EventTime) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM audit_writes WHERE ingested_at < ?1")?
            .execute(params![before.0])?;
        self.0
            .prepare_cached("DELETE FROM k8s_changes WHERE ingested_at < ?1")?
            .execute(params![before.0])?;
        Ok(())
    }

    /// Wall-clock time (nanoseconds) an audit record of `cluster` was last stored.
    pub fn audit_seen(&self, cluster: &str) -> Result<Option<EventTime>> {
        Ok(self
            .meta(&format!("audit_seen:{cluster}"))?
            .and_then(|v| v.parse().ok())
            .map(EventTime))
    }

    /// Records that audit records of `cluster` arrive (at wall-clock `now`).
    pub fn set_audit_seen(&self, cluster: &str, now: EventTime) -> Result<()> {
        self.set_meta(&format!("audit_seen:{cluster}"), &now.0.to_string())
    }
}
