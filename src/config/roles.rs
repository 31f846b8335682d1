//! Azure built-in role definitions by their well-known GUIDs, so people read names, not GUIDs.

pub use crate::domain::RoleTier;

/// One built-in role: GUID (lower-case), display name, tier.
pub struct BuiltinRole {
    /// The role definition GUID, identical in every tenant.
    pub guid: &'static str,
    /// The portal display name.
    pub name: &'static str,
    /// Privilege tier.
    pub tier: RoleTier,
}

/// The built-in roles the access model names (docs/architecture.md, access model), plus the
/// ones an AKS estate commonly grants.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        guid: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name: "Owner",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        name: "Contributor",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        name: "User Access Administrator",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        name: "Role Based Access Control Administrator",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        name: "Reader",
        tier: RoleTier::Ordinary,
    },
    BuiltinRole {
        guid: "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
        name: "Azure Kubernetes Service Cluster Admin Role",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
        name: "Azure Kubernetes Service Cluster User Role",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "1afdec4b-e479-420e-99e7-f82237c7c5e6",
        name: "Azure Kubernetes Service Cluster Monitoring User",
        tier: RoleTier::Ordinary,
    },
    BuiltinRole {
        guid: "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8",
        name: "Azure Kubernetes Service Contributor Role",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "7f6c6a51-bcf8-42ba-9220-52d62157d7db",
        name: "Azure Kubernetes Service RBAC Reader",
        tier: RoleTier::Ordinary,
    },
    BuiltinRole {
        guid: "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
        name: "Azure Kubernetes Service RBAC Writer",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "3498e952-d568-435e-9b2c-8d77e338d7f7",
        name: "Azure Kubernetes Service RBAC Admin",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
        name: "Azure Kubernetes Service RBAC Cluster Admin",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        name: "AcrPull",
        tier: RoleTier::Ordinary,
    },
    BuiltinRole {
        guid: "8311e382-0749-4cb8-b61a-304f252e45ec",
        name: "AcrPush",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "f1a07417-d97a-45cb-824c-7a7467783830",
        name: "Managed Identity Operator",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
        name: "Managed Identity Contributor",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "4d97b98b-1d4f-4787-a291-c67834d212e7",
        name: "Network Contributor",
        tier: RoleTier::Sensitive,
    },
    BuiltinRole {
        guid: "3913510d-42f4-4e42-8a64-420c390055eb",
        name: "Monitoring Metrics Publisher",
        tier: RoleTier::Ordinary,
    },
    BuiltinRole {
        guid: "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        name: "Key Vault Administrator",
        tier: RoleTier::Privileged,
    },
    BuiltinRole {
        guid: "4633458b-17de-408a-b874-0445c86b69e6",
        name: "Key Vault Secrets User",
        tier: RoleTier::Sensitive,
    },
];

/// The built-in role with this GUID (any case), if known.
pub fn builtin(guid: &str) -> Option<&'static BuiltinRole> {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.guid.eq_ignore_ascii_case(guid))
}

/// The GUID at the end of a role definition id (`…/roleDefinitions/GUID`), lower-case.
pub fn role_guid(role_definition_id: &str) -> String {
    let t = role_definition_id.trim().trim_end_matches('/');
    t.rsplit('/').next().unwrap_or(t).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_guids() {
        assert_eq!(
            builtin("B24988AC-6180-42A0-AB88-20F7382DD24C")
                .unwrap()
                .name,
            "Contributor"
        );
        assert_eq!(
            role_guid("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"),
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
        );
        let mut guids: Vec<_> = BUILTIN_ROLES.iter().map(|r| r.guid).collect();
        guids.sort_unstable();
        guids.dedup();
        assert_eq!(
            guids.len(),
            BUILTIN_ROLES.len(),
            "duplicate GUID in the table"
        );
    }
}
