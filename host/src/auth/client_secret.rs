//! `client-secret`: a service principal's secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`), exchanged at `{authority}/{tenant}/oauth2/v2.0/token` for client
//! credentials.

use super::provider::{AccessToken, TokenProvider};
use crate::secret::SecretString;

impl TokenProvider {
    /// A token for `scope` in `tenant` (else the home tenant) from the client secret.
    pub(super) async fn client_secret(
        &self,
        scope: &str,
        tenant: Option<&str>,
    ) -> std::result::Result<AccessToken, String> {
        let (Some(home), Some(client), Some(secret)) = (
            self.var("AZURE_TENANT_ID"),
            self.var("AZURE_CLIENT_ID"),
            self.var("AZURE_CLIENT_SECRET"),
        ) else {
            return Err(
                "AZURE_TENANT_ID, AZURE_CLIENT_ID or AZURE_CLIENT_SECRET is not set".into(),
            );
        };
        let secret = SecretString::new(secret);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.as_str()),
            ("client_secret", secret.expose()),
            ("scope", scope),
        ];
        self.entra(tenant.unwrap_or(&home), &form).await
    }
}
