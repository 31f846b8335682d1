//! `[rules.ID]` and `[[exceptions]]`: per-rule choices and time-boxed, justified exceptions.

use crate::domain::{EventTime, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every rule id of the catalogue. Ids are a contract (scripts, exceptions, routing); the
/// engine's catalogue is tested to list exactly these, so a typo in a config file is an error.
pub const RULE_IDS: &[&str] = &[
    "AKS-LOCAL-ACCOUNTS",
    "AKS-ENTRA-UNMANAGED",
    "AKS-AZURE-RBAC-OFF",
    "AKS-NO-ADMIN-GROUPS",
    "AKS-SERVICE-PRINCIPAL",
    "AKS-WORKLOAD-IDENTITY-OFF",
    "AKS-ADMIN-CREDENTIAL-USED",
    "K8S-LOCAL-ACCOUNT-USED",
    "AKS-COMMAND-INVOKE",
    "AZ-PRIVILEGED-ROLE-ABOVE-CLUSTER",
    "AZ-PIM-ACTIVATION",
    "AZ-CUSTOM-ROLE-ADMIN-CREDENTIAL",
    "ID-KUBELET-EXCESS-ROLES",
    "ID-CONTROL-PLANE-EXCESS-ROLES",
    "ID-FIC-FOREIGN-ISSUER",
    "ID-FIC-ORPHAN-SUBJECT",
    "K8S-CLUSTER-ADMIN-BINDING",
    "K8S-ANONYMOUS-BINDING",
    "K8S-WILDCARD-RULE",
    "K8S-ESCALATION-VERBS",
    "K8S-SECRETS-READ",
    "K8S-DEFAULT-SA-PRIVILEGED",
    "K8S-USER-SUBJECT",
    "X-FIC-TO-CLUSTER-ADMIN",
    "X-WORKLOAD-IDENTITY-PRIVILEGED",
];

/// Rules whose allow-list of Azure roles (`allowed_roles`) can be extended.
pub const ROLE_ALLOW_LIST_RULES: &[&str] =
    &["ID-KUBELET-EXCESS-ROLES", "ID-CONTROL-PLANE-EXCESS-ROLES"];

/// `[rules.ID]`: choices for one rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// `false` turns the rule off: its findings resolve and no new ones open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replaces the rule's default severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Extra role definition GUIDs the identity may hold at any scope (identity rules only).
    #[serde(default)]
    pub allowed_roles: Vec<String>,
}

/// `[[exceptions]]`: one accepted risk, named, justified and (usually) time-boxed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Rule id the exception applies to.
    pub rule: String,
    /// Glob over the subject's fact key (`*` any run of characters, `?` one character).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Why the risk is accepted; shown on the finding it silences.
    pub reason: String,
    /// Last day (UTC, `YYYY-MM-DD`) or instant (RFC 3339) the exception applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Exception {
    /// The instant the exception stops applying; `None` when it never expires.
    /// A date means "through that day": it stops at the next midnight UTC.
    pub fn expires_at(&self) -> Option<EventTime> {
        parse_expiry(self.expires.as_deref()?)
    }

    /// True while the exception applies at `now`.
    pub fn active_at(&self, now: EventTime) -> bool {
        self.expires_at().is_none_or(|t| now < t)
    }

    /// True when this exception covers `rule` on the subject `key`.
    pub fn covers(&self, rule: &str, key: &str) -> bool {
        self.rule == rule && glob_match(&self.pattern, key)
    }
}

fn parse_expiry(s: &str) -> Option<EventTime> {
    let s = s.trim();
    let b = s.as_bytes();
    let date_only = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    if date_only {
        let start = EventTime::parse(&format!("{s}T00:00:00Z"))?;
        return Some(start.add_nanos(86_400 * 1_000_000_000));
    }
    EventTime::parse(s)
}

/// `*` matches any run of characters (including `/` and `|`), `?` exactly one; no escapes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks `[rules.*]` and `[[exceptions]]`; returns `(dotted key, problem and fix)`.
pub fn validate(
    rules: &BTreeMap<String, RuleSettings>,
    exceptions: &[Exception],
) -> Result<(), (String, String)> {
    let known = || RULE_IDS.join(", ");
    for (id, s) in rules {
        if !RULE_IDS.contains(&id.as_str()) {
            return Err((
                format!("rules.{id}"),
                format!(
                    "unknown rule id; `accessdrift rules` lists them: {}",
                    known()
                ),
            ));
        }
        if !s.allowed_roles.is_empty() && !ROLE_ALLOW_LIST_RULES.contains(&id.as_str()) {
            return Err((
                format!("rules.{id}.allowed_roles"),
                format!(
                    "only {} take allowed_roles",
                    ROLE_ALLOW_LIST_RULES.join(" and ")
                ),
            ));
        }
        for g in &s.allowed_roles {
            if g.len() != 36 || g.matches('-').count() != 4 {
                return Err((
                    format!("rules.{id}.allowed_roles"),
                    format!("{g:?} is not a role definition GUID like 3913510d-42f4-4e42-8a64-420c390055eb"),
                ));
            }
        }
    }
    for (i, e) in exceptions.iter().enumerate() {
        if !RULE_IDS.contains(&e.rule.as_str()) {
            return Err((
                format!("exceptions[{i}].rule"),
                format!("unknown rule id {:?}; one of {}", e.rule, known()),
            ));
        }
        if e.pattern.trim().is_empty() {
            return Err((
                format!("exceptions[{i}].match"),
                "must be a glob over the finding's subject key, e.g. \"aks-prod/kube-system/*\""
                    .into(),
            ));
        }
        if e.reason.trim().is_empty() {
            return Err((
                format!("exceptions[{i}].reason"),
                "must say why the risk is accepted (it is shown on the finding)".into(),
            ));
        }
        if let Some(x) = &e.expires {
            if parse_expiry(x).is_none() {
                return Err((
                    format!("exceptions[{i}].expires"),
                    format!("{x:?} is not a date: write YYYY-MM-DD (through that day, UTC) or an RFC 3339 time"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        for (p, t, want) in [
            ("*", "anything/at|all", true),
            ("aks-prod/kube-system/*", "aks-prod/kube-system/x", true),
            ("aks-prod/kube-system/*", "aks-prod/default/x", false),
            ("*|11111111-*|*", "/subscriptions/s|11111111-aa|b", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*x*y", "axbxcy", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn date_expiry_is_through_that_day() {
        let e = Exception {
            rule: "K8S-USER-SUBJECT".into(),
            pattern: "*".into(),
            reason: "r".into(),
            expires: Some("2027-03-31".into()),
        };
        assert!(e.active_at(EventTime::parse("2027-03-31T23:59:59Z").unwrap()));
        assert!(!e.active_at(EventTime::parse("2027-04-01T00:00:00Z").unwrap()));
    }
}
