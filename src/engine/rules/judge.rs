//! From "does the rule hold" to a finding transition: open, resolve, except, re-severity.

use super::{finding_id, Hit, Rule};
use crate::domain::{EventTime, FactKind, Provenance, Severity};
use crate::engine::{Evidence, Finding, FindingKind, Status, Transition, TransitionKind};
use serde_json::json;

/// Why a subject is being judged now.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause<'a> {
    /// A record changed this fact or one the rule joins.
    Observation(&'a Provenance),
    /// A re-judgement without a record: the rules configuration changed, or an exception
    /// expired. `origin` is the record that produced the subject's current state.
    Sweep {
        /// When (wall clock).
        at: EventTime,
        /// Why, in a few words (`exception expired`, `rules configuration changed`).
        why: &'a str,
        /// Who made the subject what it is.
        origin: Option<&'a Provenance>,
    },
}

/// What the configuration says about a rule for a subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate<'a> {
    /// Judge it, at this severity.
    On(Severity),
    /// `[rules.ID] enabled = false`.
    Disabled,
    /// A live `[[exceptions]]` entry covers the subject.
    Excepted {
        /// The exception's reason.
        reason: &'a str,
        /// Its `expires` as written, if any.
        until: Option<&'a str>,
    },
}

/// The finding transition for one rule on one subject, if anything changes.
pub fn judge(
    rule: &Rule,
    kind: FactKind,
    key: &str,
    hit: Option<&Hit>,
    gate: &Gate<'_>,
    existing: Option<&Finding>,
    cause: &Cause<'_>,
) -> Option<Transition> {
    let (time, record, origin) = match cause {
        Cause::Observation(p) => (p.event_time, Some(*p), Some(*p)),
        Cause::Sweep { at, origin, .. } => (*at, None, *origin),
    };
    enum Want {
        Open(Severity),
        Excepted(String),
        Resolved(String),
    }
    let want = match (hit, gate) {
        (Some(_), Gate::On(sev)) => Want::Open(*sev),
        (Some(_), Gate::Excepted { reason, until }) => Want::Excepted(match until {
            Some(u) => format!("excepted until {u}: {reason}"),
            None => format!("excepted: {reason}"),
        }),
        (Some(_), Gate::Disabled) => Want::Resolved("rule disabled in the configuration".into()),
        (None, _) => Want::Resolved(match cause {
            Cause::Observation(_) => "condition no longer holds".into(),
            Cause::Sweep { why, .. } => format!("condition no longer holds ({why})"),
        }),
    };
    if existing.is_none() && matches!(want, Want::Resolved(_)) {
        return None;
    }
    let mut f = existing
        .cloned()
        .unwrap_or_else(|| new_finding(rule, kind, key, time));
    let before = f.clone();
    if let Some(h) = hit {
        f.title = h.title.clone();
        f.actual = Some(h.details.clone());
    }
    // References stay in the catalogue (`accessdrift rules explain ID`): every finding
    // row is rewritten on each transition, and the URLs would double its size.
    f.expected = Some(json!({
        "rule": rule.title,
        "remediation": rule.remediation,
    }));
    if let Some(p) = record {
        f.add_evidence(Evidence::from(p));
        f.occurrences += 1;
        f.last_seen = f.last_seen.max(time);
    }
    let was_active = existing.is_some_and(|e| e.status.is_active());
    let kind = match want {
        Want::Open(sev) => {
            let previous = f.severity;
            f.severity = sev;
            if let Some(p) = origin {
                f.actor = p.actor.clone();
                f.correlation_id = p.correlation_id.clone();
                if f.evidence.is_empty() {
                    f.add_evidence(Evidence::from(p));
                }
            }
            match existing {
                None => TransitionKind::Opened,
                Some(e) if !e.status.is_active() => {
                    f.status = Status::Open;
                    f.resolved_at = None;
                    f.resolution = None;
                    f.first_seen = f.first_seen.min(time);
                    // An excepted finding that never notified opens, it does not re-open.
                    if e.transitions == 0 {
                        TransitionKind::Opened
                    } else {
                        TransitionKind::Reopened
                    }
                }
                Some(_) if previous != sev => TransitionKind::SeverityChanged { from: previous },
                Some(_) => {
                    if before.title == f.title
                        && before.actual == f.actual
                        && before.expected == f.expected
                    {
                        return None;
                    }
                    TransitionKind::Updated
                }
            }
        }
        Want::Excepted(why) => {
            let unchanged = f.status == Status::Excepted && f.resolution.as_deref() == Some(&why);
            f.status = Status::Excepted;
            f.resolution = Some(why);
            if was_active {
                f.resolved_at = Some(time);
                TransitionKind::Resolved
            } else if unchanged && before.title == f.title && before.actual == f.actual {
                return None;
            } else {
                // Recorded for audit, told to no one: the risk was accepted before it opened.
                f.resolved_at.get_or_insert(time);
                TransitionKind::Updated
            }
        }
        Want::Resolved(why) => {
            if !was_active {
                if f.status == Status::Excepted {
                    // The excepted condition went away: keep the record quiet and accurate.
                    f.status = Status::Resolved;
                    f.resolution = Some(why);
                    return Some(Transition {
                        kind: TransitionKind::Updated,
                        finding: f,
                    });
                }
                return None;
            }
            f.status = Status::Resolved;
            f.resolution = Some(why);
            f.resolved_at = Some(time);
            if let Some(p) = record {
                f.actor = p.actor.clone();
                f.correlation_id = p.correlation_id.clone();
            }
            TransitionKind::Resolved
        }
    };
    if kind.notifies() {
        f.transitions += 1;
    }
    Some(Transition { kind, finding: f })
}

fn new_finding(rule: &Rule, kind: FactKind, key: &str, time: EventTime) -> Finding {
    let mut f = Finding::new(
        finding_id(rule.id, key),
        FindingKind::Policy,
        rule.id.to_string(),
        rule.severity,
        (kind, key),
        time,
    );
    f.title = rule.title.to_string();
    f
}

#[cfg(test)]
mod tests {
    use super::super::rule;
    use super::*;
    use serde_json::json;

    fn prov(t: i64) -> Provenance {
        Provenance {
            source: "test".into(),
            event_time: EventTime(t),
            operation: "op".into(),
            ..Provenance::default()
        }
    }

    fn hit() -> Hit {
        Hit {
            rule: "K8S-USER-SUBJECT",
            title: "binds alice".into(),
            details: json!({"subjects": ["User alice"]}),
        }
    }

    #[test]
    fn lifecycle_open_severity_except_resolve_reopen() {
        let r = rule("K8S-USER-SUBJECT").unwrap();
        let p1 = prov(1);
        let k = FactKind::ClusterRoleBinding;
        let opened = judge(
            r,
            k,
            "c/b",
            Some(&hit()),
            &Gate::On(Severity::Low),
            None,
            &Cause::Observation(&p1),
        )
        .unwrap();
        assert_eq!(opened.kind, TransitionKind::Opened);
        assert_eq!(opened.finding.kind, FindingKind::Policy);
        assert_eq!(opened.finding.id, finding_id("K8S-USER-SUBJECT", "c/b"));
        // the same state again changes nothing
        let p2 = prov(2);
        let same = judge(
            r,
            k,
            "c/b",
            Some(&hit()),
            &Gate::On(Severity::Low),
            Some(&opened.finding),
            &Cause::Observation(&p2),
        );
        assert_eq!(same, None);
        let sev = judge(
            r,
            k,
            "c/b",
            Some(&hit()),
            &Gate::On(Severity::High),
            Some(&opened.finding),
            &Cause::Observation(&p2),
        )
        .unwrap();
        assert_eq!(
            sev.kind,
            TransitionKind::SeverityChanged {
                from: Severity::Low
            }
        );
        let exc = judge(
            r,
            k,
            "c/b",
            Some(&hit()),
            &Gate::Excepted {
                reason: "break-glass",
                until: Some("2027-03-31"),
            },
            Some(&sev.finding),
            &Cause::Observation(&p2),
        )
        .unwrap();
        assert_eq!(
            (exc.kind.clone(), exc.finding.status),
            (TransitionKind::Resolved, Status::Excepted)
        );
        assert_eq!(
            exc.finding.resolution.as_deref(),
            Some("excepted until 2027-03-31: break-glass")
        );
        let sweep = Cause::Sweep {
            at: EventTime(3),
            why: "exception expired",
            origin: None,
        };
        let back = judge(
            r,
            k,
            "c/b",
            Some(&hit()),
            &Gate::On(Severity::Low),
            Some(&exc.finding),
            &sweep,
        )
        .unwrap();
        assert_eq!(
            (back.kind.clone(), back.finding.status),
            (TransitionKind::Reopened, Status::Open)
        );
        let gone = judge(
            r,
            k,
            "c/b",
            None,
            &Gate::On(Severity::Low),
            Some(&back.finding),
            &Cause::Observation(&prov(4)),
        )
        .unwrap();
        assert_eq!(
            (gone.kind, gone.finding.status),
            (TransitionKind::Resolved, Status::Resolved)
        );
    }

    #[test]
    fn excepted_before_opening_is_recorded_silently_then_opens_on_expiry() {
        let r = rule("K8S-USER-SUBJECT").unwrap();
        let p = prov(1);
        let gate = Gate::Excepted {
            reason: "vendor",
            until: None,
        };
        let t = judge(
            r,
            FactKind::RoleBinding,
            "c/n/b",
            Some(&hit()),
            &gate,
            None,
            &Cause::Observation(&p),
        )
        .unwrap();
        assert_eq!(
            (t.kind.clone(), t.finding.status, t.finding.transitions),
            (TransitionKind::Updated, Status::Excepted, 0)
        );
        let sweep = Cause::Sweep {
            at: EventTime(5),
            why: "exception expired",
            origin: Some(&p),
        };
        let o = judge(
            r,
            FactKind::RoleBinding,
            "c/n/b",
            Some(&hit()),
            &Gate::On(Severity::Low),
            Some(&t.finding),
            &sweep,
        )
        .unwrap();
        assert_eq!(
            (o.kind, o.finding.status, o.finding.transitions),
            (TransitionKind::Opened, Status::Open, 1)
        );
    }
}
