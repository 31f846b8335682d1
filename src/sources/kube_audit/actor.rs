//! Who a Kubernetes audit event names, and what sort of caller that is.

use crate::domain::{Actor, ActorClass};
use serde::Deserialize;
use std::collections::BTreeMap;

/// User names of the AKS local accounts. The admin and user credentials of a cluster with
/// local accounts (`az aks get-credentials [--admin]`) are client certificates whose common
/// name is `masterclient` (organisation `system:masters`); clusters that issue them as tokens
/// log `clusterAdmin` or `clusterUser`.
pub const LOCAL_ACCOUNT_USERS: [&str; 3] = ["masterclient", "clusteradmin", "clusteruser"];

/// User names of the AKS platform itself (its resource provider acting in the cluster).
pub const PLATFORM_USERS: [&str; 2] = ["aksservice", "hcpservice"];

/// `user` or `impersonatedUser` of an audit event.
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo {
    /// `username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `uid`.
    #[serde(default)]
    pub uid: Option<String>,
    /// `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `extra` (Entra users: `oid`).
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The class of a Kubernetes caller, from its user name and groups.
pub fn classify(username: &str, groups: &[String]) -> ActorClass {
    let lower = username.to_ascii_lowercase();
    if PLATFORM_USERS.contains(&lower.as_str()) {
        return ActorClass::Platform;
    }
    if LOCAL_ACCOUNT_USERS.contains(&lower.as_str()) {
        return ActorClass::LocalAccount;
    }
    if let Some(sa) = username.strip_prefix("system:serviceaccount:") {
        // Controllers and add-on managers of AKS run in kube-system.
        return if sa.starts_with("kube-system:") {
            ActorClass::Platform
        } else {
            ActorClass::ServiceAccount
        };
    }
    if username.starts_with("system:") {
        // system:kube-controller-manager, system:apiserver, system:node:…, system:kube-scheduler.
        return ActorClass::Platform;
    }
    if groups.iter().any(|g| g == "system:masters") {
        // Certificate users in system:masters that are neither the platform nor a named
        // Entra user hold the cluster's shared admin credential.
        if !username.contains('@') {
            return ActorClass::LocalAccount;
        }
    }
    ActorClass::User
}

/// The actor of an audit event: the authenticated user (and whom it impersonated), the first
/// source IP, the user agent, the audit id and the authorizer's reason.
pub fn actor(
    user: &UserInfo,
    impersonated: Option<&UserInfo>,
    source_ips: &[String],
    user_agent: Option<String>,
    audit_id: Option<String>,
    reason: Option<String>,
) -> Actor {
    let username = user.username.clone().filter(|u| !u.is_empty());
    let oid = user
        .extra
        .get("oid")
        .and_then(|v| v.first())
        .map(|s| s.to_ascii_lowercase());
    // The effective identity decides the class: a person impersonating a local account
    // wrote as that account.
    let effective = impersonated
        .and_then(|i| i.username.as_deref())
        .or(username.as_deref())
        .unwrap_or_default();
    let effective_groups = impersonated.map_or(&user.groups, |i| &i.groups);
    let class = classify(effective, effective_groups);
    Actor {
        upn: username.clone().filter(|u| u.contains('@')),
        object_id: oid,
        app_id: None,
        ip: source_ips.first().cloned(),
        username,
        groups: user.groups.clone(),
        impersonated: impersonated.and_then(|i| i.username.clone()),
        user_agent: user_agent.filter(|s| !s.is_empty()),
        audit_id,
        reason: reason.filter(|s| !s.is_empty()),
        class: Some(class),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let masters = vec!["system:masters".to_string(), "system:authenticated".into()];
        let none: Vec<String> = Vec::new();
        for (user, groups, want) in [
            ("aksService", &masters, ActorClass::Platform),
            ("masterclient", &masters, ActorClass::LocalAccount),
            ("clusterAdmin", &none, ActorClass::LocalAccount),
            ("clusterUser", &none, ActorClass::LocalAccount),
            ("cert-user", &masters, ActorClass::LocalAccount),
            (
                "system:serviceaccount:kube-system:generic-garbage-collector",
                &none,
                ActorClass::Platform,
            ),
            (
                "system:serviceaccount:argocd:argocd-application-controller",
                &none,
                ActorClass::ServiceAccount,
            ),
            (
                "system:kube-controller-manager",
                &none,
                ActorClass::Platform,
            ),
            ("system:node:aks-nodepool1-0", &none, ActorClass::Platform),
            ("alice@contoso.com", &masters, ActorClass::User),
            ("alice@contoso.com", &none, ActorClass::User),
        ] {
            assert_eq!(classify(user, groups), want, "{user}");
        }
    }

    #[test]
    fn impersonating_a_local_account_is_local_account_use() {
        let user = UserInfo {
            username: Some("alice@contoso.com".into()),
            ..Default::default()
        };
        let imp = UserInfo {
            username: Some("masterclient".into()),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let a = actor(&user, Some(&imp), &[], None, None, None);
        assert_eq!(a.class, Some(ActorClass::LocalAccount));
        assert_eq!(a.upn.as_deref(), Some("alice@contoso.com"));
        assert_eq!(a.impersonated.as_deref(), Some("masterclient"));
    }
}
