//! `workload-identity`: Kubernetes workload identity federation (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`): the projected service-account token is the
//! client assertion at the Entra token endpoint.

use super::provider::{AccessToken, TokenProvider};
use crate::secret::SecretString;

impl TokenProvider {
    /// A token for `scope` in `tenant` (else the home tenant) from the federated token.
    pub(super) async fn workload_identity(
        &self,
        scope: &str,
        tenant: Option<&str>,
    ) -> std::result::Result<AccessToken, String> {
        let (Some(home), Some(client), Some(file)) = (
            self.var("AZURE_TENANT_ID"),
            self.var("AZURE_CLIENT_ID"),
            self.var("AZURE_FEDERATED_TOKEN_FILE"),
        ) else {
            return Err(
                "AZURE_TENANT_ID, AZURE_CLIENT_ID or AZURE_FEDERATED_TOKEN_FILE is not set".into(),
            );
        };
        let assertion = SecretString::new(
            std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read AZURE_FEDERATED_TOKEN_FILE {file}: {e}"))?
                .trim()
                .to_string(),
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.expose()),
            ("scope", scope),
        ];
        self.entra(tenant.unwrap_or(&home), &form).await
    }
}
