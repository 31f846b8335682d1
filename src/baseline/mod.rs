//! The baseline service: capture, approve, import, rollback and acknowledge, as the CLI and
//! the daemon both call them. Each operation is one store transaction: it applies entirely
//! or not at all, and callers report success only from the returned outcome.

mod diff;
mod error;
mod file;

pub use diff::Difference;
pub use error::{BaselineError, Candidate, EntryError};
pub use file::{ExportEntry, ExportFile, ImportPlan, Replacement, EXPORT_FORMAT};

use crate::config::Config;
use crate::domain::{EventTime, FactKind};
use crate::engine::{Finding, FindingKind, Status};
use crate::pipeline::{evaluate_fact, reevaluate_all, BatchCtx, Stats};
use crate::store::{BaselineEntry, BaselineVersion, Store, Tx};
use serde_json::Value;
use std::collections::BTreeMap;

/// Shortest id prefix accepted: shorter ones match too much to be a deliberate choice.
pub const MIN_PREFIX: usize = 4;

/// Candidates listed when a prefix is ambiguous.
pub const MAX_CANDIDATES: usize = 10;

/// Result type of the service.
pub type Result<T> = std::result::Result<T, BaselineError>;

/// A committed baseline change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The baseline version it wrote.
    pub version: i64,
    /// Entries added, replaced or removed.
    pub changed: usize,
    /// What re-evaluation did to findings.
    pub stats: Stats,
}

/// What `approve` did.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproveOutcome {
    /// The change, `None` when every finding was approved already.
    pub applied: Option<Applied>,
    /// The findings approved, as they are after the commit.
    pub approved: Vec<Finding>,
    /// Findings that were approved already (nothing done).
    pub already: Vec<Finding>,
}

/// What `ack` did.
#[derive(Debug, Clone, PartialEq)]
pub struct AckOutcome {
    /// Findings acknowledged now.
    pub acknowledged: Vec<Finding>,
    /// Findings that were acknowledged already (nothing done).
    pub already: Vec<Finding>,
}

/// Options of `import`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Compute and return the plan; change nothing.
    pub dry_run: bool,
    /// Allow removing more than half of the current baseline.
    pub force: bool,
}

/// What `import` did or, with `dry_run`, would do.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    /// Adds, replacements and removals.
    pub plan: ImportPlan,
    /// The change, `None` for a dry run.
    pub applied: Option<Applied>,
}

/// The baseline as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Newest version, `None` before the first capture or import.
    pub version: Option<BaselineVersion>,
    /// Approved facts by kind and key.
    pub entries: Vec<BaselineEntry>,
}

/// The baseline operations over one store, queuing alerts for `sinks`.
pub struct BaselineService<'a> {
    store: &'a mut Store,
    config: &'a Config,
    sinks: &'a [String],
}

impl<'a> BaselineService<'a> {
    /// A service acting on `store` with `config`, queuing alerts for the named sinks.
    pub fn new(store: &'a mut Store, config: &'a Config, sinks: &'a [String]) -> Self {
        BaselineService {
            store,
            config,
            sinks,
        }
    }

    /// The current baseline.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        let tx = self.store.read()?;
        Ok(Snapshot {
            version: tx.baseline_version()?,
            entries: tx.baseline()?,
        })
    }

    /// Every baseline version, oldest first (what `rollback` can restore).
    pub fn versions(&mut self) -> Result<Vec<BaselineVersion>> {
        Ok(self.store.read()?.baseline_versions()?)
    }

    /// Approves everything observed now (present facts in, facts seen deleted out).
    pub fn capture(&mut self, by: &str, note: &str) -> Result<Applied> {
        let now = EventTime::now();
        let tx = self.store.tx()?;
        let version = tx.new_baseline_version(by, "capture", note, now)?;
        let mut changed = 0;
        for f in tx.facts()?.into_iter().filter(|f| f.kind.is_baselined()) {
            let did = match f.value {
                Some(value) => tx.approve(
                    version,
                    &BaselineEntry {
                        kind: f.kind,
                        key: f.key,
                        value,
                        version,
                        approved_by: by.to_string(),
                        approved_at: now,
                        from_finding: None,
                    },
                )?,
                None => tx.unapprove(version, f.kind, &f.key)?,
            };
            changed += usize::from(did);
        }
        let stats = reevaluate_all(&tx, self.config, by, now, self.sinks)?;
        tx.commit()?;
        Ok(Applied {
            version,
            changed,
            stats,
        })
    }

    /// Approves drift findings: exactly the value each shows (`actual`) becomes the baseline.
    /// All ids are resolved and checked before anything is written; one bad id changes nothing.
    /// `revision` pins the (single) finding to the revision the caller saw.
    pub fn approve(
        &mut self,
        by: &str,
        ids: &[String],
        revision: Option<u64>,
    ) -> Result<ApproveOutcome> {
        if revision.is_some() && ids.len() != 1 {
            return Err(BaselineError::RevisionNeedsOneId(ids.len()));
        }
        let now = EventTime::now();
        let tx = self.store.tx()?;
        let findings = resolve_all(&tx, ids)?;
        let mut todo = Vec::new();
        let mut already = Vec::new();
        for f in findings {
            if f.kind != FindingKind::Drift {
                return Err(BaselineError::NotDrift {
                    id: f.id,
                    kind: f.kind.as_str(),
                });
            }
            if let Some(pinned) = revision.filter(|r| *r != f.revision) {
                return Err(BaselineError::RevisionMismatch {
                    id: f.id,
                    pinned,
                    current: f.revision,
                    title: f.title,
                });
            }
            match f.status {
                Status::Approved => {
                    already.push(f);
                    continue;
                }
                Status::Resolved | Status::Excepted => {
                    return Err(BaselineError::NotActive {
                        id: f.id,
                        status: f.status.as_str(),
                        action: "approve",
                    })
                }
                Status::Open | Status::Acknowledged => {}
            }
            let now_value = tx.fact(f.fact_kind, &f.fact_key)?.and_then(|r| r.value);
            if now_value != f.actual {
                return Err(BaselineError::FactChanged {
                    id: f.id,
                    shown: show_value(f.actual.as_ref()),
                    now: show_value(now_value.as_ref()),
                });
            }
            todo.push(f);
        }
        if todo.is_empty() {
            tx.commit()?;
            return Ok(ApproveOutcome {
                applied: None,
                approved: Vec::new(),
                already,
            });
        }
        let note = todo
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let version = tx.new_baseline_version(by, "approve", &note, now)?;
        let mut cx = BatchCtx::new(&tx, self.config, self.sinks, now);
        let mut changed = 0;
        for f in &todo {
            let did = match &f.actual {
                Some(value) => tx.approve(
                    version,
                    &BaselineEntry {
                        kind: f.fact_kind,
                        key: f.fact_key.clone(),
                        value: value.clone(),
                        version,
                        approved_by: by.to_string(),
                        approved_at: now,
                        from_finding: Some(f.id.clone()),
                    },
                )?,
                None => tx.unapprove(version, f.fact_kind, &f.fact_key)?,
            };
            changed += usize::from(did);
            evaluate_fact(&mut cx, f.fact_kind, &f.fact_key, Some((by, now)))?;
        }
        let stats = cx.stats;
        let mut approved = Vec::with_capacity(todo.len());
        for f in todo {
            approved.push(tx.finding(&f.id)?.unwrap_or(f));
        }
        tx.commit()?;
        Ok(ApproveOutcome {
            applied: Some(Applied {
                version,
                changed,
                stats,
            }),
            approved,
            already,
        })
    }

    /// Acknowledges open findings (all or none); already acknowledged ones are left as they are.
    pub fn ack(&mut self, by: &str, ids: &[String]) -> Result<AckOutcome> {
        let now = EventTime::now();
        let tx = self.store.tx()?;
        let findings = resolve_all(&tx, ids)?;
        let mut todo = Vec::new();
        let mut already = Vec::new();
        for f in findings {
            match f.status {
                Status::Open => todo.push(f),
                Status::Acknowledged => already.push(f),
                Status::Resolved | Status::Approved | Status::Excepted => {
                    return Err(BaselineError::NotActive {
                        id: f.id,
                        status: f.status.as_str(),
                        action: "acknowledge",
                    })
                }
            }
        }
        let mut acknowledged = Vec::with_capacity(todo.len());
        for mut f in todo {
            f.status = Status::Acknowledged;
            f.resolution = Some(format!("acknowledged by {by}"));
            f.resolved_at = Some(now);
            f.revision = tx.put_finding(&f)?;
            acknowledged.push(f);
        }
        tx.commit()?;
        Ok(AckOutcome {
            acknowledged,
            already,
        })
    }

    /// Replaces the baseline with the entries of an exported file (`text`, named `file` in
    /// errors), canonicalised as sources write values, recorded as approved by `by`.
    pub fn import(
        &mut self,
        by: &str,
        file: &str,
        text: &str,
        opts: ImportOptions,
    ) -> Result<ImportOutcome> {
        let now = EventTime::now();
        let entries = file::parse(file, text, by, now)?;
        let tx = if opts.dry_run {
            self.store.read()?
        } else {
            self.store.tx()?
        };
        let current = tx.baseline()?;
        let plan = ImportPlan::new(&current, entries);
        if !opts.force && plan.removes.len() * 2 > plan.current {
            return Err(BaselineError::WouldRemoveMost {
                file: file.to_string(),
                removes: plan.removes.len(),
                current: plan.current,
            });
        }
        if opts.dry_run {
            return Ok(ImportOutcome {
                plan,
                applied: None,
            });
        }
        let version = tx.new_baseline_version(by, "import", file, now)?;
        let mut changed = 0;
        for old in &plan.removes {
            changed += usize::from(tx.unapprove(version, old.kind, &old.key)?);
        }
        let news = plan.adds.iter().chain(plan.replaces.iter().map(|r| &r.new));
        for e in news {
            let e = BaselineEntry {
                version,
                ..e.clone()
            };
            changed += usize::from(tx.approve(version, &e)?);
        }
        let stats = reevaluate_all(&tx, self.config, by, now, self.sinks)?;
        tx.commit()?;
        Ok(ImportOutcome {
            plan,
            applied: Some(Applied {
                version,
                changed,
                stats,
            }),
        })
    }

    /// Restores the baseline as it was at `version`, as a new version by `by`, and re-evaluates.
    pub fn rollback(&mut self, by: &str, version: i64) -> Result<Applied> {
        let now = EventTime::now();
        let tx = self.store.tx()?;
        let latest = tx.baseline_version()?.map(|v| v.version);
        if tx.baseline_version_info(version)?.is_none() {
            return Err(BaselineError::UnknownVersion { version, latest });
        }
        if latest == Some(version) {
            return Err(BaselineError::AlreadyCurrent(version));
        }
        let target: BTreeMap<(FactKind, String), Value> = tx
            .baseline_at(version)?
            .into_iter()
            .map(|(k, key, v)| ((k, key), v))
            .collect();
        let new_version =
            tx.new_baseline_version(by, "rollback", &format!("to version {version}"), now)?;
        let mut changed = 0;
        for e in tx.baseline()? {
            if !target.contains_key(&(e.kind, e.key.clone())) {
                changed += usize::from(tx.unapprove(new_version, e.kind, &e.key)?);
            }
        }
        for ((kind, key), value) in target {
            let e = BaselineEntry {
                kind,
                key,
                value,
                version: new_version,
                approved_by: by.to_string(),
                approved_at: now,
                from_finding: None,
            };
            changed += usize::from(tx.approve(new_version, &e)?);
        }
        let stats = reevaluate_all(&tx, self.config, by, now, self.sinks)?;
        tx.commit()?;
        Ok(Applied {
            version: new_version,
            changed,
            stats,
        })
    }

    /// The baseline as an export file; an error when no baseline was ever made.
    pub fn export(&mut self) -> Result<ExportFile> {
        let tx = self.store.read()?;
        if tx.baseline_version()?.is_none() {
            return Err(BaselineError::NoBaseline);
        }
        Ok(ExportFile::from_entries(&tx.baseline()?))
    }

    /// How the observed state differs from the baseline, with the finding of each difference.
    pub fn diff(&mut self) -> Result<Vec<Difference>> {
        let tx = self.store.read()?;
        Ok(diff::differences(&tx)?)
    }
}

/// Resolves every id (or unique prefix) before anything is written; duplicates count once.
fn resolve_all(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<Finding>> {
    let mut out: Vec<Finding> = Vec::with_capacity(ids.len());
    for id in ids {
        let f = resolve(tx, id)?;
        if !out.iter().any(|o| o.id == f.id) {
            out.push(f);
        }
    }
    Ok(out)
}

/// One id or unique id prefix to its finding. The prefix is literal: `%` is not a wildcard.
pub fn resolve(tx: &Tx<'_>, id_or_prefix: &str) -> Result<Finding> {
    let p = id_or_prefix.trim().to_ascii_lowercase();
    if let Some(f) = tx.finding(&p)? {
        return Ok(f);
    }
    if p.chars().count() < MIN_PREFIX {
        return Err(BaselineError::PrefixTooShort(p));
    }
    let mut found = tx.findings_with_prefix(&p, MAX_CANDIDATES + 1)?;
    match found.len() {
        0 => Err(BaselineError::NotFound(p)),
        1 => Ok(found.remove(0)),
        n => Err(BaselineError::Ambiguous {
            prefix: p,
            more: n > MAX_CANDIDATES,
            candidates: found
                .into_iter()
                .take(MAX_CANDIDATES)
                .map(|f| Candidate {
                    id: f.id,
                    title: f.title,
                })
                .collect(),
        }),
    }
}

/// A value for an error message: compact JSON, cut so one message stays readable.
fn show_value(v: Option<&Value>) -> String {
    const MAX: usize = 200;
    match v {
        None => "deleted".to_string(),
        Some(v) => {
            let s = v.to_string();
            match s.char_indices().nth(MAX) {
                Some((i, _)) => format!("{}…", &s[..i]),
                None => s,
            }
        }
    }
}
