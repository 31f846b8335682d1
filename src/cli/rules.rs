//! `accessdrift rules [--json]` and `accessdrift rules explain ID`: the catalogue, with the
//! configuration's choices (severity, enabled, exceptions) applied.

use crate::config::Config;
use crate::domain::EventTime;
use crate::engine::rules::{Rule, CATALOGUE};
use serde_json::{json, Value};
use std::process::ExitCode;

/// Arguments of `rules`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RulesArgs {
    /// A JSON array for scripts instead of the table.
    #[arg(long)]
    json: bool,
    /// Explain one rule.
    #[command(subcommand)]
    cmd: Option<RulesCmd>,
}

/// Subcommands of `rules`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCmd {
    /// Print one rule in full: rationale, remediation, references, configuration.
    Explain {
        /// Rule id, e.g. AKS-LOCAL-ACCOUNTS (case-insensitive).
        id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

struct Effective<'a> {
    rule: &'a Rule,
    enabled: bool,
    severity: crate::domain::Severity,
}

fn effective<'a>(cfg: &Config, rule: &'a Rule) -> Effective<'a> {
    let s = cfg.rules.get(rule.id);
    Effective {
        rule,
        enabled: s.and_then(|s| s.enabled) != Some(false),
        severity: s.and_then(|s| s.severity).unwrap_or(rule.severity),
    }
}

fn rule_json(cfg: &Config, e: &Effective<'_>, now: EventTime) -> Value {
    let r = e.rule;
    let exceptions: Vec<Value> = cfg
        .exceptions
        .iter()
        .filter(|x| x.rule == r.id)
        .map(|x| {
            json!({"match": x.pattern, "reason": x.reason, "expires": x.expires, "active": x.active_at(now)})
        })
        .collect();
    json!({
        "id": r.id,
        "title": r.title,
        "group": r.group,
        "default_severity": r.severity,
        "severity": e.severity,
        "enabled": e.enabled,
        "subjects": r.subjects.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "reads": r.joins.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "rationale": r.rationale,
        "remediation": r.remediation,
        "references": r.references,
        "exceptions": exceptions,
    })
}

pub(super) fn run(cfg: &Config, a: RulesArgs) -> anyhow::Result<ExitCode> {
    let now = EventTime::now();
    match a.cmd {
        None if a.json => {
            let arr: Vec<Value> = CATALOGUE
                .iter()
                .map(|r| rule_json(cfg, &effective(cfg, r), now))
                .collect();
            println!("{}", serde_json::to_string_pretty(&arr)?);
        }
        None => print!("{}", table(cfg, now)),
        Some(RulesCmd::Explain { id, json }) => {
            let want = id.trim().to_ascii_uppercase();
            let Some(rule) = CATALOGUE.iter().find(|r| r.id == want) else {
                let close: Vec<&str> = CATALOGUE
                    .iter()
                    .map(|r| r.id)
                    .filter(|r| r.split('-').next() == want.split('-').next())
                    .collect();
                anyhow::bail!(
                    "no rule {id:?}; {}list them all with `accessdrift rules`",
                    if close.is_empty() {
                        String::new()
                    } else {
                        format!("did you mean one of {}? ", close.join(", "))
                    }
                );
            };
            let e = effective(cfg, rule);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rule_json(cfg, &e, now))?
                );
            } else {
                print!("{}", explain(cfg, &e, now));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(cfg: &Config, now: EventTime) -> String {
    let mut out = format!(
        "{:<33} {:<9} {:<8} {:<17} {}\n",
        "ID", "SEVERITY", "ENABLED", "GROUP", "TITLE"
    );
    for r in CATALOGUE {
        let e = effective(cfg, r);
        let sev = if e.severity == r.severity {
            e.severity.as_str().to_string()
        } else {
            format!("{}*", e.severity.as_str())
        };
        out.push_str(&format!(
            "{:<33} {:<9} {:<8} {:<17} {}\n",
            r.id,
            sev,
            if e.enabled { "yes" } else { "no" },
            r.group.label(),
            r.title
        ));
    }
    let live = cfg.exceptions.iter().filter(|x| x.active_at(now)).count();
    out.push_str(&format!(
        "{} rules; * = severity set in [rules.ID]; {live} exception(s) in force, {} expired. `accessdrift rules explain ID` for rationale and remediation.\n",
        CATALOGUE.len(),
        cfg.exceptions.len() - live
    ));
    out
}

fn explain(cfg: &Config, e: &Effective<'_>, now: EventTime) -> String {
    let r = e.rule;
    let mut out = format!("{} — {}\n\n", r.id, r.title);
    out.push_str(&format!(
        "severity:    {}{}\nenabled:     {}\ngroup:       {}\n",
        e.severity.as_str(),
        if e.severity == r.severity {
            String::new()
        } else {
            format!(
                " (default {}, set in [rules.{}])",
                r.severity.as_str(),
                r.id
            )
        },
        if e.enabled {
            "yes"
        } else {
            "no ([rules.ID] enabled = false)"
        },
        r.group.label()
    ));
    if !r.subjects.is_empty() {
        let kinds: Vec<&str> = r.subjects.iter().map(|k| k.as_str()).collect();
        out.push_str(&format!("subject:     {}\n", kinds.join(", ")));
    } else {
        out.push_str("subject:     an activity (one finding per caller and cluster)\n");
    }
    if !r.joins.is_empty() {
        let kinds: Vec<&str> = r.joins.iter().map(|k| k.as_str()).collect();
        out.push_str(&format!(
            "also reads:  {} (re-judged when they change)\n",
            kinds.join(", ")
        ));
    }
    out.push_str(&format!("\nWhy it matters\n  {}\n", r.rationale));
    out.push_str(&format!("\nRemediation\n  {}\n", r.remediation));
    out.push_str("\nReferences\n");
    for u in r.references {
        out.push_str(&format!("  {u}\n"));
    }
    let ex: Vec<_> = cfg.exceptions.iter().filter(|x| x.rule == r.id).collect();
    out.push_str("\nExceptions\n");
    if ex.is_empty() {
        out.push_str(&format!(
            "  none. Accept a risk with:\n  [[exceptions]]\n  rule = \"{}\"\n  match = \"<subject key glob>\"\n  reason = \"…\"\n  expires = \"YYYY-MM-DD\"\n",
            r.id
        ));
    }
    for x in ex {
        let state = if x.active_at(now) {
            "in force"
        } else {
            "expired"
        };
        out.push_str(&format!(
            "  {} — {} (expires {}, {state})\n",
            x.pattern,
            x.reason,
            x.expires.as_deref().unwrap_or("never")
        ));
    }
    out
}
