//! Live fact keys of one relist scope, for the deletes a completed Kubernetes relist implies.

use super::{Result, Tx};
use crate::domain::FactKind;
use rusqlite::params;

impl Tx<'_> {
    /// Keys of live (non-tombstone) facts of `kind` whose key starts with `prefix`; with
    /// `input`, only facts whose last change came from that provenance input (a watch with a
    /// label selector owns only what it wrote, never facts outside its selector).
    pub fn live_keys_in_scope(
        &self,
        kind: FactKind,
        prefix: &str,
        input: Option<&str>,
    ) -> Result<Vec<String>> {
        // Keys sort by byte; every key with the prefix lies in [prefix, prefix + U+10FFFF).
        let upper = format!("{prefix}\u{10FFFF}");
        let mut stmt = self.0.prepare_cached(
            "SELECT key FROM facts WHERE kind = ?1 AND key >= ?2 AND key < ?3 AND value IS NOT NULL
             AND (?4 IS NULL OR json_extract(provenance, '$.location.input') = ?4)",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), prefix, upper, input], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
