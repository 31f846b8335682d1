//! The Azure side of applying one observation: the ARM reads a record asks for (hints), PIM
//! activations that make their role assignment approved while they last, and late records
//! that say who made a change a snapshot saw first.

use super::{persist, BatchCtx};
use crate::domain::{ChangeOp, EventTime, FactKind, Observation, Provenance};
use crate::engine::drift;
use crate::engine::{Evidence, Transition, TransitionKind};
use crate::store::{StoreError, Tx};

/// A PIM activation record says who activated what, not until when: the inventory reads the
/// schedule instances of that scope and principal (`hints::read_activation`).
pub(super) fn pim_hint(op: &ChangeOp, prov: &Provenance) -> Option<crate::ingest::Hint> {
    use crate::sources::activity_log::AzureOp;
    match op {
        ChangeOp::Upsert(f)
            if f.kind == FactKind::PimActivation
                && prov.operation == AzureOp::PimActivated.as_str() =>
        {
            Some(crate::ingest::Hint {
                kind: FactKind::PimActivation,
                resource_id: f.key.clone(),
                prov: prov.clone(),
            })
        }
        _ => None,
    }
}

/// The resource an Activity Log Success without a body names, for the inventory to read.
pub(super) fn hint_of(obs: &Observation) -> Option<crate::ingest::Hint> {
    use crate::sources::activity_log::AzureOp;
    if obs.phase != crate::domain::Phase::Success || obs.candidate.is_some() {
        return None;
    }
    let op = AzureOp::from_name(&obs.prov.operation)?;
    if !op.needs_body() {
        return None;
    }
    let resource_id = obs.operation_id.as_deref()?.split_once('|')?.1;
    Some(crate::ingest::Hint {
        kind: op.fact_kind()?,
        resource_id: crate::domain::canonical_id(resource_id),
        prov: obs.prov.clone(),
    })
}

/// A record that reports, late, a change the inventory already applied: its author and
/// correlation id go onto the finding that change opened or resolved, and the alert says
/// who (`attributed`). Records newer than the sighting, or findings someone already
/// attributed, are left alone.
pub(super) fn attribute(
    cx: &mut BatchCtx<'_, '_>,
    kind: FactKind,
    key: &str,
    prov: &Provenance,
) -> Result<(), StoreError> {
    if prov.source == crate::domain::INVENTORY_SOURCE || prov.actor.is_empty() {
        return Ok(());
    }
    let Some(f) = cx.tx.finding(&drift::finding_id(kind, key))? else {
        return Ok(());
    };
    match f.seen_by_inventory() {
        Some(seen) if prov.event_time <= seen => {}
        _ => return Ok(()),
    }
    let mut f = f;
    f.actor = prov.actor.clone();
    f.correlation_id = prov.correlation_id.clone();
    f.add_evidence(Evidence::from(prov));
    f.transitions += 1;
    persist(
        cx,
        &Transition {
            kind: TransitionKind::Attributed,
            finding: f,
        },
    )
}

/// True when a PIM activation of `key` (`scope|principal|role`) is in force and the
/// eligibility it used is in the baseline.
pub(super) fn activation_approved(
    tx: &Tx<'_>,
    key: &str,
    now: EventTime,
) -> Result<bool, StoreError> {
    let active = tx
        .fact(FactKind::PimActivation, key)?
        .and_then(|f| f.value)
        .is_some_and(|v| !super::policy::ended(&v, now));
    Ok(active && tx.baseline_value(FactKind::RoleEligibility, key)?.is_some())
}
