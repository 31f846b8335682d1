//! One inventory snapshot: every part (a kind in a subscription, or one cluster) listed from
//! ARM, mapped with the Activity Log's projections, and committed through the writer in
//! chunks; the chunk that completes a listing carries its [`Reset::Snapshot`].

use super::report::{failed, failed_by, log_part};
pub use super::report::{Part, PartOutcome, PartReport, SnapshotReport};
use super::sink::Sink;
use super::{ArmClient, ArmError};
use crate::domain::{canonical_id, ChangeOp, EventTime, FactKind, FactRef};
use crate::ingest::{Reset, SnapshotArea, SnapshotScope, Stats, WriterError, WriterHandle};
use crate::sources::activity_log::{map, AzureOp};
use futures::StreamExt as _;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// `Microsoft.Authorization` (role assignments and definitions).
pub const AUTHORIZATION_API: &str = "2022-04-01";
/// `Microsoft.ManagedIdentity` (identities and federated credentials).
pub const IDENTITY_API: &str = "2023-01-31";
/// `Microsoft.ContainerService/managedClusters`.
pub const CLUSTER_API: &str = "2024-05-01";
/// Federated-credential lists read at once (one per identity).
const FIC_CONCURRENCY: usize = 8;

/// A watched cluster the snapshot reads.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// `[[clusters]] name`.
    pub name: String,
    /// Resource id, lower-case.
    pub resource_id: String,
}

/// Reads ARM state of subscriptions and clusters into the store.
#[derive(Debug, Clone)]
pub struct Inventory {
    client: ArmClient,
    subscriptions: Vec<String>,
    clusters: Vec<ClusterTarget>,
}

/// Why a snapshot stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The writer refused a batch (it rolled back, or it stopped).
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Shutdown: what was committed stays, the rest is read at the next start.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl Inventory {
    /// An inventory of `subscriptions` and `clusters` through `client`.
    pub fn new(
        client: ArmClient,
        subscriptions: Vec<String>,
        clusters: Vec<ClusterTarget>,
    ) -> Inventory {
        Inventory {
            client,
            subscriptions,
            clusters,
        }
    }

    /// The client (hints share it).
    pub fn client(&self) -> &ArmClient {
        &self.client
    }

    /// The parts of a snapshot, in listing order.
    pub fn parts(&self) -> Vec<Part> {
        let mut out = Vec::new();
        for s in &self.subscriptions {
            // Activations first: the role assignment an activation made is then known as
            // one when it is listed, and never looks like a grant made outside PIM.
            out.push(Part::Activations(s.clone()));
            out.push(Part::RoleAssignments(s.clone()));
            out.push(Part::RoleDefinitions(s.clone()));
            out.push(Part::ManagedIdentities(s.clone()));
            out.push(Part::FederatedCredentials(s.clone()));
            out.push(Part::RoleEligibilities(s.clone()));
            for c in &self.clusters {
                let part = Part::Cluster {
                    name: c.name.clone(),
                    resource_id: c.resource_id.clone(),
                };
                if part.subscription() == s {
                    out.push(part);
                }
            }
        }
        out
    }

    /// Reads everything once, as of now, committing as it goes. `on_part` is told each part
    /// as it starts (readiness names what it waits for).
    pub async fn snapshot(
        &self,
        writer: &WriterHandle,
        cancel: &CancellationToken,
        mut on_part: impl FnMut(&Part),
    ) -> Result<SnapshotReport, SnapshotError> {
        let started = Instant::now();
        let requests_before = self.client.requests();
        let at = EventTime::now();
        tracing::info!(at = %at, subscriptions = self.subscriptions.len(), clusters = self.clusters.len(), "inventory snapshot started");
        let mut reports: Vec<PartReport> = Vec::new();
        // Per kind of grant: every subscription's list completed, and the keys they listed
        // from above the subscriptions.
        let mut above: BTreeMap<FactKind, (bool, HashSet<String>)> = BTreeMap::new();
        let mut identities: Vec<String> = Vec::new();
        let mut identities_complete = false;
        let mut token_refused = false;
        for part in self.parts() {
            if token_refused {
                // One error for a refused token, not one per part: the rest is not asked.
                reports.push(PartReport {
                    part,
                    listed: 0,
                    outcome: PartOutcome::Failed {
                        error: "not read: no usable ARM token (see the first failed part)".into(),
                        refused: true,
                        token: true,
                    },
                    stats: Stats::default(),
                });
                continue;
            }
            on_part(&part);
            let report = match &part {
                Part::RoleAssignments(sub)
                | Part::Activations(sub)
                | Part::RoleEligibilities(sub) => {
                    let (complete, seen) =
                        above.entry(part.kind()).or_insert((true, HashSet::new()));
                    let r = self
                        .grants((writer, cancel), at, part.clone(), sub, seen)
                        .await?;
                    *complete &= r.outcome == PartOutcome::Completed;
                    r
                }
                Part::RoleDefinitions(sub) => {
                    self.role_definitions(writer, cancel, at, sub).await?
                }
                Part::ManagedIdentities(sub) => {
                    let (r, ids) = self.identities(writer, cancel, at, sub).await?;
                    identities_complete = r.outcome == PartOutcome::Completed;
                    identities = ids;
                    r
                }
                Part::FederatedCredentials(sub) => {
                    self.federated(writer, cancel, at, sub, &identities, identities_complete)
                        .await?
                }
                Part::Cluster { name, resource_id } => {
                    self.cluster(writer, cancel, at, name, resource_id).await?
                }
            };
            log_part(&report);
            token_refused |= matches!(report.outcome, PartOutcome::Failed { token: true, .. });
            reports.push(report);
        }
        // Grants above the subscriptions (management groups, root) are in every
        // subscription's list: gone only when no complete list has them.
        for (kind, (complete, seen)) in above {
            if !complete || token_refused {
                continue;
            }
            let mut sink = Sink::new(writer, at, "arm:above-subscriptions".into());
            sink.flush(vec![Reset::Snapshot(SnapshotScope {
                kind,
                area: SnapshotArea::AboveSubscriptions,
                seen,
                at,
                input: "arm:above-subscriptions".into(),
            })])
            .await?;
            if let Some(r) = reports.iter_mut().find(|r| r.part.kind() == kind) {
                r.stats.merge(&sink.stats);
            }
        }
        let report = SnapshotReport {
            at,
            parts: reports,
            requests: self.client.requests() - requests_before,
            took: started.elapsed(),
        };
        tracing::info!(
            at = %at,
            complete = report.complete(),
            requests = report.requests,
            took_ms = report.took.as_millis() as u64,
            "inventory snapshot finished"
        );
        Ok(report)
    }

    /// Lists `url` page by page into `sink`, mapping each item with `map`; `Ok(n)` when
    /// every page was read, the part's failure otherwise.
    async fn list_into(
        &self,
        sink: &mut Sink<'_>,
        cancel: &CancellationToken,
        part: &Part,
        url: String,
        mut map: impl FnMut(&Value) -> Result<Option<(ChangeOp, String)>, String>,
        seen: &mut HashSet<String>,
    ) -> Result<Result<usize, PartOutcome>, SnapshotError> {
        let mut next = Some(url);
        let mut page_no = 0usize;
        let mut listed = 0usize;
        let mut visited = HashSet::new();
        while let Some(u) = next.take() {
            page_no += 1;
            if !visited.insert(u.clone()) {
                return Ok(Err(failed(
                    format!("page {page_no}: nextLink {u} repeats an earlier page"),
                    false,
                )));
            }
            let page = match self.client.page(&u, part.metric(), cancel).await {
                Ok(p) => p,
                Err(ArmError::Cancelled) => return Err(SnapshotError::Cancelled),
                Err(e) => {
                    let e = if page_no > 1 {
                        ArmError::Page {
                            page: page_no,
                            source: Box::new(e),
                        }
                    } else {
                        e
                    };
                    return Ok(Err(failed_by(&e, String::new())));
                }
            };
            for (i, item) in page.items.iter().enumerate() {
                match map(item) {
                    Ok(Some((op, key))) => {
                        seen.insert(key);
                        listed += 1;
                        sink.push(op, part.kind()).await?;
                    }
                    Ok(None) => {}
                    Err(problem) => {
                        // An item we cannot read may be one we hold: deleting by absence
                        // would be wrong, so the listing counts as incomplete.
                        return Ok(Err(failed(
                            format!("page {page_no} item {i} of {u}: {problem}"),
                            false,
                        )));
                    }
                }
            }
            next = page.next;
        }
        Ok(Ok(listed))
    }

    async fn finish(
        &self,
        mut sink: Sink<'_>,
        part: Part,
        result: Result<usize, PartOutcome>,
        area: SnapshotArea,
        seen: HashSet<String>,
    ) -> Result<PartReport, SnapshotError> {
        let at = sink.at;
        let input = sink.input.clone();
        let (listed, outcome, resets) = match result {
            Ok(n) => (
                n,
                PartOutcome::Completed,
                vec![Reset::Snapshot(SnapshotScope {
                    kind: part.kind(),
                    area,
                    seen,
                    at,
                    input,
                })],
            ),
            Err(outcome) => (seen.len(), outcome, Vec::new()),
        };
        sink.flush(resets).await?;
        Ok(PartReport {
            part,
            listed,
            outcome,
            stats: sink.stats,
        })
    }

    /// Lists one of the role grants of `sub` (role assignments, PIM activations or
    /// eligibilities), which include those inherited from management groups and the root:
    /// their keys go into `above`, deleted only when every subscription's list completed.
    async fn grants(
        &self,
        (writer, cancel): (&WriterHandle, &CancellationToken),
        at: EventTime,
        part: Part,
        sub: &str,
        above: &mut HashSet<String>,
    ) -> Result<PartReport, SnapshotError> {
        type Map = fn(&Value) -> Result<Option<(ChangeOp, String)>, String>;
        let (resource, api, map): (&str, &str, Map) = match part {
            Part::Activations(_) => (
                "roleAssignmentScheduleInstances",
                super::pim::PIM_API,
                super::pim::role_activation,
            ),
            Part::RoleEligibilities(_) => (
                "roleEligibilityScheduleInstances",
                super::pim::PIM_API,
                super::pim::role_eligibility,
            ),
            _ => ("roleAssignments", AUTHORIZATION_API, |item| {
                Ok(Some(upsert_of(AzureOp::RoleAssignmentWrite, item)?))
            }),
        };
        let url = self.client.url(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/{resource}?api-version={api}"
        ));
        let mut sink = Sink::new(writer, at, format!("arm:/subscriptions/{sub}/{resource}"));
        let mut seen = HashSet::new();
        let result = self
            .list_into(&mut sink, cancel, &part, url, map, &mut seen)
            .await?;
        above.extend(
            seen.iter()
                .filter(|k| !k.starts_with("/subscriptions/"))
                .cloned(),
        );
        self.finish(
            sink,
            part,
            result,
            SnapshotArea::Subscription(sub.to_string()),
            seen,
        )
        .await
    }

    async fn role_definitions(
        &self,
        writer: &WriterHandle,
        cancel: &CancellationToken,
        at: EventTime,
        sub: &str,
    ) -> Result<PartReport, SnapshotError> {
        let part = Part::RoleDefinitions(sub.to_string());
        let url = self.client.url(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions?api-version={AUTHORIZATION_API}&$filter=type%20eq%20'CustomRole'"
        ));
        let mut sink = Sink::new(
            writer,
            at,
            format!("arm:/subscriptions/{sub}/roleDefinitions"),
        );
        let mut seen = HashSet::new();
        let result = self
            .list_into(
                &mut sink,
                cancel,
                &part,
                url,
                |item| {
                    // The filter asks for custom roles; a server that ignores it must not turn
                    // the built-ins into "unapproved custom roles".
                    let ty = item
                        .pointer("/properties/type")
                        .and_then(Value::as_str)
                        .unwrap_or("CustomRole");
                    if !ty.eq_ignore_ascii_case("CustomRole") {
                        return Ok(None);
                    }
                    upsert_of(AzureOp::RoleDefinitionWrite, item).map(Some)
                },
                &mut seen,
            )
            .await?;
        self.finish(
            sink,
            part,
            result,
            SnapshotArea::Subscription(sub.to_string()),
            seen,
        )
        .await
    }

    async fn identities(
        &self,
        writer: &WriterHandle,
        cancel: &CancellationToken,
        at: EventTime,
        sub: &str,
    ) -> Result<(PartReport, Vec<String>), SnapshotError> {
        let part = Part::ManagedIdentities(sub.to_string());
        let url = self.client.url(&format!(
            "/subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={IDENTITY_API}"
        ));
        let mut sink = Sink::new(
            writer,
            at,
            format!("arm:/subscriptions/{sub}/userAssignedIdentities"),
        );
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        let result = self
            .list_into(
                &mut sink,
                cancel,
                &part,
                url,
                |item| {
                    let r = upsert_of(AzureOp::IdentityWrite, item)?;
                    if let Some(id) = item.get("id").and_then(Value::as_str) {
                        ids.push(id.to_string());
                    }
                    Ok(Some(r))
                },
                &mut seen,
            )
            .await?;
        let report = self
            .finish(
                sink,
                part,
                result,
                SnapshotArea::Subscription(sub.to_string()),
                seen,
            )
            .await?;
        Ok((report, ids))
    }

    async fn federated(
        &self,
        writer: &WriterHandle,
        cancel: &CancellationToken,
        at: EventTime,
        sub: &str,
        identities: &[String],
        identities_complete: bool,
    ) -> Result<PartReport, SnapshotError> {
        let part = Part::FederatedCredentials(sub.to_string());
        let mut sink = Sink::new(
            writer,
            at,
            format!("arm:/subscriptions/{sub}/federatedIdentityCredentials"),
        );
        let mut seen = HashSet::new();
        let mut failure: Option<PartOutcome> = (!identities_complete).then(|| {
            failed(
                "the identities were not all listed, so their credentials cannot be".into(),
                false,
            )
        });
        let mut listed = 0usize;
        // Each identity's list is read whole (they are short: at most 20 per identity), a
        // few at once, then mapped in order.
        let mut lists = futures::stream::iter(identities.iter().cloned())
            .map(|id| async move {
                let url = format!(
                    "{}{}/federatedIdentityCredentials?api-version={IDENTITY_API}",
                    self.client.endpoint().trim_end_matches('/'),
                    id
                );
                let mut items = Vec::new();
                let r = self
                    .client
                    .list(&url, "federated_credentials", cancel, |page| {
                        items.extend(page)
                    })
                    .await;
                (id, r.map(|_| items))
            })
            .buffered(FIC_CONCURRENCY);
        while let Some((id, r)) = lists.next().await {
            match r {
                Ok(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match upsert_of(AzureOp::FederatedCredentialWrite, item) {
                            Ok((op, key)) => {
                                seen.insert(key);
                                listed += 1;
                                sink.push(op, part.kind()).await?;
                            }
                            Err(p) => {
                                failure.get_or_insert(failed(format!("{id} item {i}: {p}"), false));
                            }
                        }
                    }
                }
                Err(ArmError::Cancelled) => return Err(SnapshotError::Cancelled),
                // The identity was deleted between the two lists: it has no credentials.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    failure.get_or_insert(failed_by(&e, format!("{id}: ")));
                }
            }
        }
        drop(lists);
        let result = match failure {
            Some(f) => Err(f),
            None => Ok(listed),
        };
        self.finish(
            sink,
            part,
            result,
            SnapshotArea::Subscription(sub.to_string()),
            seen,
        )
        .await
    }

    async fn cluster(
        &self,
        writer: &WriterHandle,
        cancel: &CancellationToken,
        at: EventTime,
        name: &str,
        resource_id: &str,
    ) -> Result<PartReport, SnapshotError> {
        let part = Part::Cluster {
            name: name.to_string(),
            resource_id: resource_id.to_string(),
        };
        let mut sink = Sink::new(writer, at, format!("arm:{resource_id}"));
        let url = self
            .client
            .url(&format!("{resource_id}?api-version={CLUSTER_API}"));
        let (listed, outcome) = match self.client.get(&url, part.metric(), cancel).await {
            Ok(body) => match map::candidate(AzureOp::ClusterWrite, resource_id, Some(&body)) {
                Some(op) => {
                    sink.push(op, FactKind::ClusterSettings).await?;
                    (1, PartOutcome::Completed)
                }
                None => (
                    0,
                    failed(format!("{url}: the response has no `properties`"), false),
                ),
            },
            Err(e) if e.is_not_found() => {
                let op = ChangeOp::Delete {
                    kind: FactKind::ClusterSettings,
                    target: FactRef::Key(map::cluster_id(resource_id)),
                };
                sink.push(op, FactKind::ClusterSettings).await?;
                (0, PartOutcome::Completed)
            }
            Err(ArmError::Cancelled) => return Err(SnapshotError::Cancelled),
            Err(e) => (0, failed_by(&e, String::new())),
        };
        sink.flush(Vec::new()).await?;
        Ok(PartReport {
            part,
            listed,
            outcome,
            stats: sink.stats,
        })
    }
}

/// The upsert an ARM object implies, with its fact key; an error names what is missing.
pub fn upsert_of(op: AzureOp, item: &Value) -> Result<(ChangeOp, String), String> {
    let id = item.get("id").and_then(Value::as_str).ok_or("no `id`")?;
    match map::candidate(op, id, Some(item)) {
        Some(ChangeOp::Upsert(f)) => {
            let key = f.key.clone();
            Ok((ChangeOp::Upsert(f), key))
        }
        _ => Err(format!(
            "{} has no usable `properties` for {}",
            canonical_id(id),
            op.as_str()
        )),
    }
}
