//! `managed-identity`: the App Service / ML compute endpoint (`IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER`), else the Azure Instance Metadata Service (IMDS, `http://169.254.169.254`,
//! or `AZURE_POD_IDENTITY_AUTHORITY_HOST` as in the Azure SDKs). `AZURE_CLIENT_ID` picks a
//! user-assigned identity.
//!
//! In the automatic chain IMDS is probed the way `DefaultAzureCredential` does it: the first
//! request gets a short timeout ([`super::IMDS_PROBE_TIMEOUT`]), and when nothing answers in
//! that time (not an Azure machine) IMDS is skipped for the rest of the provider's life, so a
//! laptop pays the probe once. Chosen with `--auth managed-identity`, IMDS gets the full
//! timeout.

use super::provider::{AccessToken, TokenFailure, TokenProvider};
use crate::secret::SecretString;

impl TokenProvider {
    /// A token for `scope` from the identity endpoint, else from IMDS.
    pub(super) async fn managed_identity(
        &self,
        scope: &str,
    ) -> std::result::Result<AccessToken, String> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let client_id = self.var("AZURE_CLIENT_ID");
        let query = |api_version: &str| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("api-version", api_version)
                .append_pair("resource", resource);
            if let Some(id) = &client_id {
                query.append_pair("client_id", id);
            }
            query.finish()
        };
        if let (Some(endpoint), Some(header)) =
            (self.var("IDENTITY_ENDPOINT"), self.var("IDENTITY_HEADER"))
        {
            let url = format!("{endpoint}?{}", query("2019-08-01"));
            let header = SecretString::new(header);
            Ok(self
                .get_token(
                    &url,
                    &[("x-identity-header", header.expose())],
                    self.options.timeout,
                )
                .await?)
        } else {
            self.imds(&query("2018-02-01")).await
        }
    }

    /// IMDS, probed with a short timeout in the automatic chain (see the module docs).
    async fn imds(&self, query: &str) -> std::result::Result<AccessToken, String> {
        let probe = match self.imds_probed.get() {
            Some(Err(why)) => return Err(why.clone()),
            Some(Ok(())) => None,
            None => self.options.imds_probe,
        };
        let endpoint = &self.options.imds_endpoint;
        let url = format!("{endpoint}/metadata/identity/oauth2/token?{query}");
        let timeout = probe.unwrap_or(self.options.timeout);
        let result = self.get_token(&url, &[("metadata", "true")], timeout).await;
        let Some(probe) = probe else {
            return Ok(result?);
        };
        let found = match &result {
            Err(TokenFailure::Unreached(_)) => Err(format!(
                "IDENTITY_ENDPOINT is not set and no IMDS answered at {endpoint} within {probe:?} (not an Azure machine?)"
            )),
            _ => Ok(()),
        };
        match self.imds_probed.get_or_init(|| found) {
            Err(why) => Err(why.clone()),
            Ok(()) => Ok(result?),
        }
    }
}
