//! Joins the phases of one Azure operation across records, batches and runs.
//!
//! An operation is `correlationId|resourceId`. With a correlation id the phases of one
//! operation are known exactly, and terminal markers (`applied`, `failed`) make redeliveries
//! inert. Without one, the resource id is all there is: several operations on one resource
//! share it, so there are no markers (they would swallow the next operation), and phases pair
//! by time: a Success takes the latest Start at or before it, a Failure drops the phases at or
//! before it.

use super::SkipReason;
use crate::domain::{ChangeOp, EventTime, Observation, Phase, Provenance, NO_CORRELATION};
use crate::store::{PendingKind, PendingRow, Result, Tx};

/// What to do with one observation.
// Short-lived and moved once; boxing would only add an allocation per change.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Resolution {
    /// Apply this change with this provenance.
    Apply(ChangeOp, Provenance),
    /// Nothing to apply (yet).
    Skip(SkipReason),
}

/// True for operation ids built from the resource id alone.
fn uncorrelated(op_id: &str) -> bool {
    op_id
        .strip_prefix(NO_CORRELATION)
        .is_some_and(|r| r.starts_with('|'))
}

/// Decides, using and updating the pending phases in `tx`, what an observation does.
/// `now` is the ingest time that pending phases expire from.
pub fn resolve(tx: &Tx<'_>, obs: Observation, now: EventTime) -> Result<Resolution> {
    let Some(op_id) = obs.operation_id.as_deref() else {
        return Ok(match (obs.phase, obs.candidate) {
            (Phase::Success, Some(c)) => Resolution::Apply(c, obs.prov),
            (Phase::Success, None) => Resolution::Skip(SkipReason::NoBody),
            (Phase::Failure, _) => Resolution::Skip(SkipReason::Failed),
            _ => Resolution::Skip(SkipReason::Pending),
        });
    };
    let loose = uncorrelated(op_id);
    let rows = tx.pending(op_id)?;
    if rows.iter().any(|r| r.kind == PendingKind::Applied) {
        return Ok(Resolution::Skip(SkipReason::Duplicate));
    }
    if rows.iter().any(|r| r.kind == PendingKind::Failed) {
        return Ok(Resolution::Skip(SkipReason::Failed));
    }
    let time = obs.prov.event_time;
    match obs.phase {
        Phase::Failure => {
            if loose {
                tx.clear_pending_until(op_id, time)?;
            } else {
                tx.settle_pending(op_id, PendingKind::Failed, &obs.prov, now)?;
            }
            Ok(Resolution::Skip(SkipReason::Failed))
        }
        Phase::Start | Phase::Accept => {
            let Some(candidate) = obs.candidate else {
                return Ok(Resolution::Skip(SkipReason::Pending));
            };
            // The Success came first (out of order): this body completes it.
            let success = rows.iter().find(|r| {
                r.kind == PendingKind::Phase(Phase::Success)
                    && (!loose || r.prov.event_time >= time)
            });
            if let Some(success) = success {
                let prov = merge(&success.prov, &obs.prov);
                settle_applied(tx, op_id, loose, &prov, now)?;
                return Ok(Resolution::Apply(candidate, prov));
            }
            tx.put_pending(
                op_id,
                PendingKind::Phase(obs.phase),
                Some(&candidate),
                &obs.prov,
                now,
            )?;
            Ok(Resolution::Skip(SkipReason::Pending))
        }
        Phase::Success => {
            let earlier = body_before(&rows, time, loose);
            let candidate = obs
                .candidate
                .or_else(|| earlier.and_then(|r| r.candidate.clone()));
            match candidate {
                Some(c) => {
                    let prov = match earlier {
                        Some(e) => merge(&obs.prov, &e.prov),
                        None => obs.prov,
                    };
                    settle_applied(tx, op_id, loose, &prov, now)?;
                    Ok(Resolution::Apply(c, prov))
                }
                None => {
                    tx.put_pending(
                        op_id,
                        PendingKind::Phase(Phase::Success),
                        None,
                        &obs.prov,
                        now,
                    )?;
                    Ok(Resolution::Skip(SkipReason::Pending))
                }
            }
        }
    }
}

/// Marks an operation applied. Without a correlation id only the phases up to the Success
/// are dropped: a later Start on the same resource is the next operation.
fn settle_applied(
    tx: &Tx<'_>,
    op_id: &str,
    loose: bool,
    prov: &Provenance,
    now: EventTime,
) -> Result<()> {
    if loose {
        tx.clear_pending_until(op_id, prov.event_time)
    } else {
        tx.settle_pending(op_id, PendingKind::Applied, prov, now)
    }
}

/// The body of the request that this Success completes: the latest Start (or Accept) with a
/// body; without a correlation id only those at or before the Success count.
fn body_before(rows: &[PendingRow], success: EventTime, loose: bool) -> Option<&PendingRow> {
    rows.iter()
        .filter(|r| r.candidate.is_some())
        .filter(|r| matches!(r.kind, PendingKind::Phase(Phase::Start | Phase::Accept)))
        .filter(|r| !loose || r.prov.event_time <= success)
        .max_by_key(|r| {
            (
                r.prov.event_time,
                r.kind == PendingKind::Phase(Phase::Start),
            )
        })
}

/// The Success's provenance, with the caller details the other phase had and it lacks.
fn merge(success: &Provenance, other: &Provenance) -> Provenance {
    let mut p = success.clone();
    let a = &mut p.actor;
    let o = &other.actor;
    a.upn = a.upn.take().or_else(|| o.upn.clone());
    a.object_id = a.object_id.take().or_else(|| o.object_id.clone());
    a.app_id = a.app_id.take().or_else(|| o.app_id.clone());
    a.ip = a.ip.take().or_else(|| o.ip.clone());
    p
}
