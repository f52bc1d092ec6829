//! A real local vault over TLS on `127.0.0.1:0`, in a fresh data directory.

use super::{quick_retry, runtime};
use kvrun::vault::{LocalVault, LocalVaultOptions};
use kvrun::{Client, ClientOptions};

/// A local vault in a fresh temporary data directory.
pub struct TestVault {
    pub vault: LocalVault,
    pub dir: tempfile::TempDir,
}

impl TestVault {
    pub async fn start() -> TestVault {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(dir.path()))
            .await
            .expect("local vault starts");
        TestVault { vault, dir }
    }

    /// A vault that already holds these secrets.
    pub async fn with_secrets(secrets: &[(&str, &str)]) -> TestVault {
        let t = TestVault::start().await;
        let mut client = t.client().await;
        let options = kvrun::SetOptions {
            content_type: None,
            tags: Vec::new(),
        };
        for (name, value) in secrets {
            client
                .set_secret(name, &(*value).into(), &options)
                .await
                .expect("set");
        }
        t
    }

    pub fn options(&self) -> ClientOptions {
        let mut options = ClientOptions::for_local_vault(&self.vault).expect("client options");
        options.retry = quick_retry();
        options
    }

    pub async fn client(&self) -> Client {
        Client::new(runtime(), self.options())
            .await
            .expect("client")
    }

    pub fn token(&self) -> String {
        self.vault.token().expose().to_string()
    }
}
