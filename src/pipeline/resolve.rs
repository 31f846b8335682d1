//! Joins the phases of one Azure operation across records, batches and runs.

use crate::domain::{ChangeOp, Observation, Phase, Provenance, NO_CORRELATION};
use crate::sources::SkipReason;
use crate::store::{PendingRow, Result, Tx};

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

const APPLIED: &str = "applied";
const FAILED: &str = "failed";

/// Decides, using and updating the pending phases in `tx`, what an observation does.
pub fn resolve(tx: &Tx<'_>, obs: Observation) -> Result<Resolution> {
    let Some(op_id) = obs.operation_id.as_deref() else {
        return Ok(match (obs.phase, obs.candidate) {
            (Phase::Success, Some(c)) => Resolution::Apply(c, obs.prov),
            (Phase::Success, None) => Resolution::Skip(SkipReason::NoBody),
            (Phase::Failure, _) => Resolution::Skip(SkipReason::Failed),
            _ => Resolution::Skip(SkipReason::Pending),
        });
    };
    let rows = tx.pending(op_id)?;
    let has = |p: &str| rows.iter().any(|r| r.phase == p);
    if has(APPLIED) {
        return Ok(Resolution::Skip(SkipReason::Duplicate));
    }
    if has(FAILED) {
        return Ok(Resolution::Skip(SkipReason::Failed));
    }
    match obs.phase {
        Phase::Failure => {
            tx.settle_pending(op_id, FAILED, &obs.prov)?;
            Ok(Resolution::Skip(SkipReason::Failed))
        }
        Phase::Start | Phase::Accept => {
            let Some(candidate) = obs.candidate else {
                return Ok(Resolution::Skip(SkipReason::Pending));
            };
            // The Success came first (out of order): this body completes it.
            if let Some(success) = rows.iter().find(|r| r.phase == Phase::Success.as_str()) {
                let prov = merge(&success.prov, &obs.prov);
                settle_applied(tx, op_id, &prov)?;
                return Ok(Resolution::Apply(candidate, prov));
            }
            tx.put_pending(op_id, obs.phase.as_str(), Some(&candidate), &obs.prov)?;
            Ok(Resolution::Skip(SkipReason::Pending))
        }
        Phase::Success => {
            let earlier = latest_candidate(&rows);
            let candidate = obs
                .candidate
                .or_else(|| earlier.map(|r| r.candidate.clone().expect("filtered")));
            match candidate {
                Some(c) => {
                    let prov = match earlier {
                        Some(e) => merge(&obs.prov, &e.prov),
                        None => obs.prov,
                    };
                    settle_applied(tx, op_id, &prov)?;
                    Ok(Resolution::Apply(c, prov))
                }
                None => {
                    tx.put_pending(op_id, Phase::Success.as_str(), None, &obs.prov)?;
                    Ok(Resolution::Skip(SkipReason::Pending))
                }
            }
        }
    }
}

/// Marks an operation applied. Without a correlation id the "operation" is only the resource,
/// so no marker is kept: it would swallow the next real change to that resource.
fn settle_applied(tx: &Tx<'_>, op_id: &str, prov: &Provenance) -> Result<()> {
    if op_id.starts_with(NO_CORRELATION) && op_id[NO_CORRELATION.len()..].starts_with('|') {
        tx.clear_pending(op_id)
    } else {
        tx.settle_pending(op_id, APPLIED, prov)
    }
}

fn latest_candidate(rows: &[PendingRow]) -> Option<&PendingRow> {
    rows.iter()
        .filter(|r| r.candidate.is_some())
        .max_by_key(|r| (r.prov.event_time, r.phase == Phase::Start.as_str()))
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
