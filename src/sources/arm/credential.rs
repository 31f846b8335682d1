//! The `[azure] auth` credential, from `azure_identity`, used as the SDK builds it.

use super::{ArmError, IdentityLabel};
use crate::config::{AzureAuth, AzureConfig};
use azure_core::credentials::TokenCredential;
use std::sync::Arc;

/// The credential of `[azure] auth`, and a label naming it in messages (never a secret).
pub fn credential(
    cfg: &AzureConfig,
) -> Result<(Arc<dyn TokenCredential>, IdentityLabel), ArmError> {
    let err = |source| ArmError::Credential {
        auth: cfg.auth.as_str(),
        source: Box::new(source),
    };
    let env_client = || {
        std::env::var("AZURE_CLIENT_ID")
            .ok()
            .filter(|s| !s.is_empty())
    };
    match cfg.auth {
        AzureAuth::WorkloadIdentity => {
            let mut options = azure_identity::WorkloadIdentityCredentialOptions {
                client_id: cfg.client_id.clone(),
                ..Default::default()
            };
            if let Some(host) = &cfg.authority_host {
                let mut custom = azure_core::cloud::CustomConfiguration::default();
                custom.authority_host = host.trim_end_matches('/').to_string();
                options.credential_options.client_options.cloud = Some(Arc::new(
                    azure_core::cloud::CloudConfiguration::Custom(custom),
                ));
            }
            let cred =
                azure_identity::WorkloadIdentityCredential::new(Some(options)).map_err(err)?;
            let id = cfg
                .client_id
                .clone()
                .or_else(env_client)
                .unwrap_or_default();
            Ok((
                cred,
                IdentityLabel(format!("workload identity (client id {id})")),
            ))
        }
        AzureAuth::ManagedIdentity => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: cfg
                    .client_id
                    .clone()
                    .map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            };
            let cred =
                azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(err)?;
            let label = match &cfg.client_id {
                Some(id) => format!("managed identity (client id {id})"),
                None => "the system-assigned managed identity".to_string(),
            };
            Ok((cred, IdentityLabel(label)))
        }
        AzureAuth::AzureCli => {
            let cred = azure_identity::AzureCliCredential::new(None).map_err(err)?;
            Ok((
                cred,
                IdentityLabel("the Azure CLI's signed-in account".into()),
            ))
        }
    }
}
