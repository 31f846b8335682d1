//! Severity and role tiers: shared by config, engine and notify, so they live at the bottom.

use serde::{Deserialize, Serialize};

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational; platform churn.
    Info,
    /// Worth a look in the daily review.
    Low,
    /// Needs an owner this week.
    Medium,
    /// Needs someone today.
    High,
    /// Page now.
    Critical,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// How dangerous holding a role is, for severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleTier {
    /// Can change access or become cluster-admin (Owner, Contributor, UAA, AKS admin roles).
    Privileged,
    /// Grants access inside the cluster or to data, short of admin.
    Sensitive,
    /// Read or narrow access.
    Ordinary,
}
