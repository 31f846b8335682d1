//! Text and JSON renderings of summaries and findings.

use crate::domain::Plane;
use crate::engine::Finding;
use crate::pipeline::replay::ReplaySummary;
use serde_json::{json, Value};
use std::fmt::Write;

/// At most this many malformed records are listed in text output (all are counted).
const MAX_MALFORMED_SHOWN: usize = 20;

/// The replay summary for people.
pub fn summary(s: &ReplaySummary, has_baseline: bool) -> String {
    let st = &s.stats;
    let skipped: u64 = st.skipped.values().sum();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "replayed {} file(s): {} records",
        s.files.len(),
        s.records
    );
    let _ = writeln!(
        o,
        "  applied     {:>8}  (state changes and activities)",
        st.applied
    );
    let _ = writeln!(
        o,
        "  unchanged   {:>8}  (same access as stored: duplicates, metadata-only updates)",
        st.unchanged
    );
    let _ = writeln!(o, "  skipped     {skipped:>8}");
    for (reason, n) in &st.skipped {
        let _ = writeln!(o, "    {:<22}{n:>8}", reason.as_str());
    }
    let _ = writeln!(o, "  malformed   {:>8}", s.malformed.len());
    for m in s.malformed.iter().take(MAX_MALFORMED_SHOWN) {
        let _ = writeln!(
            o,
            "    {} record {} (line {}): {}",
            m.input, m.index, m.line, m.problem
        );
    }
    if s.malformed.len() > MAX_MALFORMED_SHOWN {
        let _ = writeln!(
            o,
            "    … and {} more (see the log)",
            s.malformed.len() - MAX_MALFORMED_SHOWN
        );
    }
    let _ = writeln!(
        o,
        "  operations waiting for a phase: {}",
        s.pending_operations
    );
    let _ = writeln!(
        o,
        "findings: {} opened, {} reopened, {} resolved, {} severity changes; {} notifications queued",
        st.opened, st.reopened, st.resolved, st.severity_changed, st.notifications
    );
    if !has_baseline {
        let _ = writeln!(
            o,
            "no baseline yet: {} changed facts were stored but not judged. Approve the current state with\n  accessdrift baseline capture --db PATH",
            st.awaiting_baseline
        );
    }
    o
}

/// The replay summary for scripts.
pub fn summary_json(s: &ReplaySummary) -> Value {
    let st = &s.stats;
    json!({
        "files": s.files,
        "records": s.records,
        "applied": st.applied,
        "unchanged": st.unchanged,
        "skipped": st.skipped.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "malformed": s.malformed.iter().map(|m| json!({"input": m.input, "index": m.index, "line": m.line, "problem": m.problem})).collect::<Vec<_>>(),
        "pending_operations": s.pending_operations,
        "findings": {"opened": st.opened, "reopened": st.reopened, "resolved": st.resolved, "severity_changed": st.severity_changed},
        "notifications": st.notifications,
        "awaiting_baseline": st.awaiting_baseline,
    })
}

/// One finding as the JSON contract names it.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "kind": f.kind.as_str(),
        "rule": f.rule,
        "severity": f.severity.as_str(),
        "status": f.status.as_str(),
        "revision": f.revision,
        "title": f.title,
        "fact_kind": f.fact_kind.as_str(),
        "fact_key": f.fact_key,
        "change": f.change.map(|c| c.as_str()),
        "expected": f.expected,
        "actual": f.actual,
        "diff": f.diff,
        "actor": actor_json(&f.actor),
        "correlation_id": f.correlation_id,
        "first_seen": f.first_seen,
        "last_seen": f.last_seen,
        "resolved_at": f.resolved_at,
        "resolution": f.resolution,
        "occurrences": f.occurrences,
        "evidence": f.evidence,
        // The trace of the batch that opened it (null when traces were not exported).
        "trace_id": f.trace_id,
        "trace_span_id": f.trace_span_id,
        "seen_by_inventory": f.seen_by_inventory().map(|t| t.to_string()),
    })
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Longest value shown inside a table title; longer ones end in `…` (`--json` has them whole).
const TITLE_VALUE_MAX: usize = 80;

/// What the WHO column says when no one is known.
fn who(f: &Finding) -> std::borrow::Cow<'_, str> {
    if let Some(t) = f.seen_by_inventory() {
        // Minutes are enough to find the snapshot; the whole time is in --json.
        let t = t.to_string();
        let t = t.get(..16).unwrap_or(&t).replace('T', " ");
        return format!("(seen by inventory, {t})").into();
    }
    match f.actor.principal() {
        Some(p) => p.into(),
        // The Kubernetes watch says what changed, not who: that needs the audit log, which
        // is not read yet. Say so rather than suggest nobody did it.
        None if f.fact_kind.plane() == Plane::Kubernetes => "(no audit attribution yet)".into(),
        None => "-".into(),
    }
}

/// The actor: the four Azure keys always (null when unknown), the Kubernetes ones (username,
/// groups, impersonated, user_agent, audit_id, reason, class) when an audit record gave them.
fn actor_json(a: &crate::domain::Actor) -> Value {
    let mut v = serde_json::json!({
        "upn": a.upn,
        "object_id": a.object_id,
        "app_id": a.app_id,
        "ip": a.ip,
    });
    if let (Some(o), Ok(Value::Object(extra))) = (v.as_object_mut(), serde_json::to_value(a)) {
        for (k, x) in extra {
            o.entry(k).or_insert(x);
        }
    }
    v
}

/// A title for a table cell: JSON objects and arrays inside it (a Kubernetes subject or rule
/// in a diff) become `key=value` text, and each such value is cut to [`TITLE_VALUE_MAX`].
fn table_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while let Some(at) = rest.find(['{', '[']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let mut values = serde_json::Deserializer::from_str(tail).into_iter::<Value>();
        match values.next() {
            Some(Ok(v @ (Value::Object(_) | Value::Array(_)))) => {
                out.push_str(&clip(&plain(&v), TITLE_VALUE_MAX));
                rest = &tail[values.byte_offset()..];
            }
            // Not JSON (e.g. `subjects[+]`): keep the bracket as text.
            _ => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A JSON value as short text: `kind=User name=alice`, lists comma-joined, empty parts left out.
fn plain(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !is_blank(v))
            .map(|(k, v)| match v {
                Value::Object(_) => format!("{k}=({})", plain(v)),
                _ => format!("{k}={}", plain(v)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(a) => a
            .iter()
            .filter(|v| !is_blank(v))
            .map(plain)
            .collect::<Vec<_>>()
            .join(","),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// The findings table for people.
pub fn findings_table(findings: &[Finding]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<12}  {:<8}  {:<12}  {:<8}  {:<20}  {:<30}  TITLE",
        "ID", "SEVERITY", "STATUS", "KIND", "LAST SEEN", "WHO"
    );
    for f in findings {
        let last = f.last_seen.to_string();
        let _ = writeln!(
            o,
            "{:<12}  {:<8}  {:<12}  {:<8}  {:<20}  {:<30}  {}",
            f.id,
            f.severity.as_str(),
            f.status.as_str(),
            f.kind.as_str(),
            last.get(..19).unwrap_or(&last).replace('T', " "),
            // An inventory sighting is shown whole: its time is what tells it apart.
            match who(f) {
                w if f.seen_by_inventory().is_some() => w.into_owned(),
                w => clip(&w, 30),
            },
            table_title(&f.title)
        );
    }
    if findings.is_empty() {
        let _ = writeln!(o, "(no findings)");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_keep_json_out_and_cut_long_values() {
        let long_rule = format!(
            r#"{{"api_groups":["discovery.k8s.io"],"non_resource_urls":[],"resource_names":[],"resources":["{}"],"verbs":["get","list","watch"]}}"#,
            "x".repeat(100)
        );
        for (title, want) in [
            (
                r#"Changed RoleBinding c/ns/b → Role r: subjects[+]: ∅ → {"kind":"ServiceAccount","name":"default","namespace":"payments"}"#.to_string(),
                "Changed RoleBinding c/ns/b → Role r: subjects[+]: ∅ → kind=ServiceAccount name=default namespace=payments".to_string(),
            ),
            (
                format!("Changed ClusterRole c/v: rules[+]: ∅ → {long_rule}"),
                format!(
                    "Changed ClusterRole c/v: rules[+]: ∅ → {}…",
                    &format!("api_groups=discovery.k8s.io resources={}", "x".repeat(100))[..79]
                ),
            ),
            (
                "Unapproved custom role \"AKS Credential Reader\"".to_string(),
                "Unapproved custom role \"AKS Credential Reader\"".to_string(),
            ),
            (
                "aggregation [ not json {".to_string(),
                "aggregation [ not json {".to_string(),
            ),
            (
                r#"verbs: ["get"] → ["get","list"]"#.to_string(),
                "verbs: get → get,list".to_string(),
            ),
        ] {
            let got = table_title(&title);
            assert_eq!(got, want, "{title}");
            assert!(!got.contains("\":"), "raw JSON left in {got}");
        }
    }
}
