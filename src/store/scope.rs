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

#[cfg(test)]
mod tests {
    use crate::domain::{EventTime, Fact, FactKind, FactRef, Location, Provenance};
    use crate::store::Store;

    #[test]
    fn scope_is_kind_prefix_and_optionally_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let tx = store.tx().unwrap();
        let prov = |input: &str| Provenance {
            source: "k8s".into(),
            event_time: EventTime(1),
            location: Location {
                input: input.into(),
                index: 0,
            },
            ..Default::default()
        };
        let put = |kind, key: &str, input: &str| {
            let fact = Fact {
                kind,
                key: key.into(),
                value: serde_json::json!({"k": key}),
                resource_id: None,
            };
            tx.upsert_fact(&fact, &prov(input)).unwrap();
        };
        put(FactKind::RoleBinding, "c/a/x", "w?labelSelector=t=1");
        put(FactKind::RoleBinding, "c/a/y", "w");
        put(FactKind::RoleBinding, "c/ab/z", "w");
        put(FactKind::RoleBinding, "c2/a/x", "w");
        put(FactKind::Role, "c/a/r", "w");
        put(FactKind::RoleBinding, "c/a/gone", "w");
        tx.delete_fact(
            FactKind::RoleBinding,
            &FactRef::Key("c/a/gone".into()),
            &Provenance {
                event_time: EventTime(2),
                ..prov("w")
            },
            EventTime(2),
        )
        .unwrap();
        for (prefix, owner, want) in [
            ("c/", None, vec!["c/a/x", "c/a/y", "c/ab/z"]),
            ("c/a/", None, vec!["c/a/x", "c/a/y"]),
            ("c/", Some("w?labelSelector=t=1"), vec!["c/a/x"]),
            ("c3/", None, vec![]),
        ] {
            let got = tx
                .live_keys_in_scope(FactKind::RoleBinding, prefix, owner)
                .unwrap();
            assert_eq!(got, want, "{prefix} {owner:?}");
        }
    }
}
