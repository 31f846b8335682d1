//! Policy evaluation inside the batch transaction: which subjects a changed fact may affect
//! (itself, and the facts whose rules join it), the configuration gate (enabled, severity,
//! exceptions), and the sweep that re-judges everything when the rules configuration or the
//! set of live exceptions changes.

use super::{persist, BatchCtx};
use crate::config::Config;
use crate::domain::{id, EventTime, FactKind, Provenance};
use crate::engine::rules::{self, Cause, Context, FactView, Field, Gate, Rule};
use crate::engine::Status;
use crate::store::{StoreError, Tx};
use serde_json::Value;
use std::collections::BTreeSet;

/// Meta key holding the fingerprint of the rules configuration last applied.
const FINGERPRINT: &str = "policy:fingerprint";

/// The store as the rules see it.
struct StoreView<'t, 'c>(&'t Tx<'c>);

impl FactView for StoreView<'_, '_> {
    type Error = StoreError;
    fn get(&self, kind: FactKind, key: &str) -> Result<Option<Value>, StoreError> {
        self.0.fact_value(kind, key)
    }
    fn under(&self, kind: FactKind, prefix: &str) -> Result<Vec<(String, Value)>, StoreError> {
        self.0.facts_under(kind, prefix)
    }
    fn keys_under(&self, kind: FactKind, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.0.fact_keys_under(kind, prefix)
    }
    fn any_under(&self, kind: FactKind, prefix: &str) -> Result<bool, StoreError> {
        self.0.any_fact_under(kind, prefix)
    }
    fn find(
        &self,
        kind: FactKind,
        field: Field,
        text: &str,
    ) -> Result<Vec<(String, Value)>, StoreError> {
        self.0.facts_where(kind, field.path(), text)
    }
    fn any_with(&self, kind: FactKind, field: Field) -> Result<bool, StoreError> {
        self.0.any_fact_with(kind, field.path())
    }
    fn containing(&self, kind: FactKind, needle: &str) -> Result<Vec<(String, Value)>, StoreError> {
        self.0.facts_containing(kind, needle)
    }
}

/// Every rule that holds for one subject value, joins read from the store.
fn evaluate(
    tx: &Tx<'_>,
    config: &Config,
    kind: FactKind,
    key: &str,
    value: &Value,
) -> Result<Vec<rules::Hit>, StoreError> {
    let allowed = |id: &str| {
        config
            .rules
            .get(id)
            .map(|s| s.allowed_roles.clone())
            .unwrap_or_default()
    };
    let ctx = Context {
        catalog: config,
        configured: &config.clusters,
        allowed_roles: &allowed,
    };
    rules::evaluate(kind, key, value, &ctx, &StoreView(tx))
}

/// What the configuration says about `rule` on the subject `key` at `now`.
pub fn gate<'c>(config: &'c Config, rule: &Rule, key: &str, now: EventTime) -> Gate<'c> {
    let settings = config.rules.get(rule.id);
    if settings.and_then(|s| s.enabled) == Some(false) {
        return Gate::Disabled;
    }
    if let Some(e) = config
        .exceptions
        .iter()
        .find(|e| e.covers(rule.id, key) && e.active_at(now))
    {
        return Gate::Excepted {
            reason: &e.reason,
            until: e.expires.as_deref(),
        };
    }
    Gate::On(settings.and_then(|s| s.severity).unwrap_or(rule.severity))
}

enum Why<'a> {
    Observation(&'a Provenance),
    Sweep(&'a str),
}

/// Judges every rule about one subject and persists the transitions.
fn judge_subject(
    cx: &mut BatchCtx<'_, '_>,
    kind: FactKind,
    key: &str,
    why: &Why<'_>,
) -> Result<(), StoreError> {
    let (tx, config, now) = (cx.tx, cx.config, cx.now);
    let mut candidates = rules::subject_rules(kind).peekable();
    if candidates.peek().is_none() {
        return Ok(());
    }
    let value = tx
        .fact_value(kind, key)?
        // An activation past its end no longer grants anything, record of its expiry or not.
        .filter(|v| !(kind == FactKind::PimActivation && ended(v, now)));
    // Who made the subject what it is matters only to a sweep (no record at hand).
    let origin = match why {
        Why::Sweep(_) if value.is_some() => tx.fact(kind, key)?.map(|r| r.prov),
        _ => None,
    };
    let hits = match &value {
        Some(v) => evaluate(tx, config, kind, key, v)?,
        None => Vec::new(),
    };
    let known = tx.policy_findings_of(kind, key)?;
    for rule in candidates {
        let hit = hits.iter().find(|h| h.rule == rule.id);
        let id = rules::finding_id(rule.id, key);
        let status = known.iter().find(|(k, _)| *k == id).map(|(_, s)| *s);
        let tracked = status.is_some_and(|s| s.is_active() || s == Status::Excepted);
        if hit.is_none() && !tracked {
            continue;
        }
        let existing = match status {
            Some(_) => tx.finding(&id)?,
            None => None,
        };
        let cause = match why {
            Why::Observation(p) => Cause::Observation(p),
            Why::Sweep(w) => Cause::Sweep {
                at: now,
                why: w,
                origin: origin.as_ref(),
            },
        };
        let g = gate(config, rule, key, now);
        if let Some(t) = rules::judge(rule, kind, key, hit, &g, existing.as_ref(), &cause) {
            persist(cx, &t)?;
        }
    }
    Ok(())
}

/// Re-judges the policy findings a changed fact may affect: its own, and those of the facts
/// whose rules join it, found from its value now (so a cross-plane rule fires whichever side
/// arrives first) and from its value before (so a finding that relied on it resolves when it
/// goes or changes). Joins are indexed lookups on the two values, never a scan of every open
/// finding: a busy subscription stays linear.
pub fn on_fact_changed(
    cx: &mut BatchCtx<'_, '_>,
    (kind, key, previous): (FactKind, &str, Option<&Value>),
    prov: &Provenance,
) -> Result<(), StoreError> {
    let tx = cx.tx;
    let mut subjects: BTreeSet<(FactKind, String)> = BTreeSet::new();
    subjects.insert((kind, key.to_string()));
    let value = tx.fact_value(kind, key)?;
    if kind == FactKind::ClusterSettings {
        cluster_dependents(tx, key, value.as_ref(), &mut subjects)?;
    } else {
        dependents(tx, kind, key, value.as_ref(), &mut subjects)?;
        if previous.is_some() && previous != value.as_ref() {
            dependents(tx, kind, key, previous, &mut subjects)?;
        }
    }
    for (k, s) in subjects {
        judge_subject(cx, k, &s, &Why::Observation(prov))?;
    }
    Ok(())
}

/// A write that lost to a newer one still tells what the fact held in between: when a rule
/// held on that value, its finding must exist as if the records had come in order (opened by
/// this write, then judged on the current value). Joined facts are taken as they are now.
pub fn on_superseded(
    cx: &mut BatchCtx<'_, '_>,
    kind: FactKind,
    key: &str,
    value: Option<&Value>,
    prov: &Provenance,
) -> Result<(), StoreError> {
    let (tx, config, now) = (cx.tx, cx.config, cx.now);
    // A late delete: the fact was absent for a while, which opens nothing by itself.
    let Some(value) = value else {
        return Ok(());
    };
    let Some(current) = tx.fact(kind, key)? else {
        return Ok(());
    };
    if current.event_time <= prov.event_time {
        return Ok(());
    }
    let hits = evaluate(tx, config, kind, key, value)?;
    let mut opened = false;
    for hit in &hits {
        let Some(rule) = rules::rule(hit.rule) else {
            continue;
        };
        let existing = tx.finding(&rules::finding_id(rule.id, key))?;
        let evidence = crate::engine::Evidence::from(prov);
        if existing
            .as_ref()
            .is_some_and(|f| f.evidence.iter().any(|e| e.same_event(&evidence)))
        {
            continue; // this interval was reported already (a redelivery)
        }
        let g = gate(config, rule, key, now);
        if !matches!(g, Gate::On(_)) {
            continue;
        }
        if let Some(t) = rules::judge(
            rule,
            kind,
            key,
            Some(hit),
            &g,
            existing.as_ref(),
            &Cause::Observation(prov),
        ) {
            persist(cx, &t)?;
            opened = true;
        }
    }
    if opened {
        judge_subject(cx, kind, key, &Why::Observation(&current.prov))?;
    }
    Ok(())
}

/// What other facts' rules read of one cluster's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ClusterJoin {
    present: bool,
    issuer: Option<String>,
    kubelet_resource_id: Option<String>,
    principals: Vec<String>,
}

impl ClusterJoin {
    fn of(value: Option<&Value>, view: &StoreView<'_, '_>) -> Result<ClusterJoin, StoreError> {
        let Some(v) = value else {
            return Ok(ClusterJoin::default());
        };
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let mut principals: Vec<String> = text("/kubelet_identity/object_id").into_iter().collect();
        principals.extend(rules::control_plane_principals(v, view)?);
        principals.sort();
        principals.dedup();
        Ok(ClusterJoin {
            present: true,
            issuer: text("/oidc_issuer_url").map(|u| rules::issuer(&u)),
            kubelet_resource_id: text("/kubelet_identity/resource_id"),
            principals,
        })
    }
}

/// The subjects a cluster-settings change may affect, from what changed in the fields other
/// rules join on. Cluster settings are written often (every `az aks update`) while their
/// identities and issuer rarely change: re-judging every grant and credential on each write
/// would make a busy subscription quadratic. The joined fields are remembered in `meta`.
fn cluster_dependents(
    tx: &Tx<'_>,
    key: &str,
    value: Option<&Value>,
    out: &mut BTreeSet<(FactKind, String)>,
) -> Result<(), StoreError> {
    let view = StoreView(tx);
    let new = ClusterJoin::of(value, &view)?;
    let meta_key = format!("policy:join:{key}");
    let old: ClusterJoin = match tx.meta(&meta_key)? {
        Some(text) => serde_json::from_str(&text).unwrap_or_default(),
        None => ClusterJoin::default(),
    };
    if old == new {
        return Ok(());
    }
    tx.set_meta(&meta_key, &serde_json::to_string(&new).unwrap_or_default())?;
    let mut add = |k: FactKind, rows: Vec<(String, Value)>| {
        out.extend(rows.into_iter().map(|(key, _)| (k, key)));
    };
    // A cluster appearing or going changes which grants are above a watched cluster.
    if old.present != new.present {
        add(FactKind::RoleAssignment, tx.assignments_at_or_above(key)?);
    }
    if old.principals != new.principals || old.kubelet_resource_id != new.kubelet_resource_id {
        for p in old.principals.iter().chain(&new.principals) {
            add(
                FactKind::RoleAssignment,
                view.find(FactKind::RoleAssignment, Field::PrincipalId, p)?,
            );
        }
    }
    if old.issuer != new.issuer {
        add(
            FactKind::FederatedCredential,
            tx.facts_under(FactKind::FederatedCredential, "")?,
        );
    }
    Ok(())
}

/// Facts whose rules read the changed fact and may now hold.
fn dependents(
    tx: &Tx<'_>,
    kind: FactKind,
    key: &str,
    value: Option<&Value>,
    out: &mut BTreeSet<(FactKind, String)>,
) -> Result<(), StoreError> {
    use FactKind::*;
    let add = |out: &mut BTreeSet<(FactKind, String)>, k: FactKind, rows: Vec<(String, Value)>| {
        out.extend(rows.into_iter().map(|(key, _)| (k, key)));
    };
    let text = |v: Option<&Value>, p: &str| {
        v.and_then(|v| v.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match kind {
        // Judged by `cluster_dependents`, from what changed; no rule reads eligibilities.
        ClusterSettings | RoleEligibility | PimActivation => {}
        ManagedIdentity => {
            if let Some(p) = text(value, "/principal_id") {
                add(
                    out,
                    RoleAssignment,
                    tx.facts_where(RoleAssignment, Field::PrincipalId.path(), &p)?,
                );
            }
            if let Some(c) = text(value, "/client_id") {
                add(
                    out,
                    ServiceAccount,
                    tx.facts_where(ServiceAccount, Field::WorkloadIdentityClientId.path(), &c)?,
                );
            }
            let fics = format!("{key}/federatedidentitycredentials/");
            add(
                out,
                FederatedCredential,
                tx.facts_under(FederatedCredential, &fics)?,
            );
        }
        RoleAssignment => {
            if let Some(p) = text(value, "/principal_id") {
                for (mi, v) in tx.facts_where(ManagedIdentity, Field::PrincipalId.path(), &p)? {
                    if let Some(c) = text(Some(&v), "/client_id") {
                        add(
                            out,
                            ServiceAccount,
                            tx.facts_where(
                                ServiceAccount,
                                Field::WorkloadIdentityClientId.path(),
                                &c,
                            )?,
                        );
                    }
                    let fics = format!("{mi}/federatedidentitycredentials/");
                    add(
                        out,
                        FederatedCredential,
                        tx.facts_under(FederatedCredential, &fics)?,
                    );
                }
            }
        }
        ClusterRole | Role => {
            let name = rules::last_segment(key);
            let (scope, binding_kinds): (String, &[FactKind]) = match kind {
                ClusterRole => (
                    format!("{}/", cluster_of(key)),
                    &[ClusterRoleBinding, RoleBinding],
                ),
                _ => (
                    format!("{}/", key.rsplit_once('/').map_or(key, |(ns, _)| ns)),
                    &[RoleBinding],
                ),
            };
            let role_kind = if kind == ClusterRole {
                "ClusterRole"
            } else {
                "Role"
            };
            for bk in binding_kinds {
                for (b, v) in tx.facts_where(*bk, Field::RoleRefName.path(), name)? {
                    if b.starts_with(&scope)
                        && text(Some(&v), "/role_ref/kind").as_deref() == Some(role_kind)
                    {
                        out.insert((*bk, b));
                    }
                }
            }
            if kind == ClusterRole {
                add(
                    out,
                    FederatedCredential,
                    tx.facts_under(FederatedCredential, "")?,
                );
            }
        }
        ClusterRoleBinding => {
            let subjects = value
                .and_then(|v| v.get("subjects"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for s in subjects.iter().filter(|s| s["kind"] == "ServiceAccount") {
                let (Some(ns), Some(name)) = (s["namespace"].as_str(), s["name"].as_str()) else {
                    continue;
                };
                let subject = format!("system:serviceaccount:{ns}:{name}");
                add(
                    out,
                    FederatedCredential,
                    tx.facts_where(FederatedCredential, Field::Subject.path(), &subject)?,
                );
            }
        }
        ServiceAccount => {
            let mut parts = key.splitn(3, '/');
            let (cluster, ns, name) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            // The first service account of a cluster means its source has synced: from now
            // on a credential naming a missing one is an orphan, so judge them all once.
            let synced = format!("policy:synced:{cluster}");
            if value.is_some() && tx.meta(&synced)?.is_none() {
                tx.set_meta(&synced, "1")?;
                add(
                    out,
                    FederatedCredential,
                    tx.facts_under(FederatedCredential, "")?,
                );
            }
            let subject = format!("system:serviceaccount:{ns}:{name}");
            add(
                out,
                FederatedCredential,
                tx.facts_where(FederatedCredential, Field::Subject.path(), &subject)?,
            );
        }
        RoleDefinition | FederatedCredential | RoleBinding => {}
    }
    Ok(())
}

fn cluster_of(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// What the rules configuration amounts to at `now`: rule settings, watched clusters and the
/// exceptions live at that instant. When it differs from the last one applied, every subject
/// is judged again (an exception expired, a rule was disabled, a severity changed).
fn fingerprint(config: &Config, now: EventTime) -> String {
    let live: Vec<String> = config
        .exceptions
        .iter()
        .filter(|e| e.active_at(now))
        .map(|e| format!("{e:?}"))
        .collect();
    let text = format!("{:?}|{:?}|{:?}", config.rules, config.clusters, live);
    id::stable_id(&["policy-config", &text])
}

/// True when a PIM activation's `end` is at or before `now` (`null`: no end known yet).
pub(super) fn ended(v: &Value, now: EventTime) -> bool {
    v.get("end")
        .and_then(Value::as_str)
        .and_then(EventTime::parse)
        .is_some_and(|end| end <= now)
}

/// Re-judges every policy subject when the rules configuration or the set of live exceptions
/// changed since the last batch; cheap (one meta read) otherwise.
pub fn sweep(cx: &mut BatchCtx<'_, '_>) -> Result<(), StoreError> {
    let (tx, config, now) = (cx.tx, cx.config, cx.now);
    // PIM activations past their end time resolve then, not at their expiry record.
    for (key, v) in tx.facts_of_kind(FactKind::PimActivation)? {
        let open = || -> Result<bool, StoreError> {
            Ok(tx
                .policy_findings_of(FactKind::PimActivation, &key)?
                .iter()
                .any(|(_, s)| s.is_active()))
        };
        if ended(&v, now) && open()? {
            judge_subject(
                cx,
                FactKind::PimActivation,
                &key,
                &Why::Sweep("the PIM activation ended"),
            )?;
        }
    }
    let fp = fingerprint(config, now);
    let previous = tx.meta(FINGERPRINT)?;
    if previous.as_deref() == Some(fp.as_str()) {
        return Ok(());
    }
    let why = match previous {
        None => "first evaluation of the rules",
        Some(_) => "rules configuration or exceptions changed",
    };
    let mut subjects: BTreeSet<(FactKind, String)> = tx.policy_subjects()?.into_iter().collect();
    for kind in FactKind::ALL {
        if rules::subject_rules(kind).next().is_some() {
            subjects.extend(
                tx.facts_under(kind, "")?
                    .into_iter()
                    .map(|(k, _)| (kind, k)),
            );
        }
    }
    for (kind, key) in subjects {
        judge_subject(cx, kind, &key, &Why::Sweep(why))?;
    }
    tx.set_meta(FINGERPRINT, &fp)
}
