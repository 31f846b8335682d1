//! Lookups the rules need for joins: facts by key prefix or by a field of their value, and the
//! subjects of active findings by rule. Filters run inside SQLite (`json_extract`), so only
//! matching rows are decoded.

use super::{json_col, Result, Tx};
use crate::domain::FactKind;
use rusqlite::params;
use serde_json::Value;

/// The smallest string greater than every string starting with `prefix` (for range scans on
/// the `(kind, key)` primary key).
fn upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The expression index of migration 3 for each JSON path the rules look facts up by. Named
/// in the query (`INDEXED BY`): without statistics SQLite prefers the primary key's `kind`
/// prefix, which scans every fact of the kind.
const INDEXES: &[(&str, &str)] = &[
    ("$.principal_id", "facts_by_principal"),
    ("$.client_id", "facts_by_client"),
    ("$.kubelet_identity.object_id", "facts_by_kubelet"),
    ("$.identity_principal_id", "facts_by_identity_principal"),
    ("$.oidc_issuer_url", "facts_by_issuer"),
    ("$.workload_identity_client_id", "facts_by_wi_client"),
    ("$.subject", "facts_by_subject"),
    ("$.role_ref.name", "facts_by_role_ref"),
];

fn indexed_by(path: &str) -> String {
    INDEXES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or_else(String::new, |(_, i)| format!(" INDEXED BY {i}"))
}

impl Tx<'_> {
    /// One live fact's value (a cached statement: the rules read facts many times a batch).
    pub fn fact_value(&self, kind: FactKind, key: &str) -> Result<Option<Value>> {
        use rusqlite::OptionalExtension;
        let text: Option<Option<String>> = self
            .0
            .prepare_cached("SELECT value FROM facts WHERE kind = ?1 AND key = ?2")?
            .query_row(params![kind.as_str(), key], |r| r.get(0))
            .optional()?;
        text.flatten()
            .map(|t| json_col::<Value>("facts", key, &t))
            .transpose()
    }

    /// Live facts of a kind whose key starts with `prefix` (`""`: all of the kind), by key.
    pub fn facts_under(&self, kind: FactKind, prefix: &str) -> Result<Vec<(String, Value)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key, value FROM facts WHERE kind = ?1 AND key >= ?2 AND key < ?3 AND value IS NOT NULL ORDER BY key",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), prefix, upper_bound(prefix)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        decode(rows)
    }

    /// Whether a live fact of a kind has a key starting with `prefix`.
    pub fn any_fact_under(&self, kind: FactKind, prefix: &str) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM facts WHERE kind = ?1 AND key >= ?2 AND key < ?3 AND value IS NOT NULL)",
            )?
            .query_row(params![kind.as_str(), prefix, upper_bound(prefix)], |r| r.get(0))?)
    }

    /// Keys of the live facts of a kind whose key starts with `prefix`.
    pub fn fact_keys_under(&self, kind: FactKind, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key FROM facts WHERE kind = ?1 AND key >= ?2 AND key < ?3 AND value IS NOT NULL ORDER BY key",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), prefix, upper_bound(prefix)], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Live facts of a kind whose value has the JSON `path` (a `'$.field'` literal from code,
    /// never user input) equal to `text`. The path is spelled into the SQL so the expression
    /// indexes of migration 3 apply.
    pub fn facts_where(
        &self,
        kind: FactKind,
        path: &'static str,
        text: &str,
    ) -> Result<Vec<(String, Value)>> {
        let sql = format!(
            "SELECT key, value FROM facts{} WHERE kind = ?1 AND json_extract(value, '{path}') = ?2 AND value IS NOT NULL",
            indexed_by(path)
        );
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![kind.as_str(), text], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = decode(rows)?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Whether a live fact of a kind has the JSON `path` set (see [`Tx::facts_where`]).
    pub fn any_fact_with(&self, kind: FactKind, path: &'static str) -> Result<bool> {
        let sql = format!(
            // `> ''` rather than IS NOT NULL: a range the expression index serves.
            "SELECT EXISTS (SELECT 1 FROM facts{} WHERE kind = ?1 AND json_extract(value, '{path}') > '' AND value IS NOT NULL)",
            indexed_by(path)
        );
        Ok(self
            .0
            .prepare_cached(&sql)?
            .query_row([kind.as_str()], |r| r.get(0))?)
    }

    /// Live facts of a kind whose value text contains `needle` (a scan: for small kinds).
    pub fn facts_containing(&self, kind: FactKind, needle: &str) -> Result<Vec<(String, Value)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key, value FROM facts WHERE kind = ?1 AND value IS NOT NULL AND instr(value, ?2) > 0 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), needle], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        decode(rows)
    }

    /// Role assignments whose scope is `resource_id` or contains it. Keys start with the
    /// scope, so each ancestor scope is one range of the primary key: no scan.
    pub fn assignments_at_or_above(&self, resource_id: &str) -> Result<Vec<(String, Value)>> {
        let mut scopes: Vec<String> = vec![
            // The tenant root, and management groups (which contain every subscription).
            "/|".to_string(),
            "/providers/microsoft.management/managementgroups/".to_string(),
        ];
        let mut prefix = String::new();
        for seg in resource_id.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(seg);
            scopes.push(format!("{prefix}|"));
        }
        let mut out = Vec::new();
        for s in scopes {
            out.extend(self.facts_under(FactKind::RoleAssignment, &s)?);
        }
        Ok(out)
    }

    /// Ids and statuses of the policy findings about one subject: one indexed probe per
    /// subject instead of one per rule that could apply to it.
    pub fn policy_findings_of(
        &self,
        kind: FactKind,
        key: &str,
    ) -> Result<Vec<(String, crate::engine::Status)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, status FROM findings WHERE fact_kind = ?1 AND fact_key = ?2 AND kind = 'policy'",
        )?;
        let rows = stmt.query_map(rusqlite::params![kind.as_str(), key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, status) = r?;
            let status = crate::engine::Status::parse(&status).ok_or_else(|| {
                super::StoreError::Corrupt {
                    table: "findings",
                    key: id.clone(),
                    problem: format!("unknown status {status:?}"),
                }
            })?;
            out.push((id, status));
        }
        Ok(out)
    }

    /// `(fact kind, fact key)` of the open or acknowledged findings of a rule.
    pub fn active_subjects(&self, rule: &str) -> Result<Vec<(FactKind, String)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT fact_kind, fact_key FROM findings WHERE status IN ('open', 'acknowledged') AND rule = ?1 ORDER BY fact_key",
        )?;
        let rows = stmt.query_map([rule], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, key) = r?;
            let kind = kind
                .parse::<FactKind>()
                .map_err(|e| super::StoreError::Corrupt {
                    table: "findings",
                    key: key.clone(),
                    problem: e.to_string(),
                })?;
            out.push((kind, key));
        }
        Ok(out)
    }

    /// `(fact kind, fact key)` of every policy finding that is open, acknowledged
    /// or excepted: what a configuration change may have to move.
    pub fn policy_subjects(&self) -> Result<Vec<(FactKind, String)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT DISTINCT fact_kind, fact_key FROM findings WHERE kind = 'policy' AND status IN ('open', 'acknowledged', 'excepted') ORDER BY fact_kind, fact_key",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, key) = r?;
            if let Ok(kind) = kind.parse::<FactKind>() {
                out.push((kind, key));
            }
        }
        Ok(out)
    }
}

fn decode(
    rows: impl Iterator<Item = rusqlite::Result<(String, String)>>,
) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for r in rows {
        let (key, text) = r?;
        let v = json_col::<Value>("facts", &key, &text)?;
        out.push((key, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::Field;

    /// Every join lookup the rules make is an index search, not a scan of the facts table:
    /// without that, a busy subscription makes policy evaluation quadratic.
    #[test]
    fn join_lookups_use_the_migration_3_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&dir.path().join("q.db")).unwrap();
        let tx = store.tx().unwrap();
        for (kind, field) in [
            (FactKind::RoleAssignment, Field::PrincipalId),
            (FactKind::ManagedIdentity, Field::PrincipalId),
            (FactKind::ManagedIdentity, Field::ClientId),
            (FactKind::ClusterSettings, Field::KubeletObjectId),
            (FactKind::ClusterSettings, Field::IdentityPrincipalId),
            (FactKind::ClusterSettings, Field::OidcIssuerUrl),
            (FactKind::ServiceAccount, Field::WorkloadIdentityClientId),
            (FactKind::FederatedCredential, Field::Subject),
            (FactKind::ClusterRoleBinding, Field::RoleRefName),
            (FactKind::RoleBinding, Field::RoleRefName),
        ] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT key, value FROM facts{} WHERE kind = ?1 AND json_extract(value, '{}') = ?2 AND value IS NOT NULL",
                indexed_by(field.path()),
                field.path()
            );
            let plan: Vec<String> =
                tx.0.prepare(&sql)
                    .unwrap()
                    .query_map([kind.as_str(), "x"], |r| r.get::<_, String>(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
            assert!(
                plan.iter().any(|p| p.contains("USING INDEX facts_by_")),
                "{kind} by {field:?}: {plan:?}"
            );
            // And the method runs the same statement.
            assert!(tx.facts_where(kind, field.path(), "x").unwrap().is_empty());
        }
    }
}
