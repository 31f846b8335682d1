//! Targeted reads: an Activity Log Success without a body says a resource changed, not how.
//! The inventory reads that resource from ARM (debounced per resource, a few at once) and
//! applies what ARM returns as of the moment the read started; a 404 is a delete. The
//! observation keeps the record's author and correlation id.

use super::inventory::{upsert_of, AUTHORIZATION_API, CLUSTER_API, IDENTITY_API};
use super::{ArmClient, ArmError};
use crate::domain::{ChangeOp, EventTime, FactKind, FactRef, Location, Observation};
use crate::ingest::{ingest_span, Batch, Hint, WriterHandle};
use crate::sources::activity_log::{map, AzureOp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most resources waiting for their read; beyond it hints are dropped (and counted): the
/// next snapshot reads them anyway.
const MAX_PENDING: usize = 10_000;

/// How hints are read.
#[derive(Debug, Clone, Copy)]
pub struct HintLimits {
    /// Reads in flight at once.
    pub concurrency: usize,
    /// A resource is read this long after its first hint; later hints join that read.
    pub debounce: Duration,
}

/// The observation one read makes: what ARM returned, or a delete on 404.
pub async fn read(
    client: &ArmClient,
    hint: &Hint,
    cancel: &CancellationToken,
) -> Result<Observation, ArmError> {
    let (op, api) = match hint.kind {
        FactKind::RoleAssignment => (AzureOp::RoleAssignmentWrite, AUTHORIZATION_API),
        FactKind::RoleDefinition => (AzureOp::RoleDefinitionWrite, AUTHORIZATION_API),
        FactKind::ClusterSettings => (AzureOp::ClusterWrite, CLUSTER_API),
        FactKind::ManagedIdentity => (AzureOp::IdentityWrite, IDENTITY_API),
        FactKind::FederatedCredential => (AzureOp::FederatedCredentialWrite, IDENTITY_API),
        k => {
            return Err(ArmError::Shape {
                url: hint.resource_id.clone(),
                problem: format!("{k} is not an ARM resource"),
            })
        }
    };
    let id = match hint.kind {
        FactKind::ClusterSettings => map::cluster_id(&hint.resource_id),
        _ => hint.resource_id.clone(),
    };
    let at = EventTime::now();
    let url = client.url(&format!("{id}?api-version={api}"));
    let change = match client.get(&url, "hint", cancel).await {
        Ok(body) => {
            if hint.kind == FactKind::ClusterSettings {
                map::candidate(op, &id, Some(&body)).ok_or_else(|| ArmError::Shape {
                    url: url.clone(),
                    problem: "the response has no `properties`".into(),
                })?
            } else {
                upsert_of(op, &body)
                    .map_err(|problem| ArmError::Shape {
                        url: url.clone(),
                        problem,
                    })?
                    .0
            }
        }
        Err(e) if e.is_not_found() => ChangeOp::Delete {
            kind: hint.kind,
            target: match hint.kind {
                FactKind::RoleAssignment => FactRef::ResourceId(id.clone()),
                _ => FactRef::Key(id.clone()),
            },
        },
        Err(e) => return Err(e),
    };
    let mut prov = hint.prov.clone();
    prov.event_time = at;
    prov.location = Location {
        input: format!("arm:GET {id}"),
        index: 0,
    };
    Ok(Observation::immediate(change, prov))
}

/// Reads hinted resources until `cancel` fires or the hint channel closes.
pub async fn run(
    client: Arc<ArmClient>,
    mut rx: mpsc::Receiver<Hint>,
    writer: WriterHandle,
    cancel: CancellationToken,
    limits: HintLimits,
) {
    let permits = Arc::new(Semaphore::new(limits.concurrency.max(1)));
    let mut pending: HashMap<String, (Instant, Hint)> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let next_due = pending.values().map(|(t, _)| *t).min();
        let wake = async {
            match next_due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            h = rx.recv() => match h {
                Some(h) => {
                    let due = Instant::now() + limits.debounce;
                    if pending.len() >= MAX_PENDING && !pending.contains_key(&h.resource_id) {
                        crate::metrics::global().arm_request("hint", "dropped");
                        tracing::warn!(resource = %h.resource_id, "too many resources waiting to be read: hint dropped (the next snapshot reads it)");
                        continue;
                    }
                    // The first hint sets the time; a later record on the same resource
                    // keeps its own author (the newest change is what the read will show).
                    pending
                        .entry(h.resource_id.clone())
                        .and_modify(|(_, old)| {
                            if h.prov.event_time >= old.prov.event_time {
                                *old = h.clone();
                            }
                        })
                        .or_insert((due, h));
                }
                None => break,
            },
            _ = wake => {
                let now = Instant::now();
                let due: Vec<String> = pending
                    .iter()
                    .filter(|(_, (t, _))| *t <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in due {
                    let Some((_, hint)) = pending.remove(&k) else { continue };
                    let (client, writer, cancel, permits) =
                        (client.clone(), writer.clone(), cancel.clone(), permits.clone());
                    tasks.spawn(async move {
                        let Ok(_permit) = permits.acquire_owned().await else { return };
                        apply(&client, &writer, &cancel, hint).await;
                    });
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// The activation a PIM record names (key `scope|principal|role`), read from the schedule
/// instances of that scope and principal: its end time and eligibility, which the record
/// does not carry. `None` when ARM does not list it (yet): the record stands as it is.
pub async fn read_activation(
    client: &ArmClient,
    hint: &Hint,
    cancel: &CancellationToken,
) -> Result<Option<Observation>, ArmError> {
    let mut parts = hint.resource_id.split('|');
    let (Some(scope), Some(principal)) = (parts.next(), parts.next()) else {
        return Err(ArmError::Shape {
            url: hint.resource_id.clone(),
            problem: "a PIM activation hint is `scope|principal|role`".into(),
        });
    };
    let at = EventTime::now();
    let url = client.url(&format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={}&$filter=assignedTo('{principal}')",
        super::pim::PIM_API
    ));
    let page = client.page(&url, "hint", cancel).await?;
    for item in &page.items {
        let Ok(Some((change, key))) = super::pim::role_activation(item) else {
            continue;
        };
        if key == hint.resource_id {
            let mut prov = hint.prov.clone();
            prov.event_time = at;
            // Not the record's operation: this read must not ask for itself again.
            prov.operation = "arm:read:roleassignmentscheduleinstances".into();
            prov.location = Location {
                input: format!("arm:GET {scope}/roleAssignmentScheduleInstances"),
                index: 0,
            };
            return Ok(Some(Observation::immediate(change, prov)));
        }
    }
    Ok(None)
}

async fn apply(client: &ArmClient, writer: &WriterHandle, cancel: &CancellationToken, hint: Hint) {
    let read = match hint.kind {
        FactKind::PimActivation => read_activation(client, &hint, cancel).await,
        _ => read(client, &hint, cancel).await.map(Some),
    };
    match read {
        Ok(None) => {
            tracing::debug!(resource = %hint.resource_id, "ARM does not list the PIM activation (yet); the next snapshot reads it")
        }
        Ok(Some(obs)) => {
            let span = ingest_span(super::SOURCE);
            let batch = Batch {
                source: format!("{}:hints", super::SOURCE),
                observations: vec![obs],
                position: None,
                resets: Vec::new(),
                inputs: 1,
                span,
            };
            match writer.submit(batch).await {
                Ok(_) => {
                    tracing::info!(resource = %hint.resource_id, operation = %hint.prov.operation, "read a resource the Activity Log named without a body")
                }
                Err(e) => {
                    tracing::warn!(resource = %hint.resource_id, error = %e, "reading a hinted resource: not committed")
                }
            }
        }
        Err(ArmError::Cancelled) => {}
        Err(e) => {
            crate::metrics::global().error("inventory_hint");
            tracing::warn!(resource = %hint.resource_id, error = %crate::domain::error_chain(&e), "reading a resource the Activity Log named without a body failed; the next snapshot reads it");
        }
    }
}
