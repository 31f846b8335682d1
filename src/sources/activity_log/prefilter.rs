//! The cheap first look at a record: find `operationName` without parsing the record.

use memchr::memmem::Finder;

/// The Azure operations that change or reveal access (docs/architecture.md, access model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AzureOp {
    /// `Microsoft.Authorization/roleAssignments/write`.
    RoleAssignmentWrite,
    /// `Microsoft.Authorization/roleAssignments/delete`.
    RoleAssignmentDelete,
    /// `Microsoft.Authorization/roleDefinitions/write`.
    RoleDefinitionWrite,
    /// `Microsoft.Authorization/roleDefinitions/delete`.
    RoleDefinitionDelete,
    /// `Microsoft.ContainerService/managedClusters/write`.
    ClusterWrite,
    /// `Microsoft.ContainerService/managedClusters/delete`.
    ClusterDelete,
    /// `Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action`.
    ListAdminCredential,
    /// `Microsoft.ContainerService/managedClusters/runCommand/action` (`az aks command invoke`).
    RunCommand,
    /// `Microsoft.ManagedIdentity/userAssignedIdentities/write`.
    IdentityWrite,
    /// `Microsoft.ManagedIdentity/userAssignedIdentities/delete`.
    IdentityDelete,
    /// `…/userAssignedIdentities/federatedIdentityCredentials/write`.
    FederatedCredentialWrite,
    /// `…/userAssignedIdentities/federatedIdentityCredentials/delete`.
    FederatedCredentialDelete,
    /// PIM's `Add member to role completed (PIM activation)`: an eligibility activated.
    PimActivated,
    /// PIM's `Remove member from role (PIM activation expired)`.
    PimExpired,
}

const OPS: &[(&str, AzureOp)] = &[
    (
        "microsoft.authorization/roleassignments/write",
        AzureOp::RoleAssignmentWrite,
    ),
    (
        "microsoft.authorization/roleassignments/delete",
        AzureOp::RoleAssignmentDelete,
    ),
    (
        "microsoft.authorization/roledefinitions/write",
        AzureOp::RoleDefinitionWrite,
    ),
    (
        "microsoft.authorization/roledefinitions/delete",
        AzureOp::RoleDefinitionDelete,
    ),
    (
        "microsoft.containerservice/managedclusters/write",
        AzureOp::ClusterWrite,
    ),
    (
        "microsoft.containerservice/managedclusters/delete",
        AzureOp::ClusterDelete,
    ),
    (
        "microsoft.containerservice/managedclusters/listclusteradmincredential/action",
        AzureOp::ListAdminCredential,
    ),
    (
        "microsoft.containerservice/managedclusters/runcommand/action",
        AzureOp::RunCommand,
    ),
    (
        "microsoft.managedidentity/userassignedidentities/write",
        AzureOp::IdentityWrite,
    ),
    (
        "microsoft.managedidentity/userassignedidentities/delete",
        AzureOp::IdentityDelete,
    ),
    (
        "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials/write",
        AzureOp::FederatedCredentialWrite,
    ),
    (
        "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials/delete",
        AzureOp::FederatedCredentialDelete,
    ),
    // PIM logs display names, not provider operations.
    (
        "add member to role completed (pim activation)",
        AzureOp::PimActivated,
    ),
    (
        "remove member from role (pim activation expired)",
        AzureOp::PimExpired,
    ),
];

impl AzureOp {
    /// Classifies an operation name, case-insensitively.
    pub fn from_name(name: &str) -> Option<AzureOp> {
        let name = name.trim();
        OPS.iter()
            .find(|(n, _)| n.len() == name.len() && n.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    /// The canonical lower-case operation name.
    pub fn as_str(self) -> &'static str {
        OPS.iter().find(|(_, o)| *o == self).map_or("", |(n, _)| n)
    }

    /// The fact kind a write or delete changes; `None` for actions (activities).
    pub fn fact_kind(self) -> Option<crate::domain::FactKind> {
        use crate::domain::FactKind;
        Some(match self {
            AzureOp::RoleAssignmentWrite | AzureOp::RoleAssignmentDelete => {
                FactKind::RoleAssignment
            }
            AzureOp::RoleDefinitionWrite | AzureOp::RoleDefinitionDelete => {
                FactKind::RoleDefinition
            }
            AzureOp::ClusterWrite | AzureOp::ClusterDelete => FactKind::ClusterSettings,
            AzureOp::IdentityWrite | AzureOp::IdentityDelete => FactKind::ManagedIdentity,
            AzureOp::FederatedCredentialWrite | AzureOp::FederatedCredentialDelete => {
                FactKind::FederatedCredential
            }
            AzureOp::PimActivated | AzureOp::PimExpired => FactKind::PimActivation,
            AzureOp::ListAdminCredential | AzureOp::RunCommand => return None,
        })
    }

    /// True for operations whose Success applies without any body.
    pub fn needs_body(self) -> bool {
        matches!(
            self,
            AzureOp::RoleAssignmentWrite
                | AzureOp::RoleDefinitionWrite
                | AzureOp::ClusterWrite
                | AzureOp::IdentityWrite
                | AzureOp::FederatedCredentialWrite
        )
    }
}

/// Verdict of the cheap look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A watched operation: parse the record fully.
    Relevant(AzureOp),
    /// Some other operation: skip without parsing.
    Irrelevant,
    /// No plain `operationName` string found: only a full parse can tell.
    Unsure,
}

/// Finds `operationName` with a precompiled substring search.
pub struct Prefilter {
    key: Finder<'static>,
    value: Finder<'static>,
}

impl Default for Prefilter {
    fn default() -> Self {
        Prefilter {
            key: Finder::new(b"\"operationName\""),
            value: Finder::new(b"\"value\""),
        }
    }
}

impl Prefilter {
    /// Looks at a record's bytes and says whether it needs a full parse.
    pub fn classify(&self, rec: &[u8]) -> Verdict {
        let Some(k) = self.key.find(rec) else {
            return Verdict::Unsure;
        };
        let mut i = skip_ws(rec, k + 15);
        if rec.get(i) != Some(&b':') {
            return Verdict::Unsure;
        }
        i = skip_ws(rec, i + 1);
        if rec.get(i) == Some(&b'{') {
            // REST shape: {"value": "...", "localizedValue": "..."}.
            let Some(v) = self.value.find(&rec[i..]) else {
                return Verdict::Unsure;
            };
            i = skip_ws(rec, i + v + 7);
            if rec.get(i) != Some(&b':') {
                return Verdict::Unsure;
            }
            i = skip_ws(rec, i + 1);
        }
        if rec.get(i) != Some(&b'"') {
            return Verdict::Unsure;
        }
        let start = i + 1;
        let Some(len) = memchr::memchr2(b'"', b'\\', &rec[start..]) else {
            return Verdict::Unsure;
        };
        if rec[start + len] == b'\\' {
            return Verdict::Unsure;
        }
        let name = &rec[start..start + len];
        // Every watched operation lives under one of three providers, or is one of PIM's
        // display names: reject the rest at once.
        const PREFIXES: [&[u8]; 5] = [
            b"microsoft.authorization/",
            b"microsoft.containerservice/",
            b"microsoft.managedidentity/",
            b"add member to role completed",
            b"remove member from role",
        ];
        if !PREFIXES
            .iter()
            .any(|p| name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p))
        {
            return Verdict::Irrelevant;
        }
        match std::str::from_utf8(name).ok().and_then(AzureOp::from_name) {
            Some(op) => Verdict::Relevant(op),
            None => Verdict::Irrelevant,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let p = Prefilter::default();
        for (rec, want) in [
            (
                r#"{"operationName":"MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE"}"#,
                Verdict::Relevant(AzureOp::RoleAssignmentWrite),
            ),
            (
                r#"{"operationName" : { "value": "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", "localizedValue":"x"}}"#,
                Verdict::Relevant(AzureOp::ListAdminCredential),
            ),
            (
                r#"{"operationName":"MICROSOFT.WEB/SITES/CONFIG/WRITE"}"#,
                Verdict::Irrelevant,
            ),
            (
                r#"{"operationName":"Microsoft.Authorization/elevateAccess/action"}"#,
                Verdict::Irrelevant,
            ),
            (
                r#"{"operationName":"Sign-in activity"}"#,
                Verdict::Irrelevant,
            ),
            (r#"{"time":"x"}"#, Verdict::Unsure),
            (r#"{"operationName":"a\"b"}"#, Verdict::Unsure),
            (r#"{"operationName":12}"#, Verdict::Unsure),
        ] {
            assert_eq!(p.classify(rec.as_bytes()), want, "{rec}");
        }
    }

    #[test]
    fn names_round_trip() {
        for (name, op) in OPS {
            assert_eq!(AzureOp::from_name(&name.to_uppercase()), Some(*op));
            assert_eq!(op.as_str(), *name);
        }
    }
}
