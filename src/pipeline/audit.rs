//! Joins Kubernetes changes (from the watch) to their audit records (who made them), in
//! whichever order the two arrive, across batches and restarts.
//!
//! A change that moved findings and found no audit record waits in `k8s_changes`; an audit
//! record that found no change waits in `audit_writes`. The later half completes the join:
//! before a change is applied its actor is looked up (so the finding and its first alert say
//! who), and an audit record that comes after names the actor on the findings that change
//! moved, in the alert still held for it or in an `attributed` follow-up.

use super::{apply_activity, BatchCtx, SkipReason};
use crate::domain::{
    Activity, ActivityKind, ActorClass, AuditWrite, ChangeOp, FactKind, FactRef, Provenance,
};
use crate::engine::attribution::{self, How, Side};
use crate::engine::{Evidence, Transition, TransitionKind};
use crate::store::{AuditRow, ChangeRow, StoreError};

fn window(cx: &BatchCtx<'_, '_>) -> i64 {
    super::nanos(cx.config.pipeline.attribution_window)
}

/// How long both halves are kept (ingest time): the window, plus an hour for a restart
/// between them or an audit stream that lags.
pub(super) fn retention(config: &crate::config::Config) -> std::time::Duration {
    config.pipeline.attribution_window + std::time::Duration::from_secs(3600)
}

/// Applies one audit record: marks its cluster as sending audit, raises a local-account
/// use, and attributes the change it describes or waits for it.
pub(super) fn apply(
    cx: &mut BatchCtx<'_, '_>,
    a: &AuditWrite,
    prov: &Provenance,
) -> Result<(), StoreError> {
    cx.tx.set_audit_seen(&a.cluster, cx.now)?;
    let write = crate::sources::kube_audit::is_write(&a.verb);
    if write && prov.actor.class == Some(ActorClass::LocalAccount) {
        let activity = Activity {
            kind: ActivityKind::LocalAccountUsed,
            subject: a.cluster_id.clone(),
        };
        if apply_activity(cx, &activity, prov)? {
            cx.stats.applied += 1;
        }
    }
    let (Some(target), Some(audit_id)) = (&a.target, prov.actor.audit_id.as_deref()) else {
        // A heartbeat, or a local-account write of something accessdrift does not watch.
        return Ok(());
    };
    let row = AuditRow {
        audit_id: audit_id.to_string(),
        kind: target.kind,
        key: target.key.clone(),
        is_delete: a.is_delete(),
        resource_version: prov.resource_version.clone(),
        event_time: prov.event_time,
        prov: prov.clone(),
    };
    if !cx.tx.put_audit(&row, cx.now)? {
        cx.stats.skip(SkipReason::Duplicate);
        return Ok(());
    }
    cx.audits_waiting = Some(true);
    cx.stats.audited += 1;
    let collection = target.key.ends_with('/');
    let changes = cx
        .tx
        .unattributed_changes(target.kind, &target.key, collection)?;
    let me = Side {
        is_delete: row.is_delete,
        resource_version: row.resource_version.as_deref(),
        time: row.event_time,
    };
    let sides: Vec<Side<'_>> = changes.iter().map(side_of_change).collect();
    if collection {
        // One deletecollection deleted every object the watch saw go under its prefix.
        let w = window(cx);
        for (c, s) in changes.iter().zip(&sides) {
            if attribution::pick(&me, std::slice::from_ref(s), w).is_some() {
                attribute_change(cx, c, prov, How::Time)?;
            }
        }
        return Ok(());
    }
    if let Some((i, how)) = attribution::pick(&me, &sides, window(cx)) {
        cx.tx.set_audit_matched(audit_id)?;
        attribute_change(cx, &changes[i], prov, how)?;
    }
    Ok(())
}

fn side_of_change(c: &ChangeRow) -> Side<'_> {
    Side {
        is_delete: c.is_delete,
        resource_version: c.resource_version.as_deref(),
        time: c.event_time,
    }
}

/// The audit record waiting for this Kubernetes change, if one is: its actor goes onto the
/// change before it is applied. Returns the record's audit id, to mark it taken once the
/// change did change something.
pub(super) fn actor_for_change(
    cx: &mut BatchCtx<'_, '_>,
    op: &ChangeOp,
    prov: &mut Provenance,
) -> Result<Option<(String, How)>, StoreError> {
    let Some((kind, key, is_delete)) = kube_target(op, prov) else {
        return Ok(None);
    };
    if !prov.actor.is_empty() {
        return Ok(None);
    }
    // An initial sync of 100,000 objects with no audit record waiting asks once, not 100,000
    // times.
    let waiting = match cx.audits_waiting {
        Some(w) => w,
        None => {
            let w = cx.tx.audits_waiting()?;
            cx.audits_waiting = Some(w);
            w
        }
    };
    if !waiting {
        return Ok(None);
    }
    let audits = cx.tx.unmatched_audits(kind, key)?;
    if audits.is_empty() {
        return Ok(None);
    }
    let me = Side {
        is_delete,
        resource_version: prov.resource_version.as_deref(),
        time: prov.event_time,
    };
    let sides: Vec<Side<'_>> = audits
        .iter()
        .map(|a| Side {
            is_delete: a.is_delete,
            resource_version: a.resource_version.as_deref(),
            time: a.event_time,
        })
        .collect();
    let Some((i, how)) = attribution::pick(&me, &sides, window(cx)) else {
        return Ok(None);
    };
    let audit = &audits[i];
    prov.actor = audit.prov.actor.clone();
    // A deletecollection (prefix key) takes every delete under it: never marked taken.
    let id = (!audit.key.ends_with('/')).then(|| audit.audit_id.clone());
    Ok(Some((id.unwrap_or_default(), how)))
}

/// After a Kubernetes change was applied: the audit record it took is marked; the change is
/// stored with the findings it moved (or the open drift finding of its object), waiting for
/// its audit record or, already attributed, so that an older record arriving later cannot
/// name its author on a state it did not make.
pub(super) fn after_change(
    cx: &mut BatchCtx<'_, '_>,
    op: &ChangeOp,
    prov: &Provenance,
    took: Option<(String, How)>,
    has_baseline: bool,
) -> Result<(), StoreError> {
    let mut touched = std::mem::take(&mut cx.touched);
    let Some((kind, key, is_delete)) = kube_target(op, prov) else {
        return Ok(());
    };
    if let Some((audit_id, how)) = &took {
        if !audit_id.is_empty() {
            cx.tx.set_audit_matched(audit_id)?;
        }
        crate::metrics::global().attributed(how.as_str(), Some(std::time::Duration::ZERO));
        cx.stats.attributed += 1;
    }
    if touched.is_empty() && has_baseline {
        let id = crate::engine::drift::finding_id(kind, key);
        if cx.tx.finding(&id)?.is_some_and(|f| f.status.is_active()) {
            touched.push(id);
        }
    }
    if touched.is_empty() || (took.is_none() && !prov.actor.is_empty()) {
        return Ok(());
    }
    let attributed = took
        .as_ref()
        .map(|(id, _)| if id.is_empty() { "-" } else { id.as_str() });
    cx.tx.put_change(
        &ChangeRow {
            seq: 0,
            kind,
            key: key.to_string(),
            is_delete,
            resource_version: prov.resource_version.clone(),
            event_time: prov.event_time,
            findings: touched,
            ingested_at: cx.now,
        },
        attributed,
        cx.now,
    )
}

/// Kind, key and delete-ness of a Kubernetes watch change.
fn kube_target<'o>(op: &'o ChangeOp, prov: &Provenance) -> Option<(FactKind, &'o str, bool)> {
    if prov.source != crate::sources::kubernetes::SOURCE {
        return None;
    }
    match op {
        ChangeOp::Upsert(f) => Some((f.kind, f.key.as_str(), false)),
        ChangeOp::Delete {
            kind,
            target: FactRef::Key(k),
        } => Some((*kind, k.as_str(), true)),
        _ => None,
    }
}

/// Names the audit record's actor on every finding the change moved: in the alerts still
/// held for it (released now), else in an `attributed` follow-up.
fn attribute_change(
    cx: &mut BatchCtx<'_, '_>,
    change: &ChangeRow,
    prov: &Provenance,
    how: How,
) -> Result<(), StoreError> {
    let audit_id = prov.actor.audit_id.as_deref().unwrap_or_default();
    cx.tx.set_change_attributed(change.seq, audit_id)?;
    if cx
        .tx
        .later_change_attributed(change.kind, &change.key, change.event_time)?
    {
        // A newer change of the object already says who made the state.
        return Ok(());
    }
    let waited = cx.now.0.saturating_sub(change.ingested_at.0).max(0);
    crate::metrics::global().attributed(
        how.as_str(),
        Some(std::time::Duration::from_nanos(waited as u64)),
    );
    for id in &change.findings {
        let Some(mut f) = cx.tx.finding(id)? else {
            continue;
        };
        if f.actor.audit_id.as_deref() == Some(audit_id) {
            continue;
        }
        f.actor = prov.actor.clone();
        f.add_evidence(Evidence::from(prov));
        let actor = serde_json::to_value(&f.actor).unwrap_or_default();
        let released = cx.tx.release_held(&f.id, |payload| {
            match serde_json::from_str::<serde_json::Value>(payload) {
                Ok(mut v) => {
                    v["actor"] = actor.clone();
                    v.to_string()
                }
                Err(_) => payload.to_string(),
            }
        })?;
        let rest: Vec<String> = cx
            .sinks
            .iter()
            .filter(|s| !released.contains(s))
            .cloned()
            .collect();
        if rest.is_empty() {
            // Every alert still waited: they now say who, and nothing more goes out.
            cx.tx.put_finding(&f)?;
            cx.stats.attributed += 1;
            continue;
        }
        f.transitions += 1;
        let t = Transition {
            kind: TransitionKind::Attributed,
            finding: f,
        };
        super::persist_to(cx, &t, &rest)?;
    }
    Ok(())
}
