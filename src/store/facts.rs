//! Facts with last-writer-wins by event time per key.

use super::{json_col, to_json, Result, Tx};
use crate::domain::{EventTime, Fact, FactKind, FactRef, Plane, Provenance};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

/// A stored fact; `value` is `None` for a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct FactRow {
    /// Kind.
    pub kind: FactKind,
    /// Key.
    pub key: String,
    /// Canonical value, or `None` when seen deleted.
    pub value: Option<Value>,
    /// Azure resource id, where it differs from the key.
    pub resource_id: Option<String>,
    /// Event time of the last write that won.
    pub event_time: EventTime,
    /// Provenance of the last value change.
    pub prov: Provenance,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum FactApply {
    /// The value changed (or the fact appeared or went).
    Changed {
        /// The fact's kind.
        kind: FactKind,
        /// The fact's key.
        key: String,
        /// The value before (`None`: absent or deleted): rules that joined on it re-judge.
        previous: Option<Value>,
    },
    /// Same value as stored: nothing to evaluate.
    Unchanged,
    /// Older than the stored write (or than a tombstone of its resource id): the state did
    /// not change, but the value held between this write and the newer one may be drift.
    Stale {
        /// The fact's kind.
        kind: FactKind,
        /// The fact's key.
        key: String,
    },
    /// A delete by resource id that matches no fact yet: kept as a tombstone, so the write it
    /// deletes loses when it arrives later.
    Tombstoned,
}

/// Whether a write replaces the stored one.
///
/// Azure records arrive out of order, so the order is total and arrival-independent: event
/// time, then value text. Kubernetes watch events arrive in order per object but carry only
/// second-resolution times (managedFields), and a DELETED event repeats the last state's
/// times: there a tie goes to the newcomer.
fn wins(kind: FactKind, new: (EventTime, &str), old: (EventTime, &str)) -> bool {
    match kind.plane() {
        Plane::Kubernetes => new.0 >= old.0,
        Plane::Azure => new > old,
    }
}

impl Tx<'_> {
    /// One fact by kind and key.
    pub fn fact(&self, kind: FactKind, key: &str) -> Result<Option<FactRow>> {
        self.query_one(
                "SELECT value, resource_id, event_time, provenance FROM facts WHERE kind = ?1 AND key = ?2",
                params![kind.as_str(), key],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?
            .map(|(v, rid, t, p)| row(kind, key.to_string(), v, rid, t, p))
            .transpose()
    }

    /// All facts (tombstones included), ordered by kind and key.
    pub fn facts(&self) -> Result<Vec<FactRow>> {
        let mut stmt = self.0.prepare(
            "SELECT kind, key, value, resource_id, event_time, provenance FROM facts ORDER BY kind, key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, key, v, rid, t, p) = r?;
            let kind = kind
                .parse::<FactKind>()
                .map_err(|e| super::StoreError::Corrupt {
                    table: "facts",
                    key: key.clone(),
                    problem: e.to_string(),
                })?;
            out.push(row(kind, key, v, rid, t, p)?);
        }
        Ok(out)
    }

    /// Live facts of one kind: (key, value).
    pub fn facts_of_kind(&self, kind: FactKind) -> Result<Vec<(String, Value)>> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT key, value FROM facts WHERE kind = ?1 AND value IS NOT NULL")?;
        let rows = stmt.query_map([kind.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (key, v) = r?;
            out.push((key.clone(), json_col("facts", &key, &v)?));
        }
        Ok(out)
    }

    /// Applies an upsert if it is the latest write for its key.
    pub fn upsert_fact(&self, fact: &Fact, prov: &Provenance) -> Result<FactApply> {
        let new_text = fact.value.to_string();
        if let Some(rid) = &fact.resource_id {
            if let Some((t, tomb_prov)) = self.tombstone(fact.kind, rid)? {
                if t > prov.event_time {
                    // Deleted after this write: the delete arrived first. Record the key as
                    // deleted at the delete's time, so last-writer-wins holds from now on.
                    let del = self.delete_fact(
                        fact.kind,
                        &FactRef::Key(fact.key.clone()),
                        &tomb_prov,
                        EventTime::UNKNOWN,
                    )?;
                    if matches!(del, FactApply::Changed { .. } | FactApply::Unchanged) {
                        self.exec(
                            "UPDATE facts SET resource_id = ?3 WHERE kind = ?1 AND key = ?2",
                            params![fact.kind.as_str(), fact.key, rid],
                        )?;
                    }
                    return Ok(FactApply::Stale {
                        kind: fact.kind,
                        key: fact.key.clone(),
                    });
                }
            }
        }
        let old = self.fact(fact.kind, &fact.key)?;
        if let Some(old) = &old {
            let old_text = old.value.as_ref().map(Value::to_string).unwrap_or_default();
            if old_text == new_text {
                if prov.event_time > old.event_time {
                    self.exec(
                        "UPDATE facts SET event_time = ?3 WHERE kind = ?1 AND key = ?2",
                        params![fact.kind.as_str(), fact.key, prov.event_time.0],
                    )?;
                }
                return Ok(FactApply::Unchanged);
            }
            if !wins(
                fact.kind,
                (prov.event_time, &new_text),
                (old.event_time, &old_text),
            ) {
                return Ok(FactApply::Stale {
                    kind: fact.kind,
                    key: fact.key.clone(),
                });
            }
        }
        self.exec(
            "INSERT INTO facts (kind, key, value, resource_id, event_time, provenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value,
                 resource_id = COALESCE(excluded.resource_id, facts.resource_id),
                 event_time = excluded.event_time, provenance = excluded.provenance",
            params![
                fact.kind.as_str(),
                fact.key,
                new_text,
                fact.resource_id,
                prov.event_time.0,
                to_json(prov)
            ],
        )?;
        Ok(FactApply::Changed {
            kind: fact.kind,
            key: fact.key.clone(),
            previous: old.and_then(|o| o.value),
        })
    }

    /// Applies a delete (a tombstone) if it is the latest write for its key.
    pub fn delete_fact(
        &self,
        kind: FactKind,
        target: &FactRef,
        prov: &Provenance,
        now: EventTime,
    ) -> Result<FactApply> {
        let key = match target {
            FactRef::Key(k) => k.clone(),
            FactRef::ResourceId(id) => {
                let found: Option<String> = self.query_one(
                        "SELECT key FROM facts WHERE kind = ?1 AND resource_id = ?2 ORDER BY event_time DESC LIMIT 1",
                        params![kind.as_str(), id],
                        |r| r.get(0),
                    )
                    .optional()?;
                match found {
                    Some(k) => k,
                    None => {
                        self.put_tombstone(kind, id, prov, now)?;
                        return Ok(FactApply::Tombstoned);
                    }
                }
            }
        };
        let old = self.fact(kind, &key)?;
        if let Some(old) = &old {
            let Some(old_value) = &old.value else {
                return Ok(FactApply::Unchanged);
            };
            if !wins(
                kind,
                (prov.event_time, ""),
                (old.event_time, &old_value.to_string()),
            ) {
                return Ok(FactApply::Stale { kind, key });
            }
        }
        self.exec(
            "INSERT INTO facts (kind, key, value, resource_id, event_time, provenance) VALUES (?1, ?2, NULL, NULL, ?3, ?4)
             ON CONFLICT (kind, key) DO UPDATE SET value = NULL, event_time = excluded.event_time, provenance = excluded.provenance",
            params![kind.as_str(), key, prov.event_time.0, to_json(prov)],
        )?;
        Ok(FactApply::Changed {
            kind,
            key,
            previous: old.and_then(|o| o.value),
        })
    }
}

impl Tx<'_> {
    /// The latest delete of a resource id that matched no fact when it arrived.
    pub fn tombstone(
        &self,
        kind: FactKind,
        resource_id: &str,
    ) -> Result<Option<(EventTime, Provenance)>> {
        let found: Option<(i64, String)> = self
            .0
            .prepare_cached("SELECT event_time, provenance FROM tombstones WHERE kind = ?1 AND resource_id = ?2")?
            .query_row(params![kind.as_str(), resource_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        found
            .map(|(t, p)| Ok((EventTime(t), json_col("tombstones", resource_id, &p)?)))
            .transpose()
    }

    /// Remembers a delete by resource id; the latest delete wins.
    fn put_tombstone(
        &self,
        kind: FactKind,
        resource_id: &str,
        prov: &Provenance,
        now: EventTime,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO tombstones (kind, resource_id, event_time, provenance, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, resource_id) DO UPDATE SET event_time = excluded.event_time, provenance = excluded.provenance,
                     ingested_at = excluded.ingested_at
                 WHERE excluded.event_time > tombstones.event_time",
            )?
            .execute(params![kind.as_str(), resource_id, prov.event_time.0, to_json(prov), now.0])?;
        Ok(())
    }

    /// Drops tombstones ingested before `cutoff` (wall clock). Returns how many.
    pub fn expire_tombstones(&self, cutoff: EventTime) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM tombstones WHERE ingested_at < ?1")?
            .execute([cutoff.0])?)
    }
}

fn row(
    kind: FactKind,
    key: String,
    v: Option<String>,
    rid: Option<String>,
    t: i64,
    p: String,
) -> Result<FactRow> {
    let value = v
        .map(|v| json_col::<Value>("facts", &key, &v))
        .transpose()?;
    let prov = json_col("facts", &key, &p)?;
    Ok(FactRow {
        kind,
        key,
        value,
        resource_id: rid,
        event_time: EventTime(t),
        prov,
    })
}
