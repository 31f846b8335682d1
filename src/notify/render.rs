//! How an alert reads for people: the facts (who, what, where, when, expected vs actual,
//! correlation id) and the exact command that approves or acknowledges it. Mail, Slack and
//! Teams all render from [`facts`], so they say the same thing.

use super::{Alert, AlertTransition, Digest, DigestReason};
use crate::engine::FindingKind;

/// Subject / headline: `[HIGH] title (prod)`; a resolve notice says so.
pub fn headline(a: &Alert) -> String {
    let mut s = format!("[{}] ", a.severity.as_str().to_uppercase());
    match a.transition {
        AlertTransition::Resolved => s.push_str("Resolved: "),
        AlertTransition::Reopened => s.push_str("Reopened: "),
        AlertTransition::SeverityChanged => s.push_str("Severity changed: "),
        AlertTransition::Attributed => s.push_str("Who did it: "),
        AlertTransition::Opened => {}
    }
    s.push_str(&a.title);
    let wh = a.where_();
    if !wh.is_empty() {
        s.push_str(&format!(" ({wh})"));
    }
    s
}

/// Headline of a digest: `[DIGEST] 10 alerts from one operation (correlation id …)`.
pub fn digest_headline(d: &Digest) -> String {
    let worst = d
        .alerts
        .iter()
        .map(|a| a.severity)
        .max()
        .map_or("info", |s| s.as_str());
    match &d.reason {
        DigestReason::Burst(c) => format!(
            "[{}] {} alerts from one operation (correlation id {c})",
            worst.to_uppercase(),
            d.alerts.len()
        ),
        DigestReason::Throttled(n) => format!(
            "[{}] {} more alerts (over {n} per minute)",
            worst.to_uppercase(),
            d.alerts.len()
        ),
    }
}

/// Labelled lines, in reading order.
pub fn facts(a: &Alert) -> Vec<(&'static str, String)> {
    let mut v = vec![
        (
            "What",
            format!(
                "{} {} — {}",
                a.kind.as_str(),
                a.transition.as_str().replace('_', " "),
                a.title
            ),
        ),
        ("Severity", a.severity.as_str().to_string()),
        (
            "Who",
            if a.actor.is_empty() {
                match a.seen_by_inventory {
                    Some(t) => format!("not known yet (seen by inventory, {t})"),
                    None => "unknown (the record did not say)".to_string(),
                }
            } else {
                a.actor.describe()
            },
        ),
        ("Where", format!("{} {}", a.fact_kind.as_str(), a.fact_key)),
    ];
    if !a.clusters.is_empty() {
        v.push(("Cluster", a.clusters.join(", ")));
    }
    v.push((
        "When",
        format!("first seen {}, last seen {}", a.first_seen, a.last_seen),
    ));
    if let Some(c) = a.change {
        v.push(("Change", c.as_str().to_string()));
    }
    for d in &a.diff {
        v.push(("Expected → actual", d.to_string()));
    }
    if let Some(c) = &a.correlation_id {
        v.push(("Correlation id", c.clone()));
    }
    if let Some(by) = &a.approved_by {
        v.push(("Approved by", by.clone()));
    }
    if let Some(r) = &a.resolution {
        v.push(("Resolution", r.clone()));
    }
    v.push(("Rule", a.rule.clone()));
    v.push(("Finding", a.finding_id.clone()));
    if let Some(cmd) = action(a) {
        v.push(("To act", cmd));
    }
    v
}

/// The exact command that closes the finding, when one does.
pub fn action(a: &Alert) -> Option<String> {
    if a.transition == AlertTransition::Resolved || a.finding_id == "test" {
        return None;
    }
    Some(match a.kind {
        FindingKind::Drift => format!(
            "approve with `accessdrift baseline approve {}`, or revert the change",
            a.finding_id
        ),
        FindingKind::Policy | FindingKind::Activity => {
            format!("acknowledge with `accessdrift ack {}`", a.finding_id)
        }
    })
}

/// The text/plain body of one alert.
pub fn text(a: &Alert) -> String {
    let mut s = format!("{}\n\n", headline(a));
    for (k, v) in facts(a) {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push_str(&format!("\nAlert key: {}\n", a.idempotency_key));
    s
}

/// The text/html body of one alert.
pub fn html(a: &Alert) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><table>",
        esc(&headline(a))
    );
    for (k, v) in facts(a) {
        s.push_str(&format!(
            "<tr><th align=\"left\" valign=\"top\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(&v)
        ));
    }
    s.push_str(&format!(
        "</table><p><small>Alert key {}</small></p></body></html>",
        esc(&a.idempotency_key)
    ));
    s
}

/// The text/plain body of a digest.
pub fn digest_text(d: &Digest) -> String {
    let mut s = format!("{}\n\n", digest_headline(d));
    for a in &d.alerts {
        s.push_str(&format!("- {}\n", headline(a)));
        for (k, v) in facts(a) {
            s.push_str(&format!("    {k}: {v}\n"));
        }
    }
    s
}

/// The text/html body of a digest.
pub fn digest_html(d: &Digest) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2>",
        esc(&digest_headline(d))
    );
    for a in &d.alerts {
        s.push_str(&format!("<h3>{}</h3><table>", esc(&headline(a))));
        for (k, v) in facts(a) {
            s.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                esc(k),
                esc(&v)
            ));
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>");
    s
}

/// HTML-escapes text (values come from Azure records: a UPN could carry markup).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Slack mrkdwn escaping: `&`, `<`, `>` (links and mentions cannot be injected).
pub fn slack_esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook payload with blocks.
pub fn slack(alerts: &[&Alert], headline_text: &str) -> serde_json::Value {
    let mut blocks = vec![serde_json::json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(headline_text, 150)}
    })];
    for a in alerts {
        let mut lines = String::new();
        if alerts.len() > 1 {
            lines.push_str(&format!("*{}*\n", slack_esc(&headline(a))));
        }
        for (k, v) in facts(a) {
            lines.push_str(&format!("*{}:* {}\n", k, slack_esc(&v)));
        }
        blocks.push(serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&lines, 3000)}
        }));
        if blocks.len() >= 49 {
            break;
        }
    }
    serde_json::json!({
        "text": headline_text,
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A Teams Workflows (Power Automate) webhook payload: a message with one Adaptive Card.
pub fn teams(alerts: &[&Alert], headline_text: &str) -> serde_json::Value {
    let mut body = vec![serde_json::json!({
        "type": "TextBlock", "text": headline_text, "weight": "Bolder", "size": "Medium", "wrap": true
    })];
    for a in alerts {
        if alerts.len() > 1 {
            body.push(serde_json::json!({
                "type": "TextBlock", "text": headline(a), "weight": "Bolder", "wrap": true, "separator": true
            }));
        }
        let facts: Vec<serde_json::Value> = facts(a)
            .into_iter()
            .map(|(k, v)| serde_json::json!({"title": k, "value": v}))
            .collect();
        body.push(serde_json::json!({"type": "FactSet", "facts": facts}));
    }
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}
