//! The SDK's `CheckpointStore` on our SQLite store.
//!
//! Ownership is a real compare-and-swap on an etag (the SDK balances partitions between
//! replicas with it). Checkpoints are only ever READ here: a partition's checkpoint is written
//! by the store-writer in the transaction that applies the events up to it, which is the
//! exactly-once guarantee. `update_checkpoint` therefore writes nothing (see there).

use crate::store::{EventHubsPartition, EventHubsPosition, Store};
use azure_core::error::ErrorKind;
use azure_core::http::Etag;
use azure_core::time::OffsetDateTime;
use azure_messaging_eventhubs::models::{Checkpoint, Ownership};
use azure_messaging_eventhubs::CheckpointStore;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// `CheckpointStore` over the accessdrift database, bound to one hub and consumer group.
pub struct SqliteCheckpointStore {
    store: Arc<Mutex<Store>>,
    db: PathBuf,
    namespace: String,
    eventhub: String,
    consumer_group: String,
}

fn store_error(db: &std::path::Path, what: &str, e: impl std::fmt::Display) -> azure_core::Error {
    azure_core::Error::with_message(
        ErrorKind::Io,
        format!("Event Hubs checkpoint store {}: {what}: {e}", db.display()),
    )
}

impl SqliteCheckpointStore {
    /// Opens its own connection to the database (the writer keeps its own).
    pub fn open(
        db: &std::path::Path,
        namespace: &str,
        eventhub: &str,
        consumer_group: &str,
    ) -> Result<Self, crate::store::StoreError> {
        Ok(SqliteCheckpointStore {
            store: Arc::new(Mutex::new(Store::open(db)?)),
            db: db.to_path_buf(),
            namespace: namespace.to_string(),
            eventhub: eventhub.to_string(),
            consumer_group: consumer_group.to_string(),
        })
    }

    /// Runs `f` on the connection off the async threads (it may wait for the writer's lock).
    async fn with_store<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> azure_core::Result<T> {
        let store = self.store.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut g = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g)
        })
        .await
        .map_err(|e| store_error(&db, what, e))?
        .map_err(|e| store_error(&self.db, what, e))
    }

    /// The last committed position of every partition that has one, by partition id.
    pub async fn positions(&self) -> azure_core::Result<Vec<(String, EventHubsPosition)>> {
        let prefix = EventHubsPartition::source_prefix(
            &self.namespace,
            &self.eventhub,
            &self.consumer_group,
        );
        self.with_store("listing checkpoints", move |s| {
            let tx = s.read()?;
            let mut out = Vec::new();
            for (name, cp, _) in tx.checkpoints_with_prefix(&prefix)? {
                let pos = EventHubsPosition::from_checkpoint(&name, &cp)?;
                out.push((name[prefix.len()..].to_string(), pos));
            }
            Ok(out)
        })
        .await
    }

    /// Warns once per call when the SDK names another hub than the one this store serves
    /// (with a custom endpoint the SDK derives the namespace from the URL it was given).
    fn note_scope(&self, namespace: &str, eventhub: &str, consumer_group: &str) {
        if namespace != self.namespace
            || eventhub != self.eventhub
            || consumer_group != self.consumer_group
        {
            tracing::debug!(
                asked = %format!("{namespace}/{eventhub}/{consumer_group}"),
                serving = %format!("{}/{}/{}", self.namespace, self.eventhub, self.consumer_group),
                "checkpoint store asked for another scope: answering for the configured hub"
            );
        }
    }
}

fn nanos_to_time(n: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok()
}

#[async_trait::async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[Ownership],
    ) -> azure_core::Result<Vec<Ownership>> {
        let claims: Vec<(EventHubsPartition, Option<String>, Option<String>)> = ownerships
            .iter()
            .map(|o| {
                (
                    EventHubsPartition {
                        namespace: self.namespace.clone(),
                        eventhub: self.eventhub.clone(),
                        consumer_group: self.consumer_group.clone(),
                        partition_id: o.partition_id.clone(),
                    },
                    o.owner_id.clone(),
                    o.etag.as_ref().map(|e| e.to_string()),
                )
            })
            .collect();
        let rows = self
            .with_store("claiming partition ownership", move |s| {
                let now = crate::domain::EventTime::now().0;
                let tx = s.tx()?;
                let mut won = Vec::new();
                for (p, owner, etag) in &claims {
                    // Each claim stands alone: losing one (another replica wrote first) is
                    // the normal outcome of a race, not an error.
                    if let Some(row) =
                        tx.claim_eventhubs_ownership(p, owner.as_deref(), etag.as_deref(), now)?
                    {
                        won.push(row);
                    }
                }
                tx.commit()?;
                Ok(won)
            })
            .await?;
        Ok(ownerships
            .iter()
            .filter_map(|o| {
                let row = rows
                    .iter()
                    .find(|r| r.partition.partition_id == o.partition_id)?;
                let mut o = o.clone();
                o.etag = Some(Etag::from(row.etag.clone()));
                o.last_modified_time = nanos_to_time(row.modified_at);
                Some(o)
            })
            .collect())
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Checkpoint>> {
        self.note_scope(namespace, event_hub_name, consumer_group);
        Ok(self
            .positions()
            .await?
            .into_iter()
            .map(|(partition_id, pos)| Checkpoint {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id,
                offset: Some(pos.offset),
                sequence_number: Some(pos.sequence_number),
            })
            .collect())
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Ownership>> {
        self.note_scope(namespace, event_hub_name, consumer_group);
        let (ns, hub, cg) = (
            self.namespace.clone(),
            self.eventhub.clone(),
            self.consumer_group.clone(),
        );
        let rows = self
            .with_store("listing partition ownership", move |s| {
                s.read()?.eventhubs_ownerships(&ns, &hub, &cg)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Ownership {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: r.partition.partition_id,
                owner_id: r.owner_id,
                etag: Some(Etag::from(r.etag)),
                last_modified_time: nanos_to_time(r.modified_at),
            })
            .collect())
    }

    /// Writes nothing. A checkpoint written here, apart from the transaction that applied
    /// the events, could run ahead of their effects (a crash in between loses them) or behind
    /// (a crash replays them). The store-writer commits each partition's checkpoint with the
    /// effects instead, so the only thing left to do is to refuse a caller that would move a
    /// partition somewhere the writer has not committed: that is a bug, and loud.
    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> azure_core::Result<()> {
        let committed = self
            .positions()
            .await?
            .into_iter()
            .find(|(p, _)| *p == checkpoint.partition_id)
            .map(|(_, pos)| pos.sequence_number);
        match (checkpoint.sequence_number, committed) {
            (Some(asked), Some(have)) if asked <= have => Ok(()),
            (asked, have) => Err(azure_core::Error::with_message(
                ErrorKind::Other,
                format!(
                    "Event Hubs partition {}: update_checkpoint to sequence {asked:?} refused, the store-writer has committed up to {have:?}; checkpoints advance only with the effects of their events",
                    checkpoint.partition_id
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventHubsPosition;

    fn own(partition: &str, owner: &str, etag: Option<&Etag>) -> Ownership {
        Ownership {
            fully_qualified_namespace: "ns.servicebus.windows.net".into(),
            event_hub_name: "hub".into(),
            consumer_group: "cg".into(),
            partition_id: partition.into(),
            owner_id: Some(owner.into()),
            etag: etag.cloned(),
            last_modified_time: None,
        }
    }

    #[tokio::test]
    async fn claims_lose_on_a_stale_etag_and_checkpoints_come_only_from_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store =
            SqliteCheckpointStore::open(&db, "ns.servicebus.windows.net", "hub", "cg").unwrap();
        let won = store
            .claim_ownership(&[own("0", "a", None), own("1", "a", None)])
            .await
            .unwrap();
        assert_eq!(won.len(), 2);
        assert!(won
            .iter()
            .all(|o| o.etag.is_some() && o.last_modified_time.is_some()));
        // Replica b read the rows before a renewed them: its claim with the old etag loses.
        let listed = store
            .list_ownerships("ns.servicebus.windows.net", "hub", "cg")
            .await
            .unwrap();
        let renewed = store
            .claim_ownership(&[own("0", "a", listed[0].etag.as_ref())])
            .await
            .unwrap();
        assert_eq!(renewed.len(), 1);
        let stale = store
            .claim_ownership(&[own("0", "b", listed[0].etag.as_ref())])
            .await
            .unwrap();
        assert!(stale.is_empty());

        // The writer commits partition 1 up to sequence 7 (what `apply_batch` does).
        let pos = EventHubsPosition {
            offset: "900".into(),
            sequence_number: 7,
        };
        {
            let mut s = Store::open(&db).unwrap();
            let tx = s.tx().unwrap();
            let name = EventHubsPartition {
                namespace: "ns.servicebus.windows.net".into(),
                eventhub: "hub".into(),
                consumer_group: "cg".into(),
                partition_id: "1".into(),
            }
            .source_name();
            tx.set_checkpoint(&name, &pos.to_checkpoint(), crate::domain::EventTime(1))
                .unwrap();
            tx.commit().unwrap();
        }
        let cps = store
            .list_checkpoints("ns.servicebus.windows.net", "hub", "cg")
            .await
            .unwrap();
        assert_eq!(cps.len(), 1);
        assert_eq!(
            (
                cps[0].partition_id.as_str(),
                cps[0].offset.as_deref(),
                cps[0].sequence_number
            ),
            ("1", Some("900"), Some(7))
        );
        // update_checkpoint never moves it: at or behind the commit is fine, ahead is refused.
        let mut cp = cps[0].clone();
        store.update_checkpoint(cp.clone()).await.unwrap();
        cp.sequence_number = Some(8);
        let e = store.update_checkpoint(cp).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
        let again = store
            .list_checkpoints("ns.servicebus.windows.net", "hub", "cg")
            .await
            .unwrap();
        assert_eq!(again[0].sequence_number, Some(7));
    }
}
