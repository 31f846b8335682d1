//! Event Hubs state: partition ownership (etag compare-and-swap) and partition checkpoints.
//!
//! A partition's checkpoint is an ordinary `checkpoints` row named
//! [`EventHubsPartition::source_name`], written by the store-writer in the transaction that
//! applies the events up to it (`Pipeline::apply_batch`'s checkpoint argument). Its
//! `position` is the sequence number of the last committed event and its `fingerprint`
//! `offset=O;sequence=N`, so the SDK can resume after it by offset (or by sequence number).

use super::{Checkpoint, Result, StoreError, Tx};
use rusqlite::{params, OptionalExtension};

/// One partition of one consumer group of one hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventHubsPartition {
    /// Fully qualified namespace.
    pub namespace: String,
    /// Event Hub name.
    pub eventhub: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Partition id.
    pub partition_id: String,
}

impl EventHubsPartition {
    /// The prefix shared by every partition's checkpoint name of this hub and group.
    pub fn source_prefix(namespace: &str, eventhub: &str, consumer_group: &str) -> String {
        format!("eventhubs:{namespace}/{eventhub}/{consumer_group}/")
    }

    /// Checkpoint (and readiness) name: `eventhubs:NS/HUB/CG/PARTITION`.
    pub fn source_name(&self) -> String {
        Self::source_prefix(&self.namespace, &self.eventhub, &self.consumer_group)
            + &self.partition_id
    }
}

/// Where a partition has been committed up to: the last event applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHubsPosition {
    /// The event's offset (opaque to us; the service's resume token).
    pub offset: String,
    /// The event's sequence number.
    pub sequence_number: i64,
}

impl EventHubsPosition {
    /// The `checkpoints` row for this position.
    pub fn to_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            position: self.sequence_number.max(0) as u64,
            fingerprint: format!("offset={};sequence={}", self.offset, self.sequence_number),
        }
    }

    /// Reads a `checkpoints` row written by [`EventHubsPosition::to_checkpoint`].
    pub fn from_checkpoint(source: &str, cp: &Checkpoint) -> Result<EventHubsPosition> {
        let bad = || StoreError::Corrupt {
            table: "checkpoints",
            key: source.to_string(),
            problem: format!(
                "fingerprint {:?} is not offset=O;sequence=N (an Event Hubs position)",
                cp.fingerprint
            ),
        };
        let rest = cp.fingerprint.strip_prefix("offset=").ok_or_else(bad)?;
        let (offset, seq) = rest.rsplit_once(";sequence=").ok_or_else(bad)?;
        let sequence_number = seq.parse().map_err(|_| bad())?;
        Ok(EventHubsPosition {
            offset: offset.to_string(),
            sequence_number,
        })
    }
}

/// A partition's ownership row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipRow {
    /// The partition.
    pub partition: EventHubsPartition,
    /// The owning processor (None: released).
    pub owner_id: Option<String>,
    /// Changes on every write; a claim names the etag it read.
    pub etag: String,
    /// Last write, Unix nanoseconds.
    pub modified_at: i64,
}

impl Tx<'_> {
    /// Every ownership row of a hub and consumer group.
    pub fn eventhubs_ownerships(
        &self,
        namespace: &str,
        eventhub: &str,
        consumer_group: &str,
    ) -> Result<Vec<OwnershipRow>> {
        let mut st = self.0.prepare_cached(
            "SELECT partition_id, owner_id, etag, modified_at FROM eventhubs_ownership
             WHERE namespace = ?1 AND eventhub = ?2 AND consumer_group = ?3 ORDER BY partition_id",
        )?;
        let rows = st.query_map(params![namespace, eventhub, consumer_group], |r| {
            Ok(OwnershipRow {
                partition: EventHubsPartition {
                    namespace: namespace.to_string(),
                    eventhub: eventhub.to_string(),
                    consumer_group: consumer_group.to_string(),
                    partition_id: r.get(0)?,
                },
                owner_id: r.get(1)?,
                etag: r.get(2)?,
                modified_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Claims a partition for `owner_id` if its ownership row still has `expected_etag`
    /// (`None`: only if nobody ever claimed it). Returns the new row, or `None` when another
    /// processor wrote in between (the claim is lost, as the SDK expects).
    pub fn claim_eventhubs_ownership(
        &self,
        partition: &EventHubsPartition,
        owner_id: Option<&str>,
        expected_etag: Option<&str>,
        now_nanos: i64,
    ) -> Result<Option<OwnershipRow>> {
        let current: Option<(String, i64)> = self.query_one(
                "SELECT etag, modified_at FROM eventhubs_ownership
                 WHERE namespace = ?1 AND eventhub = ?2 AND consumer_group = ?3 AND partition_id = ?4",
                params![
                    partition.namespace,
                    partition.eventhub,
                    partition.consumer_group,
                    partition.partition_id
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if current.as_ref().map(|(e, _)| e.as_str()) != expected_etag {
            return Ok(None);
        }
        // A counter and the time: unique per write even when the clock stands still.
        let generation = current
            .as_ref()
            .and_then(|(e, _)| e.split_once('-'))
            .and_then(|(g, _)| g.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let modified_at = now_nanos.max(current.map_or(0, |(_, m)| m));
        let etag = format!("{generation}-{modified_at:x}");
        self.exec(
            "INSERT INTO eventhubs_ownership (namespace, eventhub, consumer_group, partition_id, owner_id, etag, modified_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (namespace, eventhub, consumer_group, partition_id)
             DO UPDATE SET owner_id = excluded.owner_id, etag = excluded.etag, modified_at = excluded.modified_at",
            params![
                partition.namespace,
                partition.eventhub,
                partition.consumer_group,
                partition.partition_id,
                owner_id,
                etag,
                modified_at
            ],
        )?;
        Ok(Some(OwnershipRow {
            partition: partition.clone(),
            owner_id: owner_id.map(str::to_string),
            etag,
            modified_at,
        }))
    }

    /// Checkpoints whose source name starts with `prefix`: (name, checkpoint, updated_at).
    pub fn checkpoints_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Checkpoint, i64)>> {
        let mut st = self.0.prepare_cached(
            "SELECT source, position, fingerprint, updated_at FROM checkpoints
             WHERE substr(source, 1, length(?1)) = ?1 ORDER BY source",
        )?;
        let rows = st.query_map([prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Checkpoint {
                    position: r.get::<_, i64>(1)? as u64,
                    fingerprint: r.get(2)?,
                },
                r.get::<_, i64>(3)?,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn part(id: &str) -> EventHubsPartition {
        EventHubsPartition {
            namespace: "ns.servicebus.windows.net".into(),
            eventhub: "hub".into(),
            consumer_group: "$Default".into(),
            partition_id: id.into(),
        }
    }

    #[test]
    fn claims_are_compare_and_swap_on_the_etag() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let tx = store.tx().unwrap();
        let first = tx
            .claim_eventhubs_ownership(&part("0"), Some("a"), None, 10)
            .unwrap()
            .expect("an unclaimed partition is claimable without an etag");
        // A second first-claim (another replica that read "unowned" too) loses.
        assert!(tx
            .claim_eventhubs_ownership(&part("0"), Some("b"), None, 11)
            .unwrap()
            .is_none());
        // A stale etag loses; the current one wins and changes the etag.
        assert!(tx
            .claim_eventhubs_ownership(&part("0"), Some("b"), Some("0-0"), 12)
            .unwrap()
            .is_none());
        let second = tx
            .claim_eventhubs_ownership(&part("0"), Some("b"), Some(&first.etag), 12)
            .unwrap()
            .unwrap();
        assert_ne!(second.etag, first.etag);
        // Same nanosecond, still a new etag.
        let third = tx
            .claim_eventhubs_ownership(&part("0"), Some("b"), Some(&second.etag), 12)
            .unwrap()
            .unwrap();
        assert_ne!(third.etag, second.etag);
        let rows = tx
            .eventhubs_ownerships("ns.servicebus.windows.net", "hub", "$Default")
            .unwrap();
        assert_eq!(rows, vec![third]);
    }

    #[test]
    fn positions_round_trip_and_prefix_lists_only_that_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let tx = store.tx().unwrap();
        let pos = EventHubsPosition {
            offset: "4096".into(),
            sequence_number: 41,
        };
        let at = crate::domain::EventTime(5);
        tx.set_checkpoint(&part("1").source_name(), &pos.to_checkpoint(), at)
            .unwrap();
        let mut other = part("1");
        other.consumer_group = "$Default2".into();
        tx.set_checkpoint(&other.source_name(), &pos.to_checkpoint(), at)
            .unwrap();
        let prefix =
            EventHubsPartition::source_prefix("ns.servicebus.windows.net", "hub", "$Default");
        let rows = tx.checkpoints_with_prefix(&prefix).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, part("1").source_name());
        assert_eq!(
            EventHubsPosition::from_checkpoint(&rows[0].0, &rows[0].1).unwrap(),
            pos
        );
        let bad = Checkpoint {
            position: 1,
            fingerprint: "resourceVersion=1".into(),
        };
        let e = EventHubsPosition::from_checkpoint("eventhubs:x", &bad).unwrap_err();
        assert!(e.to_string().contains("eventhubs:x"), "{e}");
    }
}
